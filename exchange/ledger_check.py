"""``lienthong audit check``: recompute the ledger from the event rows and hold it against the
stored tree and every signed head.

What can be wrong falls into kinds that mean different things, and each is reported apart:

- ``rows``: event rows edited, deleted or reordered (or rewritten together with their leaves), so
  the recomputed tree no longer matches; the first leaf that no longer matches is named.
- ``head-fields``: a stored head's size, root or time differ from the JSON its signature covers.
- ``bad-signature``: a head's signature does not verify, or was not made by the key the head names.
- ``former-key``: a head signed by a key the hub has used, but which is not trusted here: no longer
  the hub's key (a rotation, or a lost development key), and not under ``--trust``.
- ``unknown-key``: a head signed by a key the hub never recorded as its own.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from asn1crypto import x509 as asn1_x509

from exchange import merkle
from exchange.events import Event, canonical_leaf
from exchange.hubkeys import HubKey, key_id
from exchange.ledger import TreeHead, head_bytes, tree_head
from exchange.store.ledger import PostgresLedger
from signing import verify_detached

__all__ = ["KINDS", "Finding", "HeadChecker", "TamperReport", "check_ledger"]

ROWS, HEAD_FIELDS, BAD_SIGNATURE, FORMER_KEY, UNKNOWN_KEY = (
    "rows",
    "head-fields",
    "bad-signature",
    "former-key",
    "unknown-key",
)
# Each kind with the words an operator reads.
KINDS = {
    ROWS: "rows edited, deleted or reordered",
    HEAD_FIELDS: "stored heads that differ from what was signed",
    BAD_SIGNATURE: "head signatures that do not verify",
    FORMER_KEY: "heads signed by a key that is not (or no longer) the hub's",
    UNKNOWN_KEY: "heads signed by an unknown key",
}
PER_KIND = 50  # findings kept per kind (all are counted)


@dataclass(frozen=True)
class Finding:
    """One thing found: its kind (see :data:`KINDS`), the sentence, the leaf or head concerned."""

    kind: str
    message: str
    leaf: int | None = None
    head: int | None = None


@dataclass(frozen=True)
class TamperReport:
    """What :func:`check_ledger` found: ``counts`` counts the rows and heads concerned by kind;
    ``findings`` keeps the first :data:`PER_KIND` of each kind, ``omitted`` counts the rest."""

    leaves: int
    heads_checked: int
    findings: list[Finding] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    omitted: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.counts

    @property
    def first_bad_leaf(self) -> int | None:
        """The first leaf that no longer matches its row, the tree or a signed head."""
        leaves = [f.leaf for f in self.findings if f.kind == ROWS and f.leaf is not None]
        return min(leaves, default=None)

    @property
    def problems(self) -> list[str]:
        return [f.message for f in self.findings]


def _short(kid: str) -> str:
    return kid[:16] + "…"


class HeadChecker:
    """Checks each head's signature with the key it names, against ``anchors`` (the auditor's
    trust), and ``listed``, the keys the hub says it has used; ``current`` is the key the hub
    signs with now (None when it cannot be opened). A finding's message leaves out the head, so
    that heads with the same finding are reported together."""

    def __init__(
        self,
        anchors: list[asn1_x509.Certificate],
        listed: list[HubKey],
        current: str | None,
        *,
        explicit_trust: bool,
    ) -> None:
        self.anchors = anchors
        self.listed = {k.key_id: k for k in listed}
        self.current = current
        self.explicit_trust = explicit_trust

    async def __call__(self, head: TreeHead) -> Finding | None:
        size = head.tree_size
        try:
            result = await verify_detached(head.head, head.signature, self.anchors)
        except ValueError as exc:
            return Finding(BAD_SIGNATURE, str(exc), head=size)
        if not (result.intact and result.valid):
            return Finding(BAD_SIGNATURE, result.problem or "invalid", head=size)
        signer = key_id(result.signer_cert)
        who = f"key {_short(signer)} ({result.signer})"
        named = _named_key(head.head)
        if named is not None and named != signer:
            return Finding(
                BAD_SIGNATURE,
                f"the head names key {_short(named)} but was signed by {who}",
                head=size,
            )
        listed = self.listed.get(signer)
        if listed is None:
            return Finding(
                UNKNOWN_KEY,
                f"signed by {who}, which is not among the keys the hub has used",
                head=size,
            )
        if result.trusted:
            return None
        if self.explicit_trust:
            why = "it does not chain to the --trust anchors"
        elif signer == self.current:
            why = "it is the hub's current key, but its certificate does not validate now"
        else:
            why = "it is not the hub's current key and no --trust anchor covers it"
        return Finding(
            FORMER_KEY,
            f"signed by {who}, used by the hub from {listed.first_used:%Y-%m-%d %H:%M} to "
            f"{listed.last_used:%Y-%m-%d %H:%M} UTC; {why} "
            "(if you trust it, pass its certificate with --trust: lienthong hub certificate --all)",
            head=size,
        )


def _named_key(head: bytes) -> str | None:
    try:
        named = json.loads(head).get("key")
    except (ValueError, AttributeError, RecursionError):
        return None
    return named if isinstance(named, str) else None


async def check_ledger(store: PostgresLedger, heads=None, batch: int = 20_000) -> TamperReport:
    """Recompute every leaf and the tree from the event rows; compare with stored and signed data.

    Finds rows edited (the row no longer encodes to its leaf, or the leaf no longer hashes to the
    stored node), deleted (a gap in positions) or reordered (positions swapped), heads whose
    signed root the recomputed tree does not reproduce, and heads whose stored fields differ from
    the signed JSON. ``heads`` (e.g. a :class:`HeadChecker`) checks each head's signature:
    ``async (TreeHead) -> Finding | None``. Memory stays O(log n).
    """
    findings: list[Finding] = []
    counts: Counter = Counter()
    omitted: Counter = Counter()
    alike: dict[tuple[str, str], list[int]] = {}  # head findings by (kind, message): head sizes

    def bad(kind: str, message: str, leaf: int | None = None, head: int | None = None) -> None:
        if sum(f.kind == kind for f in findings) < PER_KIND:
            findings.append(Finding(kind, message, leaf, head))
        else:
            omitted[kind] += 1
        counts[kind] += 1

    async with store.snapshot() as snapshot:
        rows = await snapshot.heads()
        heads_rows = [tree_head(r) for r in rows]
        pending = list(heads_rows)
        frontier = Frontier()
        matched = 0  # the largest head size whose root the recomputed tree reproduces

        def check_heads() -> None:
            nonlocal matched
            while pending and pending[0].tree_size == frontier.size:
                head = pending.pop(0)
                if frontier.root() == head.root_hash:
                    matched = max(matched, head.tree_size)
                else:
                    bad(
                        ROWS,
                        f"signed head {head.tree_size}: the recomputed root differs (a leaf "
                        f"between {matched} and {head.tree_size - 1} was rewritten)",
                        head=head.tree_size,
                    )

        expected = 0
        cursor = snapshot.leaves(batch)
        async for row in cursor:
            index = row["ledger_index"]
            if index != expected:
                bad(
                    ROWS,
                    f"leaf {expected} is missing (the next present is {index}): deleted",
                    leaf=expected,
                )
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
                bad(
                    ROWS,
                    f"leaf {index} (event {row['id']}): the row no longer matches its leaf",
                    leaf=index,
                )
            hashed = merkle.leaf_hash(row["leaf"])
            if row["stored"] != hashed:
                bad(
                    ROWS,
                    f"leaf {index} (event {row['id']}): its hash differs from the log's",
                    leaf=index,
                )
            frontier.append(hashed)
            check_heads()
            expected += 1
        stored_size = await snapshot.tree_size()
    if stored_size != frontier.size:
        bad(
            ROWS,
            f"the log holds {stored_size} leaves but {frontier.size} events",
            leaf=frontier.size,
        )
    for head in pending:
        bad(
            ROWS,
            f"signed head {head.tree_size} is beyond the recomputed log",
            leaf=frontier.size,
            head=head.tree_size,
        )
    for head in heads_rows:
        signed = head_bytes(head.tree_size, head.root_hash, head.signed_at, head.key_id)
        if signed != head.head:
            bad(
                HEAD_FIELDS,
                f"signed head {head.tree_size}: stored fields differ from what was signed",
                head=head.tree_size,
            )
        if heads is not None and (finding := await heads(head)) is not None:
            alike.setdefault((finding.kind, finding.message), []).append(head.tree_size)
    for (kind, message), sizes in alike.items():
        counts[kind] += len(sizes) - 1
        bad(kind, f"{_heads(sizes)}: {message}", head=sizes[0])
    return TamperReport(frontier.size, len(heads_rows), findings, counts, omitted)


def _heads(sizes: list[int]) -> str:
    if len(sizes) == 1:
        return f"signed head {sizes[0]}"
    return f"{len(sizes)} signed heads (sizes {sizes[0]} to {sizes[-1]})"


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
