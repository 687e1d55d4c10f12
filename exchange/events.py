"""Trail events and their canonical encoding, the leaves of the delivery ledger.

Every state change the hub records is an event, written in the same transaction as the change
itself, together with its canonical encoding (``leaf``): UTF-8 JSON with sorted keys and no
spaces, holding the package digest, the event, the agency, the time and the details. The ledger
(:mod:`exchange.ledger`) later gives each leaf its position in the Merkle log; the leaf bytes never
change after the transaction that wrote them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

__all__ = ["EVENT_KINDS", "Event", "canonical_leaf"]

EVENT_KINDS = frozenset(
    {
        "submitted",  # accepted by the hub
        "verified",  # signature verification report made at the door
        "routed",  # published to the broker, confirmed
        "delivered",  # in the recipient's inbox
        "fetched",  # first download by the recipient
        "acknowledged",  # recipient stored it safely
        "status",  # a status package about this document (01-06, 15, 16)
        "recalled",  # the sender's recall (status 13)
        "rejected",  # refused by the hub
        "console_action",  # an operator's action in the web console (who, what)
        "linked",  # a revocation, update or replacement linked to the document it concerns
        "disposition",  # a recipient's copy recalled, superseded, or answered (exchange/flows.py)
        "push_attempt",  # one webhook attempt to the recipient's system (exchange/push)
        "push_failed",  # the push gave up (dead letter); the copy stays in the inbox
        "registry",  # a new version of an agency in the registry (no package)
        "import_failed",  # the recipient's own system could not import its copy (VDXP, LGSP)
        "arrived",  # handed over by a peer hub (federation): from which hub, the hops
        "remote",  # what a peer hub reported about our hand-over (accepted, delivered, ...)
    }
)
LEAF_VERSION = 1


@dataclass(frozen=True)
class Event:
    """One thing that happened to a package (or to a refused body, then ``package_id`` is None)."""

    event: str
    digest: bytes
    package_id: uuid.UUID | None = None
    organ_id: str | None = None
    detail: dict = field(default_factory=dict)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        if self.event not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.event!r}")


def canonical_leaf(event: Event) -> bytes:
    """The ledger leaf: canonical JSON of the event, including the package digest."""
    return json.dumps(
        {
            "v": LEAF_VERSION,
            "event": event.event,
            "package": str(event.package_id) if event.package_id else None,
            "digest": event.digest.hex(),
            "organ": event.organ_id,
            "at": event.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "detail": event.detail,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
