"""``lienthong registry reorganise``: a whole reorganisation (mergers, splits, renames,
abolitions) from one mapping (:mod:`exchange.mapping`), checked in full, then applied in one
transaction.

Each old code retires the day before ``effective`` and names its successors; the successors
must be registered (``registry import`` them first) and take documents on that day. Every
conflict is listed with a stable kind; with any, nothing is written. Applying the same mapping
twice changes nothing the second time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from exchange.mapping import MappingRow, Problem
from exchange.registry import TWO_TIER_SINCE, Agency
from exchange.store.registry import ALWAYS, REGISTRY_LOCK, PostgresRegistry, same_entry
from schemas import OrganId

__all__ = ["Plan", "apply_reorganisation", "plan_reorganisation"]


@dataclass
class Plan:
    """What a mapping would do: the new versions, what is already so, the conflicts."""

    versions: list[Agency] = field(default_factory=list)
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    per_province: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    described: list[str] = field(default_factory=list)
    province_names: dict[str, str] = field(default_factory=dict)  # top segment -> its name

    def to_json(self) -> dict:
        return {
            "changes": self.described,
            "unchanged": self.unchanged,
            "per_province": {p: dict(c) for p, c in sorted(self.per_province.items())},
            "province_names": self.province_names,
            "conflicts": [dataclasses.asdict(p) for p in self.problems],
            "notes": self.notes,
        }


def _state(versions: list[Agency] | None, day: dt.date) -> Agency | None:
    """The version in effect on ``day`` (versions in order of effect)."""
    current = None
    for version in versions or ():
        if version.effective_from <= day:
            current = version
    return current


def plan_reorganisation(rows: list[MappingRow], histories: dict[str, list[Agency]]) -> Plan:
    """Check a mapping against the registry's history and list the versions it needs."""
    plan = Plan()
    by_old: dict[str, MappingRow] = {}
    for row in rows:
        if row.old in by_old:
            plan.problems.append(
                Problem(
                    row.where,
                    "mapping.duplicate",
                    f"{row.old} is mapped twice (also {by_old[row.old].where})",
                )
            )
        else:
            by_old[row.old] = row
    pending: dict[tuple[str, dt.date], Agency] = {}
    for row in by_old.values():
        _plan_row(row, histories, by_old, pending, plan)
    _find_cycles(by_old, histories, plan)
    plan.versions = list(pending.values())
    for top in plan.per_province:
        unit = _state(histories.get(f"000.00.00.{top}"), rows[0].effective if rows else ALWAYS)
        if unit is not None:
            plan.province_names[top] = unit.name
    _note_districts(histories, plan)
    return plan


def _province(code: str) -> str:
    return OrganId.parse(code).top


def _plan_row(row, histories, by_old, pending, plan: Plan) -> None:
    day = row.effective
    problems = plan.problems
    old = _state(histories.get(row.old), day)
    if old is None:
        why = "is not in the registry" if row.old not in histories else f"is unknown on {day}"
        problems.append(Problem(row.where, "mapping.unknown_code", f"{row.old} {why}"))
        return
    edits: list[tuple[str, dict]] = []
    if row.new != (row.old,):
        retire = {
            "valid_to": day - dt.timedelta(days=1),
            "successors": row.new,
            "route_to": () if row.route in ((), row.new[:1]) else row.route,
        }
        if old.valid_to is not None and old.valid_to < day and old.valid_to != retire["valid_to"]:
            problems.append(
                Problem(
                    row.where,
                    "mapping.already_retired",
                    f"{row.old} already retired after {old.valid_to}",
                )
            )
            return
        if old.valid_from is not None and old.valid_from >= day:
            problems.append(
                Problem(
                    row.where,
                    "mapping.not_yet_valid",
                    f"{row.old} only takes documents from {old.valid_from}, not before {day}",
                )
            )
            return
        edits.append((row.old, retire))
    elif row.name:
        edits.append((row.old, {"name": row.name}))
    for code in row.new:
        if code == row.old:
            continue
        successor = _state(histories.get(code), day)
        if successor is None:
            problems.append(
                Problem(
                    row.where,
                    "mapping.unknown_successor",
                    f"successor {code} is not in the registry on {day} (import it first)",
                )
            )
            continue
        retiring = by_old.get(code)
        if retiring is not None and retiring.effective <= day:
            problems.append(
                Problem(
                    row.where,
                    "mapping.successor_not_active",
                    f"successor {code} itself retires on {retiring.effective}, "
                    f"not after {row.old} hands over on {day}",
                )
            )
            continue
        if not successor.active_on(day):
            problems.append(
                Problem(
                    row.where,
                    "mapping.successor_not_active",
                    f"successor {code} does not take documents on {day} "
                    f"(valid {successor.valid_from or '…'} to {successor.valid_to or '…'})",
                )
            )
            continue
        started = successor.valid_from
        if started is not None and (old.valid_from or dt.date.min) < started < day:
            problems.append(
                Problem(
                    row.where,
                    "mapping.successor_too_early",
                    f"successor {code} takes documents from {started}, before {row.old} "
                    f"retires on {day - dt.timedelta(days=1)}",
                )
            )
            continue
        change = {}
        if row.parent:
            change["parent"] = row.parent
        if row.kind == "rename" and row.name:
            change["name"] = row.name
        if change:
            edits.append((code, change))
    if row.parent and not (
        (parent := _state(histories.get(row.parent), day)) and parent.active_on(day)
    ):
        problems.append(
            Problem(
                row.where, "mapping.unknown_parent", f"parent {row.parent} is not active on {day}"
            )
        )
        return
    _record(row, edits, histories, pending, plan)


