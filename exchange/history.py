"""The registry's answers about a day: an agency as of a date, with its versions, and the
parties of an old document under the names they had then.

Shared by ``GET /v1/agencies/{code}?at=``, ``lienthong registry show`` and the trail and
evidence of a package.
"""

from __future__ import annotations

import datetime as dt

from exchange.errors import HubError
from exchange.store.registry import PostgresRegistry, today
from exchange.succession import current_successors, describe_parties
from schemas import OrganId

__all__ = ["agency_as_of", "package_parties", "parse_day"]


def parse_day(raw: str | None, field: str = "at") -> dt.date | None:
    """A YYYY-MM-DD query or option value (None when absent); ``request.invalid_parameter``
    otherwise."""
    if raw is None or raw == "":
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise HubError(
            "request.invalid_parameter", f"{field} must be a date, YYYY-MM-DD", field=field
        ) from None


async def agency_as_of(registry: PostgresRegistry, raw_code: str, day: dt.date | None) -> dict:
    """One agency as the registry described it on ``day`` (default today), whether it took
    documents then, the codes that take its documents today, and every version (with who
    recorded it, when and why).

    Raises ``agency.not_found`` for a code the registry never had or did not know yet."""
    code = str(OrganId.parse(raw_code, field="code"))
    day = day or today()
    recorded = await registry.recorded_history(code)
    versions = [agency for agency, _ in recorded]
    if not versions:
        raise HubError("agency.not_found", f"{code} is not in the registry", field="code")
    found = (await registry.as_of([code], day)).get(code)
    if found is None:
        first = versions[0].effective_from.isoformat()
        raise HubError(
            "agency.not_found",
            f"{code} was not in the registry on {day.isoformat()} (its first version is from "
            f"{first})",
            field="code",
        )
    now = (await registry.as_of([code], today()))[code]
    retired_now = now.valid_to is not None and today() > now.valid_to
    return {
        "at": day.isoformat(),
        "agency": found.to_json(),
        "active": found.active_on(day),
        "successors_today": list(await current_successors(registry, now, today()))
        if retired_now
        else [],
        "versions": [{**v.to_json(), **record} for v, record in recorded],
    }


async def package_parties(
    registry: PostgresRegistry, codes: list[str | None], received_at: dt.datetime
) -> dict[str, dict]:
    """The names of a package's sender and recipients (and of the retired codes its sender
    addressed) as of the day it arrived, and what each is today."""
    then = received_at.astimezone(dt.UTC).date()
    return await describe_parties(registry, [c for c in codes if c], then, today())
