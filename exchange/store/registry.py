"""The agency registry, with its history, and who may sign for each agency, in PostgreSQL.

Every change of an agency is a new row of ``agency_versions`` with the day it takes effect;
nothing is edited in place. A question "as of a day" takes, per code, the latest version in
effect that day. ``agencies`` keeps one row per code, the latest version, for the tables that
point at a code. Each version is also a ledger event (``registry``): who, when, what changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence

import asyncpg

from exchange.events import Event
from exchange.registry import COLUMNS, Agency, Place
from exchange.store.events import record_events

__all__ = ["ALWAYS", "PostgresRegistry", "REGISTRY_CHANNEL", "REGISTRY_LOCK", "same_entry", "today"]

REGISTRY_CHANNEL = "lienthong_registry"  # NOTIFY'd on every change, so hubs declare queues
SIGNER_RULES = ("cert", "organization_identifier", "delegate")
ALWAYS = dt.date(1, 1, 1)  # the effective day of a code's first version: since always
REGISTRY_LOCK = 7214015  # one writer of the registry at a time (versions are read-then-written)
# The columns of a version that are the agency itself (not its place in the history).
_DATA = (*COLUMNS, "successors", "route_to")
# Per code, the latest version in effect on $1: of the codes $2 (_AS_OF), or of all (_ALL_AS_OF).
_ALL_AS_OF = """
    SELECT DISTINCT ON (v.code) v.* FROM agency_versions v
    WHERE v.effective_from <= $1
    ORDER BY v.code, v.effective_from DESC, v.id DESC
"""
_AS_OF = _ALL_AS_OF.replace("<= $1", "<= $1 AND v.code = ANY($2::text[])")


def today() -> dt.date:
    """The hub's day (UTC), the default of every "as of" question."""
    return dt.datetime.now(dt.UTC).date()


