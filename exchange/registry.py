"""The agency registry: who exists, where in the tree, and for how long (codes change).

The model and registry files; the rows and their history are in :mod:`exchange.store.registry`,
where retired codes lead in :mod:`exchange.succession`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from schemas import GovLevel, OrganId, OrganIdError

__all__ = [
    "COLUMNS",
    "Agency",
    "Place",
    "TWO_TIER_SINCE",
    "RegistryFile",
    "RegistryFileError",
    "read_registry_file",
]

COLUMNS = (
    "code",
    "name",
    "parent",
    "level",
    "valid_from",
    "valid_to",
    "successor",
    "verify_policy",
)
_POLICIES = ("enforce", "report-only")
# Two tiers (province, commune) since this day: the district level is for codes from before.
TWO_TIER_SINCE = dt.date(2025, 7, 1)


class RegistryFileError(ValueError):
    """A registry file that cannot be imported; the message names the row and the column."""


@dataclass(frozen=True)
class Agency:
    """One registry entry."""

    code: str
    name: str
    parent: str | None
    level: str
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    successor: str | None = None
    # The hub's signature policy for packages this agency sends; None follows the hub setting.
    verify_policy: str | None = None
    # Every code that replaced it, in order (``successor`` is the first), and those of them
    # that take packages still addressed to it (empty: the first successor).
    successors: tuple[str, ...] = ()
    route_to: tuple[str, ...] = ()
    # Which version of the entry this is, and from which day it answers (history).
    effective_from: dt.date | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        if self.successor and not self.successors:
            object.__setattr__(self, "successors", (self.successor,))
        elif self.successors and self.successor != self.successors[0]:
            object.__setattr__(self, "successor", self.successors[0])
        object.__setattr__(self, "successors", tuple(self.successors))
        object.__setattr__(self, "route_to", tuple(self.route_to))

    @property
    def redirect_targets(self) -> tuple[str, ...]:
        """The codes that take a package addressed to this one once it has retired."""
        return self.route_to or self.successors[:1]

    @property
    def routing_key(self) -> str:
        return OrganId.parse(self.code).routing_key

    def active_on(self, day: dt.date) -> bool:
        """Whether the code takes documents on ``day``."""
        if self.valid_from and day < self.valid_from:
            return False
        return not (self.valid_to and day > self.valid_to)

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("valid_from", "valid_to", "effective_from"):
            data[key] = data[key].isoformat() if data[key] else None
        data["successors"] = list(self.successors)
        data["route_to"] = list(self.route_to)
        data["routing_key"] = self.routing_key
        return data


def _date(value: object, where: str) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value).strip().replace("/", "-"))
    except ValueError:
        raise RegistryFileError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _record(raw: dict, where: str) -> Agency:
    unknown = set(raw) - set(COLUMNS)
    if unknown:
        raise RegistryFileError(f"{where}: unknown columns {', '.join(sorted(unknown))}")
    try:
        code = OrganId.parse(str(raw.get("code") or ""))
        parent = raw.get("parent") or None
        parent_id = OrganId.parse(str(parent)) if parent else code.parent
        successor = raw.get("successor") or None
        successor_code = str(OrganId.parse(str(successor))) if successor else None
    except OrganIdError as exc:
        raise RegistryFileError(f"{where}: {exc.message}") from None
    name = str(raw.get("name") or "").strip()
    if not name:
        raise RegistryFileError(f"{where}: name is required")
    level = str(raw.get("level") or code.gov_level.value).strip().lower()
    if level not in {lvl.value for lvl in GovLevel}:
        raise RegistryFileError(
            f"{where}: level {level!r} must be one of central, province, district, commune"
        )
    policy = str(raw.get("verify_policy") or "").strip().lower() or None
    if policy is not None and policy not in _POLICIES:
        raise RegistryFileError(f"{where}: verify_policy must be enforce or report-only")
    valid_from = _date(raw.get("valid_from"), where)
    valid_to = _date(raw.get("valid_to"), where)
    if valid_from and valid_to and valid_to < valid_from:
        raise RegistryFileError(f"{where}: valid_to is before valid_from")
    if level == "district" and valid_from and valid_from >= TWO_TIER_SINCE:
        raise RegistryFileError(
            f"{where}: the district level ended on 2025-06-30; a code valid from "
            f"{valid_from.isoformat()} is a province or a commune"
        )
    return Agency(
        code=str(code),
        name=name,
        parent=str(parent_id) if parent_id else None,
        level=level,
        valid_from=valid_from,
        valid_to=valid_to,
        successor=successor_code,
        verify_policy=policy,
    )


@dataclass(frozen=True)
class Place:
    """Where a code stood in the tree on some day (see ``PostgresRegistry.structure_at``)."""

    level: str
    parent: str | None
    province: str | None


@dataclass(frozen=True)
class RegistryFile:
    """Agencies read from a file, and for each the columns the file gave (others are kept)."""

    agencies: list[Agency]
    given: list[frozenset[str]]


def _given(raw: dict) -> frozenset[str]:
    return frozenset(k for k in raw if k in COLUMNS)


def read_registry_file(path: str | Path) -> RegistryFile:
    """Read agencies from CSV (with a header row) or JSON (a list, or {"agencies": [...]})."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryFileError(f"{path.name}: not valid JSON ({exc})") from None
        rows = data.get("agencies") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RegistryFileError(f"{path.name}: expected a list of agency objects")
        records = [_record(row, f"{path.name} item {i}") for i, row in enumerate(rows, 1)]
        given = [_given(row) for row in rows]
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "code" not in reader.fieldnames:
            raise RegistryFileError(f"{path.name}: the header row must name a 'code' column")
        records = [_record(row, f"{path.name} line {reader.line_num}") for row in reader]
        given = [_given(dict.fromkeys(reader.fieldnames))] * len(records)
    seen: set[str] = set()
    for agency in records:
        if agency.code in seen:
            raise RegistryFileError(f"{path.name}: code {agency.code} appears twice")
        seen.add(agency.code)
    return RegistryFile(records, given)