def _record(row, edits, histories, pending, plan: Plan) -> None:
    counts = plan.per_province[_province(row.old)]
    changed = False
    for code, change in edits:
        key = (code, row.effective)
        base = pending.get(key) or _state(histories.get(code), row.effective)
        # successor=None: the first of the (maybe new) successors becomes it.
        after = dataclasses.replace(base, **change, successor=None, effective_from=row.effective)
        earlier = pending.get(key)
        if earlier is not None and earlier.parent != after.parent:
            plan.problems.append(
                Problem(
                    row.where,
                    "mapping.parent_conflict",
                    f"{code} is given two parents on {row.effective}",
                )
            )
            continue
        if same_entry(base, after):
            continue
        pending[key] = after
        changed = True
        plan.described.append(_describe(row, code, base, after))
        if code != row.old:
            plan.per_province[_province(code)]["moved" if "parent" in change else "renamed"] += 1
    if changed:
        counts[row.kind] += 1
    else:
        counts["already applied"] += 1
        plan.unchanged += 1


def _describe(row: MappingRow, code: str, before: Agency, after: Agency) -> str:
    day = row.effective.isoformat()
    if code == row.old and row.new != (row.old,):
        to = ", ".join(after.successors) or "no successor"
        return f"{day} {code} ({before.name}) retires → {to} [{row.kind}]"
    parts = []
    if after.parent != before.parent:
        parts.append(f"parent {before.parent} → {after.parent}")
    if after.name != before.name:
        parts.append(f"name {before.name!r} → {after.name!r}")
    return f"{day} {code}: " + ", ".join(parts or ["successors " + ", ".join(after.successors)])


def _find_cycles(by_old, histories, plan: Plan) -> None:
    """A chain of successors that leads back to where it started."""
    edges = {code: set(versions[-1].successors) for code, versions in histories.items() if versions}
    for row in by_old.values():
        edges[row.old] = set(row.new) - {row.old}
    reported: set[frozenset[str]] = set()
    for start in by_old:
        stack = [(start, (start,))]
        while stack:
            code, path = stack.pop()
            for nxt in edges.get(code, ()):
                if nxt == start:
                    loop = frozenset(path)
                    if loop not in reported:
                        reported.add(loop)
                        where = by_old[start].where
                        chain = " → ".join((*path, start))
                        plan.problems.append(Problem(where, "mapping.cycle", f"cycle {chain}"))
                elif nxt not in path and len(path) < 64:
                    stack.append((nxt, (*path, nxt)))


def _note_districts(histories, plan: Plan) -> None:
    pending = {v.code for v in plan.versions if v.valid_to}  # retiring with this plan
    late = []
    for code, versions in histories.items():
        if code in pending:
            continue
        now = _state(versions, TWO_TIER_SINCE)
        if now is not None and now.level == "district" and now.active_on(TWO_TIER_SINCE):
            late.append(code)
    if late:
        shown = ", ".join(late[:5]) + (" …" if len(late) > 5 else "")
        plan.notes.append(
            f"{len(late)} district-level code(s) still take documents on or after "
            f"{TWO_TIER_SINCE} (two tiers since then): {shown}"
        )


async def apply_reorganisation(
    registry: PostgresRegistry, rows: list[MappingRow], *, by: str, reason: str, dry_run: bool
) -> Plan:
    """Plan the mapping and, unless ``dry_run`` or something conflicts, write every version it
    needs in one transaction (the plan is made again under the registry's lock)."""
    async with registry.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", REGISTRY_LOCK)
        histories = await registry.histories(conn=conn)
        plan = plan_reorganisation(rows, histories)
        if not dry_run and not plan.problems and plan.versions:
            before = {
                v.code: _state(histories.get(v.code), v.effective_from) for v in plan.versions
            }
            await registry.write_versions(conn, plan.versions, before, by=by, reason=reason)
    return plan