def _agency(row: asyncpg.Record) -> Agency:
    return Agency(
        code=row["code"],
        name=row["name"],
        parent=row["parent"],
        level=row["level"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        verify_policy=row["verify_policy"],
        successors=tuple(row["successors"]),
        route_to=tuple(row["route_to"]),
        effective_from=row["effective_from"],
        version=row["id"],
    )


def same_entry(a: Agency, b: Agency) -> bool:
    """Whether two versions say the same about the agency (history fields aside)."""
    return all(getattr(a, column) == getattr(b, column) for column in _DATA)


def _changes(before: Agency | None, after: Agency) -> dict:
    def plain(value):
        if isinstance(value, dt.date):
            return value.isoformat()
        return list(value) if isinstance(value, tuple) else value

    return {
        column: [plain(getattr(before, column)) if before else None, plain(getattr(after, column))]
        for column in _DATA
        if column != "successor"
        and (before is None or getattr(before, column) != getattr(after, column))
    }


class PostgresRegistry:
    """Agencies with their history, their signer rules and their signature policy."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ----- writing ----------------------------------------------------------------------

    async def upsert(
        self,
        agencies: Sequence[Agency],
        given: Sequence[frozenset[str]] | None = None,
        *,
        effective: dt.date | None = None,
        by: str = "operator",
        reason: str | None = None,
    ) -> tuple[int, int]:
        """Register agencies or record new versions of them, in one transaction; returns
        (new codes, codes given a new version). An entry that says what the registry already
        says is left alone.

        ``given``: per agency, the columns the file had; the others keep their values as of
        ``effective`` (None: every column is written). Changes take effect on ``effective``
        (default today); a new code's first version too (default: since always).
        """
        given = given or [frozenset(COLUMNS)] * len(agencies)
        day, first = effective or today(), effective or ALWAYS
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", REGISTRY_LOCK)
            codes = [a.code for a in agencies]
            known = set(
                await conn.fetchval(
                    "SELECT coalesce(array_agg(code), '{}') FROM agencies "
                    "WHERE code = ANY($1::text[])",
                    codes,
                )
            )
            current = await self._as_of(conn, codes, day)
            versions = []
            for agency, columns in zip(agencies, given, strict=True):
                before = current.get(agency.code)
                if agency.code not in known:
                    versions.append(dataclasses.replace(agency, effective_from=first))
                    continue
                after = _merge(before, agency, columns)
                if before is None or not same_entry(before, after):
                    versions.append(dataclasses.replace(after, effective_from=day))
            await self.write_versions(conn, versions, current, by=by, reason=reason)
        inserted = sum(1 for a in agencies if a.code not in known)
        return inserted, len(versions) - inserted

    async def write_versions(
        self,
        conn: asyncpg.Connection,
        versions: Sequence[Agency],
        before: dict[str, Agency],
        *,
        by: str,
        reason: str | None,
    ) -> None:
        """Record new versions (each with its ``effective_from``), inside the caller's
        transaction: the codes' rows, the versions, one ledger event per version."""
        if not versions:
            return
        await conn.executemany(
            "INSERT INTO agencies (code, name, parent, level, valid_from, valid_to, successor, "
            "routing_key, verify_policy, successors, route_to) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (code) DO NOTHING",
            [_columns(v)[:11] for v in versions],
        )
        # One statement for every version; successor lists travel as comma-joined text (an
        # array of arrays cannot be unnested per row) and codes never hold a comma.
        inserted = await conn.fetch(
            "INSERT INTO agency_versions (code, name, parent, level, valid_from, valid_to, "
            "routing_key, verify_policy, successors, route_to, effective_from, recorded_by, "
            "reason) SELECT c, n, p, l, vf, vt, rk, vp, string_to_array(s, ','), "
            "string_to_array(r, ','), e, $12, $13 FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::text[], $5::date[], $6::date[], $7::text[], $8::text[], "
            "$9::text[], $10::text[], $11::date[]) AS u(c, n, p, l, vf, vt, rk, vp, s, r, e) "
            "RETURNING id, code, effective_from, recorded_at",
            [v.code for v in versions],
            [v.name for v in versions],
            [v.parent for v in versions],
            [v.level for v in versions],
            [v.valid_from for v in versions],
            [v.valid_to for v in versions],
            [v.routing_key for v in versions],
            [v.verify_policy for v in versions],
            [",".join(v.successors) for v in versions],
            [",".join(v.route_to) for v in versions],
            [v.effective_from for v in versions],
            by,
            reason,
        )
        by_key = {(r["code"], r["effective_from"]): r for r in inserted}
        ids = [by_key[(v.code, v.effective_from)] for v in versions]
        # The one row per code follows the latest version (by effective day, then record).
        await conn.execute(
            """
            UPDATE agencies a SET name = v.name, parent = v.parent, level = v.level,
                valid_from = v.valid_from, valid_to = v.valid_to, successor = v.successors[1],
                successors = v.successors, route_to = v.route_to,
                verify_policy = v.verify_policy, routing_key = v.routing_key, updated_at = now()
            FROM (SELECT DISTINCT ON (code) * FROM agency_versions
                  WHERE code = ANY($1::text[])
                  ORDER BY code, effective_from DESC, id DESC) v
            WHERE a.code = v.code
            """,
            list({v.code for v in versions}),
        )
        events = []
        for version, row in zip(versions, ids, strict=True):
            detail = {
                "code": version.code,
                "version": row["id"],
                "effective_from": version.effective_from.isoformat(),
                "by": by,
                "reason": reason,
                "changed": _changes(before.get(version.code), version),
            }
            digest = hashlib.sha256(
                json.dumps(detail, sort_keys=True, ensure_ascii=False).encode()
            ).digest()
            events.append(Event("registry", digest, None, version.code, detail, row["recorded_at"]))
        await record_events(conn, events)
        await conn.execute("SELECT pg_notify($1, '')", REGISTRY_CHANNEL)

    # ----- reading ----------------------------------------------------------------------

    async def _as_of(self, conn, codes: Sequence[str] | None, day: dt.date) -> dict[str, Agency]:
        if codes is None:
            rows = await conn.fetch(_ALL_AS_OF, day)
        else:
            rows = await conn.fetch(_AS_OF, day, list(codes))
        return {row["code"]: _agency(row) for row in rows}

    async def as_of(self, codes: Sequence[str], day: dt.date) -> dict[str, Agency]:
        """The agencies as the registry described them on ``day``; codes unknown then are
        absent."""
        return await self._as_of(self.pool, codes, day)

    async def agencies(self, codes: Sequence[str]) -> dict[str, Agency]:
        """Agencies by normalised code, as of today, in one query; unknown codes are absent."""
        return await self.as_of(codes, today())

    async def history(self, code: str) -> list[Agency]:
        """Every version of an agency, in the order they take effect."""
        return [agency for agency, _ in await self.recorded_history(code)]

    async def recorded_history(self, code: str) -> list[tuple[Agency, dict]]:
        """Every version of an agency in the order they take effect, each with who recorded
        it, when and why (``recorded_by``, ``recorded_at``, ``reason``)."""
        rows = await self.pool.fetch(
            "SELECT * FROM agency_versions WHERE code = $1 ORDER BY effective_from, id", code
        )
        return [
            (
                _agency(r),
                {
                    "recorded_by": r["recorded_by"],
                    "recorded_at": r["recorded_at"].isoformat(),
                    "reason": r["reason"],
                },
            )
            for r in rows
        ]

    async def histories(
        self, codes: Sequence[str] | None = None, *, conn: asyncpg.Connection | None = None
    ) -> dict[str, list[Agency]]:
        """Every version of the given agencies (None: all), by code, in order of effect."""
        rows = await (conn or self.pool).fetch(
            "SELECT * FROM agency_versions WHERE $1::text[] IS NULL OR code = ANY($1::text[]) "
            "ORDER BY code, effective_from, id",
            list(codes) if codes is not None else None,
        )
        found: dict[str, list[Agency]] = {}
        for row in rows:
            found.setdefault(row["code"], []).append(_agency(row))
        return found

    async def retired_into(self, codes: Sequence[str], day: dt.date) -> list[str]:
        """The codes retired by ``day`` whose successors, as of that day, include one of
        ``codes``."""
        named = await self.pool.fetchval(  # codes that ever named one of them (GIN index)
            "SELECT coalesce(array_agg(DISTINCT code), '{}') FROM agency_versions "
            "WHERE successors && $1::text[]",
            list(codes),
        )
        if not named:  # the common case: nobody retired into them
            return []
        rows = await self.pool.fetch(
            f"SELECT code FROM ({_AS_OF}) a WHERE successors && $3::text[] "
            "AND valid_to IS NOT NULL AND valid_to < $1 ORDER BY code",
            day,
            named,
            list(codes),
        )
        return [r["code"] for r in rows]

    async def structure_at(self, day: dt.date) -> dict[str, Place]:
        """The tree as it stood on ``day``: for every code that existed then (retired ones
        included), its level, parent and province (the province-level unit above it, or
        itself; for a code retired by then, its successor's). Reports group by this to
        compare years across a reorganisation."""
        tree = {
            code: a
            for code, a in (await self._as_of(self.pool, None, day)).items()
            if a.valid_from is None or a.valid_from <= day
        }
        return {
            code: Place(a.level, a.parent, _province(tree, code, day)) for code, a in tree.items()
        }

    async def exists(self, code: str) -> bool:
        return bool(await self.pool.fetchval("SELECT 1 FROM agencies WHERE code = $1", code))

    async def codes(self) -> list[str]:
        """Every registered code, in order."""
        return [r["code"] for r in await self.pool.fetch("SELECT code FROM agencies ORDER BY 1")]

    async def list(
        self,
        *,
        parent: str | None = None,
        level: str | None = None,
        under: str | None = None,
        active_on: dt.date | None = None,
        at: dt.date | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Agency]:
        """Agencies as of ``at`` (default today) ordered by code, filtered by parent, level,
        subtree or the day they take documents. With ``at``, codes that only begin later are
        left out (codes retired by then are kept: they carry their ``valid_to``).

        ``under`` is a subtree prefix (:attr:`OrganId.subtree_prefix`), the unit itself
        included.
        """
        rows = await self.pool.fetch(
            f"""
            SELECT * FROM ({_ALL_AS_OF}) a
            WHERE ($2::text IS NULL OR parent = $2)
              AND ($3::text IS NULL OR level = $3)
              AND ($4::text IS NULL OR routing_key = $4 OR routing_key LIKE $4 || '.%')
              AND ($5::date IS NULL OR ((valid_from IS NULL OR valid_from <= $5)
                                         AND (valid_to IS NULL OR valid_to >= $5)))
              AND (NOT $8 OR valid_from IS NULL OR valid_from <= $1)
            ORDER BY code LIMIT $6 OFFSET $7
            """,
            at or today(),
            parent,
            level,
            under,
            active_on,
            limit,
            offset,
            at is not None,
        )
        return [_agency(r) for r in rows]

    async def verify_policy(self, code: str) -> str | None:
        """The agency's own signature policy today (None: the hub's setting)."""
        found = await self.agencies([code])
        return found[code].verify_policy if code in found else None

    # ----- signers ----------------------------------------------------------------------

    async def signer_rules(self, organ_id: str) -> list[tuple[str, str, str]]:
        """(organ id, rule, value) of the agency's rules, of the agencies it delegates to, and
        of the agencies it succeeded (rules follow successors, for what is sent from now on)."""
        from exchange.succession import predecessors  # the successor graph lives there

        own = [organ_id, *await predecessors(self, organ_id, today())]
        rows = await self.pool.fetch(
            "SELECT organ_id, rule, value FROM agency_signers WHERE organ_id = ANY($1::text[]) "
            "OR organ_id IN (SELECT value FROM agency_signers WHERE organ_id = ANY($1::text[]) "
            "AND rule = 'delegate')",
            own,
        )
        return [(r["organ_id"], r["rule"], r["value"]) for r in rows]

    async def add_signer_rule(self, organ_id: str, rule: str, value: str) -> None:
        """Add a rule (idempotent)."""
        if rule not in SIGNER_RULES:
            raise ValueError(f"rule must be one of {', '.join(SIGNER_RULES)}")
        await self.pool.execute(
            "INSERT INTO agency_signers (organ_id, rule, value) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            organ_id,
            rule,
            value,
        )


def _merge(before: Agency | None, agency: Agency, columns: frozenset[str]) -> Agency:
    """``agency`` with the columns the file lacked taken from ``before``."""
    if before is None:
        return agency
    kept = {
        column: getattr(before, column)
        for column in COLUMNS
        if column not in columns and column not in ("code", "name")
    }
    # The successor lists go with the successor column: kept when it is absent or unchanged.
    kept.pop("successor", None)
    if "successor" not in columns or agency.successor == before.successor:
        kept["successors"], kept["route_to"] = before.successors, before.route_to
    return dataclasses.replace(agency, **kept)


def _province(tree: dict[str, Agency], code: str, day: dt.date) -> str | None:
    """The province a code belongs to on ``day``: up its parents, and for a code retired by
    then through its successor (a merged province's units count under the one it joined)."""
    seen: set[str] = set()
    current: str | None = code
    while current is not None and current in tree and current not in seen:
        seen.add(current)
        agency = tree[current]
        if agency.valid_to is not None and agency.valid_to < day and agency.redirect_targets:
            current = agency.redirect_targets[0]
        elif agency.level == "province":
            return current
        else:
            current = agency.parent
    return None


def _columns(v: Agency) -> tuple:
    return (
        v.code,
        v.name,
        v.parent,
        v.level,
        v.valid_from,
        v.valid_to,
        v.successor,
        v.routing_key,
        v.verify_policy,
        list(v.successors),
        list(v.route_to),
    )
