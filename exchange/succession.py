"""Codes that retired and the codes that replaced them: where a package still addressed to a
retired code goes, who counts as a party to an old document, and who may still send.

A retired code (its ``valid_to`` passed) names its successors; ``route_to`` says which of them
take packages addressed to it (default: the first). A successor may itself have retired since:
the chain is followed to the codes that take documents on the day. The hub setting
``retired_recipient`` chooses between redirecting (default) and refusing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from exchange.errors import HubError
from exchange.registry import Agency
from exchange.store.registry import PostgresRegistry

__all__ = [
    "RETIRED_RECIPIENT",
    "Routing",
    "check_sender_active",
    "current_successors",
    "describe_parties",
    "party_codes",
    "predecessors",
    "route_package",
    "route_recipients",
]

RETIRED_RECIPIENT = ("refuse", "redirect")
_MAX_HOPS = 16  # longer successor chains than this are a registry error (a cycle)


@dataclass(frozen=True)
class Routing:
    """The codes a package goes to, and for each redirected one the code the sender used."""

    recipients: tuple[str, ...]
    redirected_from: dict[str, str] = field(default_factory=dict)


def _retired(agency: Agency, day: dt.date) -> bool:
    return agency.valid_to is not None and day > agency.valid_to


def _inactive(code: str, agency: Agency, day: dt.date, field_name: str, why: str) -> HubError:
    return HubError(
        "recipient.inactive",
        f"recipient {code} does not take documents on {day.isoformat()}: {why}",
        field=field_name,
        detail={
            "organ_id": code,
            "valid_from": agency.valid_from.isoformat() if agency.valid_from else None,
            "valid_to": agency.valid_to.isoformat() if agency.valid_to else None,
            "successors": list(agency.successors),
        },
    )


def _why(agency: Agency) -> str:
    if agency.valid_to is None:
        return f"its code takes effect on {agency.valid_from.isoformat()}"
    retired = f"retired after {agency.valid_to.isoformat()}"
    if agency.successors:
        return f"{retired}; its successor is {', '.join(agency.successors)}"
    return f"{retired} without a successor"


async def current_successors(
    registry: PostgresRegistry, agency: Agency, day: dt.date
) -> tuple[str, ...]:
    """The codes taking documents on ``day`` that a retired agency's packages go to,
    following successors that retired in turn; empty when the chain ends nowhere."""
    found: list[str] = []
    frontier, seen = list(agency.redirect_targets), {agency.code}
    for _ in range(_MAX_HOPS):
        if not frontier:
            break
        now = await registry.as_of(frontier, day)
        following = []
        for code in frontier:
            if code in seen or code not in now:
                continue
            seen.add(code)
            successor = now[code]
            if successor.active_on(day):
                found.append(code)
            elif _retired(successor, day):
                following.extend(successor.redirect_targets)
        frontier = following
    return tuple(dict.fromkeys(found))


async def route_package(
    registry: PostgresRegistry,
    sender: str,
    codes: tuple[str, ...],
    day: dt.date,
    mode: str,
    field_name: str,
) -> Routing:
    """The submission's registry rules in one lookup: the sender must take part on ``day``
    (:func:`check_sender_active`), and the package goes where :func:`route_recipients` says."""
    known = await registry.as_of([sender, *codes], day)
    await check_sender_active(registry, sender, day, known.get(sender))
    return await route_recipients(registry, codes, day, mode, field_name, known)


async def route_recipients(
    registry: PostgresRegistry,
    codes: tuple[str, ...],
    day: dt.date,
    mode: str,
    field_name: str,
    known: dict[str, Agency] | None = None,
) -> Routing:
    """Where a package addressed to ``codes`` goes on ``day``: active codes as they are, a
    retired one to its successors (``mode`` redirect) or refused (``recipient.inactive``,
    naming the date and the successor). A code unknown to the registry is refused.
    ``known``: the codes' entries as of ``day`` when the caller has them already."""
    if known is None:
        known = await registry.as_of(codes, day)
    recipients: list[str] = []
    redirected: dict[str, str] = {}
    for code in codes:
        agency = known.get(code)
        if agency is None:
            raise HubError(
                "recipient.unknown", f"recipient {code} is not in the registry", field=field_name
            )
        if agency.active_on(day):
            recipients.append(code)
            continue
        if mode != "redirect" or not _retired(agency, day):
            raise _inactive(code, agency, day, field_name, _why(agency))
        targets = await current_successors(registry, agency, day)
        if not targets:
            why = _why(agency)
            if agency.successors:
                why += ", which takes no documents either"
            raise _inactive(code, agency, day, field_name, why)
        for target in targets:
            recipients.append(target)
            redirected.setdefault(target, code)
    # A code the sender named itself is not "redirected", even if a retired one leads there too.
    direct = {code for code in codes if code in recipients}
    return Routing(
        tuple(dict.fromkeys(recipients)),
        {new: old for new, old in redirected.items() if new not in direct},
    )


async def check_sender_active(
    registry: PostgresRegistry, code: str, day: dt.date, agency: Agency | None
) -> None:
    """Refuse a package sent as a code that does not take part on ``day`` (``sender.inactive``,
    naming the successor to send as); ``agency`` is its entry as of that day."""
    if agency is None or agency.active_on(day):
        return
    successors = await current_successors(registry, agency, day) if _retired(agency, day) else ()
    hint = f"; send as its successor {', '.join(successors)}" if successors else ""
    raise HubError(
        "sender.inactive",
        f"{code} does not send documents on {day.isoformat()}: {_why(agency)}{hint}",
        field="From/OrganId",
        detail={"organ_id": code, "successors": list(successors)},
    )


async def predecessors(registry: PostgresRegistry, code: str, day: dt.date) -> tuple[str, ...]:
    """Every code that retired into ``code`` (directly or through others) as of ``day``."""
    found: list[str] = []
    frontier = [code]
    for _ in range(_MAX_HOPS):
        if not frontier:
            break
        before = await registry.retired_into(frontier, day)
        frontier = [c for c in before if c not in found and c != code]
        found.extend(frontier)
    return tuple(found)


async def party_codes(registry: PostgresRegistry, code: str, day: dt.date) -> tuple[str, ...]:
    """The codes an agency answers for: its own and those it succeeded. A status from a
    successor about a document sent to its predecessor is a status from a party."""
    return (code, *await predecessors(registry, code, day))


async def describe_parties(
    registry: PostgresRegistry, codes: list[str], then: dt.date, now: dt.date
) -> dict[str, dict]:
    """For each code, the name and place the registry gave it on the document's day, and
    what became of it by ``now`` (its name today, or the codes that succeeded it)."""
    codes = list(dict.fromkeys(c for c in codes if c))
    past = await registry.as_of(codes, then)
    present = await registry.as_of(codes, now)
    described = {}
    for code in codes:
        old, new = past.get(code), present.get(code)
        entry: dict = {"as_of": then.isoformat()}
        if old is not None:
            entry.update(name=old.name, level=old.level, parent=old.parent)
        if new is not None:
            active = new.active_on(now)
            entry["today"] = {
                "name": new.name,
                "active": active,
                "successors": list(await current_successors(registry, new, now))
                if not active and _retired(new, now)
                else [],
            }
        described[code] = entry
    return described
