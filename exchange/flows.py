"""The business flows: each recipient's copy as a state machine, and what revocations,
updates and replacements do to the documents they concern. Every change happens here.

A copy's **progress** is the last of the statuses 01-06 its recipient sent: 01 → (02 | 03) → 04
→ 05 (may repeat) → 06. Skipping forward is allowed (03 and 05 back to back, no 01 at all);
backwards, a second 06 or anything after 02 is ``status.out_of_order``; an exact repeat of 01,
03 or 04 is harmless (the earlier status's id, nothing recorded twice).

Its **disposition** is ``active`` until the sender asks something of it:

- a recall (a revocation, BussinessDocType 1, or status 13): ``recall_requested``, or at once
  ``recalled`` when the recipient has not taken its copy (fetched or acknowledged): that copy
  leaves the inbox and reads as ``410 package.recalled``. The recipient answers 15 (→
  ``recalled``) or 16 (→ ``recall_refused``); a new recall is allowed after a 16, not while one is
  pending (``recall.pending``);
- an update (2) or replacement (3): ``superseded`` by the new package, and the recipient answers
  15 or 16 the same way (the disposition stays ``superseded``; the answer is recorded).

15 and 16 come only from a recipient, only while something waits for its answer; 13 only from
the sender (:func:`exchange.delivery.choose_document` checks who is a party). Some systems send
14 for "agree": it is taken as 15, and what was received is recorded.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from enum import StrEnum

from exchange.errors import HubError
from exchange.events import Event
from exchange.ports import DocumentCandidate, NewPackage
from exchange.store.flows import FlowOutcome, PostgresFlows
from schemas import BusinessDocType

__all__ = [
    "Copy",
    "Disposition",
    "answer_step",
    "normalised_status",
    "progress_step",
    "recall_step",
    "settle",
    "supersede_step",
]

RECALL, AGREE, REFUSE, VENDOR_AGREE = "13", "15", "16", "14"
_PROGRESS = {"01": 1, "02": 2, "03": 3, "04": 4, "05": 5, "06": 6}
_NAMES = {
    "01": "arrived",
    "02": "rejected",
    "03": "registered",
    "04": "assigned",
    "05": "processing",
    "06": "finished",
}
_RELATIONS = {
    BusinessDocType.REVOKE: "revokes",
    BusinessDocType.UPDATE: "updates",
    BusinessDocType.REPLACE: "replaces",
}
_ORDER = "statuses move forward: 01 → 02 or 03 → 04 → 05 (repeatable) → 06"


class Disposition(StrEnum):
    """What the sender's requests have made of a recipient's copy."""

    ACTIVE = "active"
    RECALL_REQUESTED = "recall_requested"
    RECALLED = "recalled"
    RECALL_REFUSED = "recall_refused"
    SUPERSEDED = "superseded"


def normalised_status(code: str | None) -> str | None:
    """The status as the flows read it: one vendor's 14 ("agree") is 15."""
    return AGREE if code == VENDOR_AGREE else code


@dataclass(frozen=True)
class Copy:
    """One recipient's copy of a document, as the flows see it."""

    package_id: uuid.UUID
    recipient: str
    digest: bytes
    document_id: str | None
    taken: bool  # fetched or acknowledged
    disposition: str = Disposition.ACTIVE
    progress: str | None = None
    status_code: str | None = None
    status_received: str | None = None
    status_package: uuid.UUID | None = None
    awaiting: uuid.UUID | None = None
    answer: str | None = None
    superseded_by: uuid.UUID | None = None

    @classmethod
    def of(cls, row) -> Copy:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(row).items() if k in names})

    def describe(self) -> str:
        progress = f"{self.progress} ({_NAMES[self.progress]})" if self.progress else "no status"
        return f"{self.recipient}'s copy of {self.document_id!r}: {progress}, {self.disposition}"


def _out_of_order(copy: Copy, why: str) -> HubError:
    return HubError(
        "status.out_of_order",
        f"{why}; the current state is {copy.describe()}",
        field="StatusCode",
        detail={"disposition": copy.disposition, "progress": copy.progress},
    )


def progress_step(copy: Copy, code: str, status_id: uuid.UUID) -> Copy | None:
    """A status 01-06 from the recipient; None when it harmlessly repeats the last one."""
    current = copy.progress
    if copy.disposition == Disposition.RECALLED:
        raise _out_of_order(copy, f"status {code} about a recalled copy")
    if current == code and code in ("01", "03", "04"):
        return None
    if current == "02":
        raise _out_of_order(copy, f"status {code} after 02: a rejected document is closed")
    if current == "06":
        raise _out_of_order(copy, f"status {code} after 06: a finished document is closed")
    backwards = current is not None and _PROGRESS[code] < _PROGRESS[current]
    if backwards or (code == "02" and current not in (None, "01")):
        raise _out_of_order(copy, f"status {code} after {current}: {_ORDER}")
    return dataclasses.replace(
        copy, progress=code, status_code=code, status_received=code, status_package=status_id
    )


