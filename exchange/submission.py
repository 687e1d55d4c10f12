"""Accepting a package, top to bottom: check → verify → store → route → receipt.

1. The body is already in a temporary file, hashed (:meth:`IncomingBody.finish` flushes it).
2. One read of the package in a worker process: the hardened parser, the XSD and the rules, the
   model; in the same read, when the sender is the caller and the hub verifies, its XML
   signature and every signed PDF inside (:mod:`exchange.verification`).
3. The sender must be the caller; the signatures must satisfy the sender's policy; the
   recipients must be registered and active.
4. The bytes go to their content address (fsynced), then the package, one delivery per
   recipient, their outbox rows and the events are committed together
   (:mod:`exchange.store.postgres`).
5. The deliveries are handed to the broker (the outbox keeps them until confirmed), and the
   hub's signed receipt cites the package's ledger leaf.

What the hub stores is exactly what it received: the model is only a view used to check and
route. Identical bytes sent again get the first answer (200, same id), without a second check.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable

from exchange.auth import Caller
from exchange.delivery import choose_document
from exchange.errors import HubError
from exchange.events import Event
from exchange.flows import settle
from exchange.policy import Policy
from exchange.ports import IncomingBody, NewPackage, Publisher, Submission
from exchange.receipts import Receipts
from exchange.store.postgres import PostgresPackages
from exchange.store.registry import PostgresRegistry
from exchange.succession import party_codes, route_package
from exchange.verification import Inspector
from schemas import FormatError, OrganId, Package

__all__ = ["Submissions", "check_sender", "new_package"]

log = logging.getLogger("lienthong.submission")


class Submissions:
    """The submit use case, wired to its ports by the hub."""

    def __init__(
        self,
        packages: PostgresPackages,
        registry: PostgresRegistry,
        inspector: Inspector,
        policy: Policy,
        publisher: Publisher,
        receipts: Receipts,
        *,
        retry_after: float,
        on_accepted: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.packages = packages
        self.registry = registry
        self.inspector = inspector
        self.policy = policy
        self.publisher = publisher
        self.receipts = receipts
        self.retry_after = retry_after
        self.on_accepted = on_accepted

    async def submit(self, caller: Caller, incoming: IncomingBody) -> Submission:
        """Check, verify, store and route a received body; the temporary file is always
        removed. Refusals of a readable package are also written to the ledger."""
        package = None
        try:
            await incoming.finish()
            seen = await self.packages.find_by_digest(incoming.digest)
            package, report = await self.inspector.inspect(
                incoming.path, caller.organ_id, incoming.digest, verify=seen is None
            )
            check_sender(caller, package)
            if seen is not None:  # identical bytes again: the first answer stands
                result = seen
            else:
                verdict = await self.policy.judge(caller.organ_id, report) if report else None
                result = await self._store(
                    await self._accepted(package, incoming, verdict), incoming
                )
        except (HubError, FormatError) as exc:
            log.info(
                "package refused",
                extra={
                    "code": exc.code,
                    "digest": incoming.digest.hex(),
                    "organ_id": caller.organ_id,
                },
            )
            if package is not None:
                detail = {"code": exc.code, **(getattr(exc, "detail", None) or {})}
                await self.packages.record_rejection(caller.organ_id, incoming.digest, detail)
            raise
        finally:
            incoming.discard()
        if result.outgoing:
            self.publisher.submit(result.outgoing)
        result = dataclasses.replace(result, receipt=await self.receipts.for_submission(result))
        self.on_accepted(result.kind)
        log.info(
            "package accepted",
            extra={
                "package_id": str(result.id),
                "digest": result.digest.hex(),
                "duplicate": result.duplicate,
                "organ_id": caller.organ_id,
            },
        )
        return result

    async def _accepted(self, package: Package, incoming: IncomingBody, verdict) -> NewPackage:
        """The package as it will be stored, once its recipients are known and active."""
        recipients = tuple(dict.fromkeys(p.organ_id for p in package.recipients))
        if not recipients:
            raise HubError("recipient.missing", "the package names no recipient")
        field = "To/OrganId" if package.kind == "edoc" else "ResponseFor/OrganId"
        today = dt.datetime.now(dt.UTC).date()
        sender = package.sender.organ_id
        mode = self.policy.settings.retired_recipient
        routing = await route_package(self.registry, sender, recipients, today, mode, field)
        recipients = routing.recipients
        about_others = package.kind == "status" or package.business_doc_type != 0
        parties = await party_codes(self.registry, sender, today) if about_others else ()
        return new_package(
            uuid.uuid4(),
            package,
            incoming.digest,
            incoming.size,
            recipients,
            self.retry_after,
            verdict,
            redirected_from=routing.redirected_from,
            sender_parties=parties,
        )

    async def _store(self, new: NewPackage, incoming: IncomingBody) -> Submission:
        # Keep the bytes at their content address before the row that points at them.
        kept = await incoming.keep()
        try:
            result = await self.packages.insert(new, choose_document, settle)
        except HubError:
            if not await self.packages.digest_known(new.digest):
                kept.unlink(missing_ok=True)
            raise
        if result.duplicate:
            if result.digest != new.digest and not await self.packages.digest_known(new.digest):
                kept.unlink(missing_ok=True)  # a harmless repeat of a status: not stored
            return result
        summary = new.events[0].detail if new.events else None
        return dataclasses.replace(
            result, verification=summary, redirected_from=new.redirected_from
        )


def check_sender(caller: Caller, package: Package) -> None:
    """Refuse a package whose ``From/OrganId`` is not the authenticated agency."""
    if package.sender.organ_id != caller.organ_id:
        raise HubError(
            "sender.mismatch",
            f"From/OrganId is {package.sender.organ_id} but the token belongs to {caller.organ_id}",
            field="From/OrganId",
        )


def new_package(
    package_id: uuid.UUID,
    package: Package,
    digest: bytes,
    size: int,
    recipients: tuple[str, ...],
    retry_after: float,
    verdict,
    *,
    events: tuple[Event, ...] = (),
    redirected_from: dict[str, str] | None = None,
    sender_parties: tuple[str, ...] = (),
) -> NewPackage:
    """The row set a package is stored as: its deliveries' routing keys, the verification
    ``verdict`` (None: not verified) as a report and a ``verified`` event after ``events``."""
    if verdict is not None:
        summary = verdict.summary()
        events = (*events, Event("verified", digest, package_id, package.sender.organ_id, summary))
    return NewPackage(
        id=package_id,
        package=package,
        digest=digest,
        size=size,
        recipients=recipients,
        routing_keys=tuple(OrganId.parse(r).routing_key for r in recipients),
        retry_after=retry_after,
        report=(verdict.report.indication, verdict.digest, verdict.report_bytes)
        if verdict
        else None,
        events=events,
        redirected_from=redirected_from or {},
        sender_parties=sender_parties,
    )
