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
from exchange.hubkeys import key_id, record_key
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


async def read_nodes(
    conn: asyncpg.Connection | asyncpg.Pool, keys: set[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Fetch stored subtree hashes by (level, index) in one query."""
    if not keys:
        return {}
    levels, indexes = zip(*keys, strict=True)
    # A lateral primary-key probe per wanted node: O(k log n), whatever the table size.
    rows = await conn.fetch(
        "SELECT k.level, k.idx, n.hash FROM unnest($1::smallint[], $2::bigint[]) AS k(level, idx) "
        "CROSS JOIN LATERAL (SELECT hash FROM ledger_nodes "
        "WHERE level = k.level AND idx = k.idx) AS n",
        list(levels),
        list(indexes),
    )
    return {(r["level"], r["idx"]): r["hash"] for r in rows}


async def _prove(conn, request: Callable[[merkle.NodeReader], object]):
    nodes = await read_nodes(conn, merkle.needed_nodes(request))

    def node(level: int, index: int) -> bytes:
        try:
            return nodes[(level, index)]
        except KeyError:
            raise merkle.ProofError(f"the ledger has no subtree ({level}, {index})") from None

    return request(node)


async def tree_size(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """How many leaves the ledger holds."""
    last = await conn.fetchval("SELECT max(idx) FROM ledger_nodes WHERE level = 0")
    return 0 if last is None else last + 1


class Ledger(BackgroundLoop):
    """Sequencing, signed heads and proofs over the ledger tables."""

    task_name = "ledger-sequencer"

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: KeyHandle | None,
        *,
        tsa_url: str | None = None,
        head_interval: float = 60.0,
        batch: int = 10_000,
    ) -> None:
        self.pool = pool
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

        One round trip to ``ledger_sequence()`` (exchange/sql/schema.sql), which hashes the
        leaves and the subtrees they complete inside PostgreSQL; 0 when another hub process
        holds the sequencer or nothing waits.
        """
        rows = await self.pool.fetch("SELECT * FROM ledger_sequence($1)", self.batch)
        if not rows:
            return 0
        self._remember({r["sequenced_event"]: r["ledger_position"] for r in rows})
        async with self._progress:
            self._progress.notify_all()
        return len(rows)

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
                rows = await self.pool.fetch(
                    "SELECT id, ledger_index FROM events WHERE id = ANY($1::bigint[]) "
                    "AND ledger_index IS NOT NULL",
                    [i for i in event_ids if i not in found],
                )
                found.update({r["id"]: r["ledger_index"] for r in rows})

    async def record_key(self) -> None:
        """List the hub's key among the keys it has used (see :mod:`exchange.hubkeys`)."""
        if self.key is not None:
            await record_key(self.pool, self.key)

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
        size = await tree_size(self.pool)
        if size == 0:
            return None
        existing = await self.head(size)
        if existing:
            return existing
        root = await _prove(self.pool, lambda node: merkle.root_hash(size, node))
        now = dt.datetime.now(dt.UTC)
        body = head_bytes(size, root, now, self.key_id)
        signature = await sign_detached(body, self.key, self.tsa_url)
        async with self.pool.acquire() as conn, conn.transaction():
            await record_key(conn, self.key)
            await conn.execute(
                "INSERT INTO tree_heads (tree_size, root_hash, signed_at, head, signature, key_id) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tree_size) DO NOTHING",
                size,
                root,
                now,
                body,
                signature,
                self.key_id,
            )
        return await self.head(size)

    async def head(self, size: int | None = None) -> TreeHead | None:
        """The signed head of exactly ``size`` leaves, or the latest one."""
        if size is None:
            row = await self.pool.fetchrow(
                "SELECT * FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
            )
        else:
            row = await self.pool.fetchrow("SELECT * FROM tree_heads WHERE tree_size = $1", size)
        return None if row is None else tree_head(row)

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of ``size`` leaves."""
        return await _prove(self.pool, lambda node: merkle.inclusion_proof(index, size, node))

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """Proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves."""
        return await _prove(self.pool, lambda node: merkle.consistency_proof(old, new, node))