def answer_step(copy: Copy, code: str, received: str, status_id: uuid.UUID) -> Copy:
    """The recipient's answer (15 agree, 16 refuse) to what waits for it."""
    recall = copy.disposition == Disposition.RECALL_REQUESTED
    if recall:
        disposition = Disposition.RECALLED if code == AGREE else Disposition.RECALL_REFUSED
    else:
        disposition = copy.disposition
    return dataclasses.replace(
        copy,
        disposition=disposition,
        status_code=code,
        status_received=received,
        status_package=status_id,
        awaiting=None,
        answer="agreed" if code == AGREE else "refused",
    )


def recall_step(copy: Copy, request_id: uuid.UUID) -> Copy:
    """The sender recalls the copy: settled at once if the recipient has not taken it."""
    if copy.disposition == Disposition.RECALL_REQUESTED:
        raise HubError(
            "recall.pending",
            f"a recall of {copy.describe()} waits for its answer (15 or 16); a new recall is "
            "allowed after a 16",
            detail={"recipient": copy.recipient, "awaiting": str(copy.awaiting)},
        )
    if copy.disposition == Disposition.RECALLED:
        raise _out_of_order(copy, "recalling a copy already recalled")
    if not copy.taken:
        return dataclasses.replace(copy, disposition=Disposition.RECALLED, awaiting=None)
    return dataclasses.replace(
        copy, disposition=Disposition.RECALL_REQUESTED, awaiting=request_id, answer=None
    )


def supersede_step(copy: Copy, new_id: uuid.UUID) -> Copy | None:
    """An update or replacement of the copy; a recalled copy stays recalled (None)."""
    if copy.disposition == Disposition.RECALLED:
        return None
    return dataclasses.replace(
        copy,
        disposition=Disposition.SUPERSEDED,
        superseded_by=new_id,
        awaiting=new_id,
        answer=None,
    )


def _changed(before: Copy, after: Copy, cause: uuid.UUID, why: str) -> Event:
    return Event(
        "disposition",
        before.digest,
        before.package_id,
        before.recipient,
        {
            "from": str(before.disposition),
            "to": str(after.disposition),
            "cause": str(cause),
            "why": why,
            "status_code": after.status_code if why == "answer" else None,
            "status_received": after.status_received if why == "answer" else None,
            "awaiting": str(after.awaiting) if after.awaiting else None,
        },
    )


async def settle(conn, new: NewPackage, about: DocumentCandidate | None) -> FlowOutcome:
    """Apply a package about to be stored to the copies it concerns, in the transaction that
    stores it; raises the refusal when the flow does not allow it."""
    package = new.package
    if package.kind == "status":
        return await _status(conn, new, about)
    relation = _RELATIONS.get(package.business.doc_type)
    if relation is None:
        # Nothing to settle: PostgresPackages.insert does not call this for a new document at
        # all (it is accepted in one call); a rule added here for type 0 must go there too.
        return FlowOutcome()
    return await _concerning(conn, new, relation)


async def _concerning(conn, new: NewPackage, relation: str) -> FlowOutcome:
    """A revocation, update or replacement: link it to each document it concerns and move
    each concerned copy (in one order, the targets' ids, so two flows never deadlock)."""
    package = new.package
    sender = package.sender.organ_id
    parties = new.sender_parties or (sender,)  # it and the codes it succeeded (succession.py)
    named = package.concerns or await _only_labelled(conn, package, relation, parties)
    replaced_at = {r.document_id: r.organ_ids for r in package.business.replacements}
    targets = {}
    for document_id in named:
        target = await _concerned(conn, parties, document_id, _field(package, document_id))
        organs = await _organs(conn, target, new, replaced_at.get(document_id, ()), relation)
        targets.setdefault(target["id"], (target, sorted(organs)))
    events: list[Event] = []
    for target_id in sorted(targets):
        target, organs = targets[target_id]
        await PostgresFlows.link(conn, new.id, target_id, relation, organs)
        link = {"relation": relation, "organs": organs}
        by = {"by": str(new.id), "by_document_id": package.document_id}
        events.append(Event("linked", target["digest"], target_id, sender, {**link, **by}))
        concerns = {"concerns": str(target_id), "document_id": target["document_id"]}
        events.append(Event("linked", new.digest, new.id, sender, {**link, **concerns}))
        for organ in organs:
            copy = Copy.of(await PostgresFlows.lock_copy(conn, target_id, organ))
            if relation == "revokes":
                after = recall_step(copy, new.id)
            else:
                after = supersede_step(copy, new.id)
            if after is not None:
                await PostgresFlows.save_copy(conn, after)
                events.append(_changed(copy, after, new.id, relation))
    return FlowOutcome(tuple(events))


