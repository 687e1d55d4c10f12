"""What the core needs from the outside world, as Protocols, and the values that cross them.

The use cases (:mod:`exchange.submission`, :mod:`exchange.delivery`) are written against these;
the adapters (:mod:`exchange.store.postgres`, :mod:`exchange.blobs`, :mod:`exchange.broker`,
:mod:`exchange.verification`) implement them, and :mod:`exchange.hub` wires one to the other.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from exchange.events import Event
from schemas import Package

__all__ = [
    "Blobs",
    "DocumentCandidate",
    "IncomingBody",
    "Inspector",
    "NewPackage",
    "Outgoing",
    "PackageRecord",
    "PackageStore",
    "Publisher",
    "Submission",
]


@dataclass(frozen=True)
class Outgoing:
    """One delivery waiting for the broker."""

    delivery_id: int
    package_id: uuid.UUID
    recipient: str
    routing_key: str
    digest: bytes


@dataclass(frozen=True)
class Submission:
    """What the hub answers to an accepted package."""

    id: uuid.UUID
    kind: str
    document_id: str | None
    digest: bytes
    recipients: tuple[str, ...]
    duplicate: bool
    outgoing: tuple[Outgoing, ...] = ()
    event_id: int | None = None  # the 'submitted' event, whose ledger position the receipt cites
    receipt: dict | None = None
    verification: dict | None = None
    received_at: dt.datetime | None = None  # the 'submitted' event's time
    sender: str | None = None
    redirected_from: dict[str, str] | None = None  # recipient -> the retired code addressed

    def to_json(self) -> dict:
        redirected = {"redirected_from": self.redirected_from} if self.redirected_from else {}
        return {
            "id": str(self.id),
            "kind": self.kind,
            "document_id": self.document_id,
            "digest": self.digest.hex(),
            "digest_algorithm": "sha256",
            "recipients": list(self.recipients),
            "duplicate": self.duplicate,
            "verification": self.verification,
            "receipt": self.receipt,
            **redirected,
        }


@dataclass(frozen=True)
class NewPackage:
    """An accepted package, ready to be stored with its deliveries."""

    id: uuid.UUID
    package: Package
    digest: bytes
    size: int
    recipients: tuple[str, ...]
    routing_keys: tuple[str, ...]
    retry_after: float
    report: tuple[str, bytes, bytes] | None  # (indication, report digest, report JSON)
    events: tuple[Event, ...] = ()  # recorded with it besides 'submitted' (verified, ...)
    # Recipient -> the retired code the sender addressed (exchange/succession.py).
    redirected_from: dict[str, str] = field(default_factory=dict)
    # The sender of a status, revocation, update or replacement and the codes it succeeded:
    # any of them is a party to the document it is about.
    sender_parties: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentCandidate:
    """A document a status may be about: who sent it, whether the status's two ends receive it."""

    id: uuid.UUID
    digest: bytes
    sender: str
    caller_receives: bool
    organ_receives: bool
    # The copy the status's sender answers for: its own, or a predecessor's (a successor is a
    # party to its predecessors' documents, exchange/succession.py).
    caller_copy: str | None = None
    caller_sent: bool = False  # the status's sender, or a code it succeeded, sent the document


@dataclass(frozen=True)
class PackageRecord:
    """A stored package, as a caller who may see it sees it."""

    id: uuid.UUID
    digest: bytes
    sender: str
    kind: str
    document_id: str | None
    status_code: str | None
    about_package: uuid.UUID | None
    received_at: dt.datetime


class IncomingBody(Protocol):
    """A request body received into a temporary file, hashed on the way."""

    path: Path
    size: int

    @property
    def digest(self) -> bytes: ...

    async def finish(self) -> None: ...

    async def keep(self) -> Path: ...

    def discard(self) -> None: ...


class Blobs(Protocol):
    """Content-addressed package bytes."""

    def incoming(self, limit: int) -> IncomingBody: ...

    def path_for(self, digest: bytes) -> Path: ...

    def read(self, digest: bytes) -> bytes: ...


class Publisher(Protocol):
    """Hands committed deliveries to the broker (the outbox keeps them until confirmed)."""

    def submit(self, outgoing: tuple[Outgoing, ...]) -> None: ...


class Inspector(Protocol):
    """Reads a package once and verifies its signatures on that parse, off the event loop."""

    async def inspect(
        self, path: Path, sender: str, digest: bytes, verify: bool
    ) -> tuple[Package, Any]: ...


class PackageStore(Protocol):
    """Packages, their deliveries and outbox rows, and the events that record them."""

    async def find_by_digest(self, digest: bytes) -> Submission | None: ...

    async def insert(self, new: NewPackage, choose_document: Any) -> Submission: ...

    async def record_rejection(self, organ_id: str, digest: bytes, detail: dict) -> None: ...

    async def agencies(self, codes: Sequence[str]) -> dict: ...
