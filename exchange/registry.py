"""The agency registry: who exists, where in the tree, and for how long (codes change)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

from exchange.errors import HubError
from schemas import GovLevel, OrganId, OrganIdError

__all__ = [
    "Agency",
    "RegistryFile",
    "RegistryFileError",
    "check_recipient",
    "get_agencies",
    "list_agencies",
    "read_registry_file",
    "upsert_agencies",
]

_COLUMNS = (
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
        for key in ("valid_from", "valid_to"):
            data[key] = data[key].isoformat() if data[key] else None
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
    unknown = set(raw) - set(_COLUMNS)
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
class RegistryFile:
    """Agencies read from a file, and for each the columns the file gave (others are kept)."""

    agencies: list[Agency]
    given: list[frozenset[str]]


def _given(raw: dict) -> frozenset[str]:
    return frozenset(k for k in raw if k in _COLUMNS)


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


_UPDATABLE = ("parent", "level", "valid_from", "valid_to", "successor", "verify_policy")


async def upsert_agencies(
    pool: asyncpg.Pool, agencies: list[Agency], given: list[frozenset[str]] | None = None
) -> tuple[int, int]:
    """Insert or update agencies in one transaction; returns (inserted, updated).

    ``given``: per agency, the columns to write on an existing entry (a file's columns); the
    others keep their stored values. None writes every column (replace).
    """
    given = given or [frozenset(_COLUMNS)] * len(agencies)
    rows = [
        (
            a.code,
            a.name,
            a.parent,
            a.level,
            a.valid_from,
            a.valid_to,
            a.successor,
            a.routing_key,
            a.verify_policy,
            [column in columns for column in _UPDATABLE],
        )
        for a, columns in zip(agencies, given, strict=True)
    ]
    async with pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchval(
            "SELECT count(*) FROM agencies WHERE code = ANY($1::text[])", [r[0] for r in rows]
        )
        await conn.executemany(
            """
            INSERT INTO agencies (code, name, parent, level, valid_from, valid_to, successor,
                                  routing_key, verify_policy)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (code) DO UPDATE SET
                name = EXCLUDED.name,
                parent = CASE WHEN ($10::bool[])[1] THEN EXCLUDED.parent ELSE agencies.parent END,
                level = CASE WHEN ($10::bool[])[2] THEN EXCLUDED.level ELSE agencies.level END,
                valid_from = CASE WHEN ($10::bool[])[3] THEN EXCLUDED.valid_from
                                  ELSE agencies.valid_from END,
                valid_to = CASE WHEN ($10::bool[])[4] THEN EXCLUDED.valid_to
                                ELSE agencies.valid_to END,
                successor = CASE WHEN ($10::bool[])[5] THEN EXCLUDED.successor
                                 ELSE agencies.successor END,
                verify_policy = CASE WHEN ($10::bool[])[6] THEN EXCLUDED.verify_policy
                                     ELSE agencies.verify_policy END,
                updated_at = now()
            """,
            rows,
        )
        await conn.execute("SELECT pg_notify('lienthong_registry', '')")
    return len(rows) - existing, existing


def _agency(row: asyncpg.Record) -> Agency:
    return Agency(
        code=row["code"],
        name=row["name"],
        parent=row["parent"],
        level=row["level"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        successor=row["successor"],
        verify_policy=row["verify_policy"],
    )


async def get_agencies(
    conn: asyncpg.Connection | asyncpg.Pool, codes: list[str]
) -> dict[str, Agency]:
    """Agencies by normalised code, in one query; unknown codes are absent."""
    rows = await conn.fetch("SELECT * FROM agencies WHERE code = ANY($1::text[])", codes)
    return {row["code"]: _agency(row) for row in rows}


async def list_agencies(
    pool: asyncpg.Pool,
    *,
    parent: str | None = None,
    level: str | None = None,
    under: str | None = None,
    active_on: dt.date | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[Agency]:
    """Agencies ordered by code, filtered by parent, level, subtree or date.

    ``under`` is a subtree prefix (:attr:`OrganId.subtree_prefix`), the unit itself included.
    """
    rows = await pool.fetch(
        """
        SELECT * FROM agencies
        WHERE ($1::text IS NULL OR parent = $1)
          AND ($2::text IS NULL OR level = $2)
          AND ($3::text IS NULL OR routing_key = $3 OR routing_key LIKE $3 || '.%')
          AND ($4::date IS NULL OR ((valid_from IS NULL OR valid_from <= $4)
                                     AND (valid_to IS NULL OR valid_to >= $4)))
        ORDER BY code LIMIT $5 OFFSET $6
        """,
        parent,
        level,
        under,
        active_on,
        limit,
        offset,
    )
    return [_agency(r) for r in rows]


def check_recipient(agency: Agency | None, code: str, day: dt.date, field: str) -> None:
    """Refuse a recipient that is not registered or not active on ``day``."""
    if agency is None:
        raise HubError(
            "recipient.unknown", f"recipient {code} is not in the registry", field=field
        )
    if not agency.active_on(day):
        hint = f"; its successor is {agency.successor}" if agency.successor else ""
        raise HubError(
            "recipient.inactive",
            f"recipient {code} does not take documents on {day.isoformat()}{hint}",
            field=field,
        )