async def _only_labelled(conn, package, relation: str, parties) -> tuple[str, ...]:
    """A package of type 1-3 that names no document (field systems often only label them):
    it concerns the sender's earlier version of its own DocumentId. A revocation must find
    one; an update or replacement without one is taken as it is, linked to nothing."""
    own = package.document_id
    if relation == "revokes":
        return (own,)
    versions = await PostgresFlows.versions(conn, own)
    return (own,) if any(v["sender"] in parties for v in versions) else ()


def _field(package, document_id: str) -> str:
    """Where the package names ``document_id`` (for the refusal's ``field``)."""
    if any(r.document_id == document_id for r in package.business.replacements):
        return "ReplacementInfo/DocumentId"
    if package.business.document_id == document_id:
        return "Bussiness/DocumentId"
    if any(r.document_id == document_id for r in package.response_for):
        return "ResponseFor/DocumentId"
    return "DocumentId"


async def _concerned(conn, parties: tuple[str, ...], document_id: str, field: str):
    """The newest version of the sender's document ``document_id`` (``parties``: the sender
    first, then the codes it succeeded, whose documents it may revoke, update, replace)."""
    sender = parties[0]
    versions = await PostgresFlows.versions(conn, document_id)
    mine = [v for v in versions if v["sender"] in parties]
    if mine:
        return mine[0]
    if versions:
        raise HubError(
            "document.not_sender",
            f"document {document_id!r} was sent by {versions[0]['sender']}, not {sender}: "
            "only its sender revokes, updates or replaces it",
            field=field,
        )
    raise HubError(
        "document.unknown",
        f"{sender} sent no document {document_id!r} through the hub, so nothing can be "
        "revoked, updated or replaced",
        field=field,
    )


async def _organs(conn, target, new: NewPackage, named: tuple[str, ...], relation: str):
    """The recipients whose copy of ``target`` the new package concerns."""
    received = await PostgresFlows.recipients(conn, target["id"])
    for organ in named:
        if organ not in received:
            raise HubError(
                "document.not_recipient",
                f"{organ} never received document {target['document_id']!r}, so its copy "
                "cannot be replaced",
                field="ReplacementInfo/OrganIdList/OrganId",
            )
    organs = list(named) or [r for r in new.recipients if r in received]
    if not organs and relation == "revokes":
        raise HubError(
            "document.not_recipient",
            f"none of the recipients received document {target['document_id']!r}",
            field="To/OrganId",
        )
    return organs


async def _status(conn, new: NewPackage, about: DocumentCandidate) -> FlowOutcome:
    package = new.package
    received = package.status_code
    code = normalised_status(received)
    if code == RECALL:
        copy = Copy.of(
            await PostgresFlows.lock_copy(conn, about.id, package.recipients[0].organ_id)
        )
        after = recall_step(copy, new.id)
        await PostgresFlows.save_copy(conn, after)
        return FlowOutcome((_changed(copy, after, new.id, "revokes"),))
    caller = about.caller_copy or package.sender.organ_id  # a successor answers for its predecessor
    if code in _PROGRESS:
        copy = Copy.of(await PostgresFlows.lock_copy(conn, about.id, caller))
        after = progress_step(copy, code, new.id)
        if after is None:
            return FlowOutcome(repeat_of=await PostgresFlows.digest_of(conn, copy.status_package))
        await PostgresFlows.save_copy(conn, after)
        return FlowOutcome()
    waiting = [Copy.of(r) for r in await PostgresFlows.lock_awaiting(conn, caller, about.id)]
    if not waiting:
        for row in await PostgresFlows.linked_copies(conn, caller, about.id):
            copy = Copy.of(row)
            if copy.status_code == code and copy.status_package is not None:
                digest = await PostgresFlows.digest_of(conn, copy.status_package)
                return FlowOutcome(repeat_of=digest)
        copy = Copy.of(await PostgresFlows.lock_copy(conn, about.id, caller))
        raise _out_of_order(copy, f"status {received}, but nothing waits for an answer")
    events = []
    for copy in waiting:
        after = answer_step(copy, code, received, new.id)
        await PostgresFlows.save_copy(conn, after)
        events.append(_changed(copy, after, new.id, "answer"))
    return FlowOutcome(tuple(events))
