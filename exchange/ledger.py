"""The delivery ledger: an append-only Merkle log (RFC 9162) over every trail event.

Each event row is written with its canonical leaf in the transaction of the change it records
(:mod:`exchange.events`). The sequencer then gives committed leaves their positions in commit order,
in batches, and stores the hashes of the perfect subtrees they complete (``ledger_nodes``). Tree
heads (size, root hash, time) are signed by the hub's key as detached CMS, timestamped by the TSA
when one is configured. Proofs come from stored subtree hashes in one query each.

Only one sequencer runs at a time across hub processes (an advisory lock); the others wait.
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
from exchange.events import Event, canonical_leaf
from exchange.tasks import BackgroundLoop, log_failure
from signing.cms import sign_detached
from signing.keys import KeyHandle

__all__ = ["Ledger", "TamperReport", "TreeHead", "check_ledger", "head_bytes"]

log = logging.getLogger("lienthong.ledger")
LOG_ID = "lienthong"


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head: ``head`` is the exact JSON that ``signature`` (CMS, DER) signs."""

    tree_size: int
    root_hash: bytes
    signed_at: dt.datetime
    head: bytes
    signature: bytes

    def to_json(self) -> dict:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "signed_at": self.signed_at.isoformat(),
            "head": self.head.decode(),
            "signature": base64.b64encode(self.signature).decode(),
            "signature_format": "CMS SignedData, detached, DER, base64",
        }


def head_bytes(tree_size: int, root: bytes, at: dt.datetime) -> bytes:
    """The canonical JSON a tree head signature covers."""
    return json.dumps(
        {
            "v": 1,
            "log": LOG_ID,
            "tree_size": tree_size,
            "root_hash": root.hex(),
            "timestamp": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


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

    async def _run(self) -> None:
        idle = 0.02
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
        body = head_bytes(size, root, now)
        signature = await sign_detached(body, self.key, self.tsa_url)
        await self.pool.execute(
            "INSERT INTO tree_heads (tree_size, root_hash, signed_at, head, signature) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
            size,
            root,
            now,
            body,
            signature,
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
        if row is None:
            return None
        return TreeHead(
            row["tree_size"], row["root_hash"], row["signed_at"], row["head"], row["signature"]
        )

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of ``size`` leaves."""
        return await _prove(self.pool, lambda node: merkle.inclusion_proof(index, size, node))

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """Proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves."""
        return await _prove(self.pool, lambda node: merkle.consistency_proof(old, new, node))


@dataclass(frozen=True)
class TamperReport:
    """What :func:`check_ledger` found; ``first_bad_leaf`` is None when all is consistent."""

    leaves: int
    heads_checked: int
    first_bad_leaf: int | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


async def check_ledger(pool: asyncpg.Pool, heads_verify=None, batch: int = 20_000) -> TamperReport:
    """Recompute every leaf and the tree from the event rows; compare with stored and signed data.

    Finds rows edited (the row no longer encodes to its leaf, or the leaf no longer hashes to the
    stored node), deleted (a gap in positions) or reordered (positions swapped), and heads whose
    signed root the recomputed tree does not reproduce. ``heads_verify`` may check each head's
    signature: ``async (TreeHead) -> str | None`` (a problem or None). Memory stays O(log n).
    """
    problems: list[str] = []
    first_bad: int | None = None

    def bad(index: int | None, message: str) -> None:
        nonlocal first_bad
        if index is not None and (first_bad is None or index < first_bad):
            first_bad = index
        if len(problems) < 50:
            problems.append(message)

    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        heads = [
            TreeHead(r["tree_size"], r["root_hash"], r["signed_at"], r["head"], r["signature"])
            for r in await conn.fetch("SELECT * FROM tree_heads ORDER BY tree_size")
        ]
        pending = list(heads)
        frontier = Frontier()

        def check_heads() -> None:
            while pending and pending[0].tree_size == frontier.size:
                head = pending.pop(0)
                if frontier.root() != head.root_hash:
                    bad(None, f"signed head {head.tree_size}: the recomputed root differs")

        expected = 0
        cursor = conn.cursor(
            "SELECT e.id, e.package_id, e.event, e.organ_id, e.at, e.detail, e.digest, e.leaf, "
            "e.ledger_index, n.hash AS stored FROM events e "
            "LEFT JOIN ledger_nodes n ON n.level = 0 AND n.idx = e.ledger_index "
            "WHERE e.ledger_index IS NOT NULL ORDER BY e.ledger_index",
            prefetch=batch,
        )
        async for row in cursor:
            index = row["ledger_index"]
            if index != expected:
                bad(expected, f"leaf {expected} is missing (the next present is {index}): deleted")
                expected = index
            event = Event(
                row["event"],
                row["digest"],
                row["package_id"],
                row["organ_id"],
                row["detail"],
                row["at"],
            )
            if canonical_leaf(event) != row["leaf"]:
                bad(index, f"leaf {index} (event {row['id']}): the row no longer matches its leaf")
            hashed = merkle.leaf_hash(row["leaf"])
            if row["stored"] != hashed:
                bad(index, f"leaf {index} (event {row['id']}): its hash differs from the log's")
            frontier.append(hashed)
            check_heads()
            expected += 1
        stored_size = await tree_size(conn)
    if stored_size != frontier.size:
        bad(frontier.size, f"the log holds {stored_size} leaves but {frontier.size} events")
    for head in pending:
        bad(frontier.size, f"signed head {head.tree_size} is beyond the recomputed log")
    for head in heads:
        if head_bytes(head.tree_size, head.root_hash, head.signed_at) != head.head:
            bad(None, f"signed head {head.tree_size}: stored fields differ from what was signed")
        if heads_verify is not None:
            problem = await heads_verify(head)
            if problem:
                bad(None, f"signed head {head.tree_size}: {problem}")
    return TamperReport(frontier.size, len(heads), first_bad, problems)


class Frontier:
    """The perfect subtrees of a growing tree's binary decomposition: O(log n) hashes."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, bytes]] = []  # (level, hash), largest first
        self.size = 0

    def append(self, hashed: bytes) -> None:
        level, node = 0, hashed
        while self.stack and self.stack[-1][0] == level:
            _, left = self.stack.pop()
            node = merkle.node_hash(left, node)
            level += 1
        self.stack.append((level, node))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        result = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            result = merkle.node_hash(left, result)
        return result
