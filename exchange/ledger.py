"""The delivery ledger: an append-only Merkle log (RFC 9162) over every trail event.

Each event row is written with its canonical leaf in the transaction of the change it records
(:mod:`exchange.events`). The sequencer then gives committed leaves their positions in commit order,
in batches, and stores the hashes of the perfect subtrees they complete (``ledger_nodes``). Tree
heads (size, root hash, time) are signed by the hub's key as detached CMS, timestamped by the TSA
when one is configured. Proofs come from stored subtree hashes in one query each.

Only one sequencer runs at a time across hub processes (an advisory lock); the others wait.
Each head names the key that signed it (:mod:`exchange.hubkeys`); :mod:`exchange.ledger_check`
recomputes everything from the rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from exchange import merkle
from exchange.hubkeys import describe, key_id
from exchange.store.ledger import PostgresLedger
from exchange.tasks import BackgroundLoop, log_failure
from signing import KeyHandle, sign_detached

__all__ = ["Ledger", "TreeHead", "head_bytes", "tree_head"]

log = logging.getLogger("lienthong.ledger")
LOG_ID = "lienthong"


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head: ``head`` is the exact JSON that ``signature`` (CMS, DER) signs;
    ``key_id`` names the hub key that signed it (None for heads signed before keys were named)."""

    tree_size: int
    root_hash: bytes
    signed_at: dt.datetime
    head: bytes
    signature: bytes
    key_id: str | None = None

    def to_json(self) -> dict:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "signed_at": self.signed_at.isoformat(),
            "head": self.head.decode(),
            "signature": base64.b64encode(self.signature).decode(),
            "signature_format": "CMS SignedData, detached, DER, base64",
            "key_id": self.key_id,
        }


def tree_head(row: asyncpg.Record) -> TreeHead:
    """A ``tree_heads`` row as a :class:`TreeHead`."""
    return TreeHead(
        row["tree_size"],
        row["root_hash"],
        row["signed_at"],
        row["head"],
        row["signature"],
        row.get("key_id"),  # absent until the hub has migrated (audit check migrates nothing)
    )


def head_bytes(tree_size: int, root: bytes, at: dt.datetime, key: str | None = None) -> bytes:
    """The canonical JSON a tree head signature covers; ``key`` is the signer's key id (heads
    signed before keys were named have none)."""
    fields: dict = {
        "v": 1,
        "log": LOG_ID,
        "tree_size": tree_size,
        "root_hash": root.hex(),
        "timestamp": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
    }
    if key is not None:
        fields["key"] = key
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


class Ledger(BackgroundLoop):
    """Sequencing, signed heads and proofs over the ledger tables."""

    task_name = "ledger-sequencer"

    def __init__(
        self,
        store: PostgresLedger,
        key: KeyHandle | None,
        *,
        tsa_url: str | None = None,
        head_interval: float = 60.0,
        batch: int = 10_000,
    ) -> None:
        self.store = store
        self.key = key
        self.key_id = key_id(key.cert) if key else None
        self.tsa_url = tsa_url
        self.head_interval = head_interval
        self.batch = batch
        self._kick = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._last_head = 0.0
        self._recent: dict[int, int] = {}  # event id -> position, recently sequenced here

    # ----- sequencing --------------------------------------------------------------------

    async def sequence(self) -> int:
        """Give the next batch of committed, unsequenced leaves their positions.

        One round trip to ``ledger_sequence()`` (migration 0001), which hashes the
        leaves and the subtrees they complete inside PostgreSQL; 0 when another hub process
        holds the sequencer or nothing waits.
        """
        positions = await self.store.sequence(self.batch)
        if not positions:
            return 0
        self._remember(positions)
        async with self._progress:
            self._progress.notify_all()
        return len(positions)

    def _remember(self, positions: dict[int, int]) -> None:
        """Keep recent positions in memory, so waiting callers need no query."""
        self._recent.update(positions)
        while len(self._recent) > 100_000:
            self._recent.pop(next(iter(self._recent)))

    def kick(self) -> None:
        """Ask the sequencer to run now (new events were committed)."""
        self._kick.set()

    async def wait_indexed(self, event_ids: list[int], timeout: float = 5.0) -> dict[int, int]:
        """Positions of these events, once sequenced (by this or another hub process)."""
        deadline = time.monotonic() + timeout
        found: dict[int, int] = {}
        while True:
            # Checked under the condition's lock: the sequencer records positions before it
            # takes the lock to notify, so no wake-up is missed.
            async with self._progress:
                found.update({i: self._recent[i] for i in event_ids if i in self._recent})
                if len(found) == len(event_ids) or time.monotonic() > deadline:
                    return found
                self.kick()
                try:
                    await asyncio.wait_for(self._progress.wait(), 0.05)
                    progressed = True
                except TimeoutError:
                    progressed = False
            if not progressed:  # another hub process may hold the sequencer: ask the database
                found.update(await self.store.positions([i for i in event_ids if i not in found]))

    async def record_key(self) -> None:
        """List the hub's key among the keys it has used (see :mod:`exchange.hubkeys`)."""
        if self.key is not None:
            await self.store.record_key(describe(self.key))

    async def _run(self) -> None:
        idle = 0.02
        try:
            await self.record_key()
        except Exception:
            log.exception("recording the hub's key failed; signing a head records it too")
        while True:
            self._kick.clear()  # before sequencing: a kick during it means "run again"
            try:
                done = await self.sequence()
                if self.key and time.monotonic() - self._last_head >= self.head_interval:
                    await self.sign_head()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, "ledger sequencing failed; will retry", exc)
                done = 0
                await asyncio.sleep(1.0)
            if done < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), idle)

    # ----- heads and proofs --------------------------------------------------------------

    async def sign_head(self, reuse_within: float = 0.0) -> TreeHead | None:
        """Sign the current tree head (or return the existing head of this size).

        ``reuse_within``: return the latest head instead when it is younger than this many
        seconds (requests from outside cannot make the hub sign, or call its TSA, at will).
        """
        if reuse_within:
            latest = await self.head()
            if latest and dt.datetime.now(dt.UTC) - latest.signed_at < dt.timedelta(
                seconds=reuse_within
            ):
                return latest
        self._last_head = time.monotonic()
        if self.key is None:
            return None
        size = await self.store.tree_size()
        if size == 0:
            return None
        existing = await self.head(size)
        if existing:
            return existing
        root = await self._prove(lambda node: merkle.root_hash(size, node))
        now = dt.datetime.now(dt.UTC)
        body = head_bytes(size, root, now, self.key_id)
        signature = await sign_detached(body, self.key, self.tsa_url)
        await self.store.insert_head(size, root, now, body, signature, describe(self.key))
        return await self.head(size)

    async def head(self, size: int | None = None) -> TreeHead | None:
        """The signed head of exactly ``size`` leaves, or the latest one."""
        row = await self.store.head(size)
        return None if row is None else tree_head(row)

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of ``size`` leaves."""
        return await self._prove(lambda node: merkle.inclusion_proof(index, size, node))

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """Proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves."""
        return await self._prove(lambda node: merkle.consistency_proof(old, new, node))

    async def leaf_hash(self, index: int) -> bytes | None:
        """The stored hash of leaf ``index`` (None beyond the tree)."""
        return await self.store.leaf_hash(index)

    async def _prove(self, request: Callable[[merkle.NodeReader], object]):
        nodes = await self.store.nodes(merkle.needed_nodes(request))

        def node(level: int, index: int) -> bytes:
            try:
                return nodes[(level, index)]
            except KeyError:
                raise merkle.ProofError(f"the ledger has no subtree ({level}, {index})") from None

        return request(node)
