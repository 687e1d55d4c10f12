"""Reorganisation mapping files (CSV or JSON): what each row says, and every row that cannot be
read. Planning and applying them is :mod:`exchange.reorganise`.

A row: ``old`` code, ``new`` code(s) (separated by spaces or ``;``), ``effective`` day, ``kind``
(merge | split | rename | abolish), optionally the ``parent`` the new codes have from that day,
a ``name`` (rename) and ``route`` (``all`` or the new codes that take packages still sent to the
old one; default the first).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path

from schemas import OrganId, OrganIdError

__all__ = ["KINDS", "MappingRow", "Problem", "read_mapping"]

KINDS = ("merge", "split", "rename", "abolish")
_COLUMNS = ("old", "new", "effective", "kind", "parent", "name", "route")


@dataclass(frozen=True)
class Problem:
    """A conflict in a mapping: where, a stable kind, and what is wrong."""

    where: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.kind}]"


@dataclass(frozen=True)
class MappingRow:
    """One line of a mapping file."""

    where: str
    old: str
    new: tuple[str, ...]
    effective: dt.date
    kind: str
    parent: str | None = None
    name: str | None = None
    route: tuple[str, ...] = ()


def _codes(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [c for c in str(value).replace(";", " ").replace(",", " ").split() if c]


def _row(raw: dict, where: str, problems: list[Problem]) -> MappingRow | None:
    unknown = sorted(set(raw) - set(_COLUMNS))
    if unknown:
        problems.append(Problem(where, "mapping.malformed", f"unknown columns {unknown}"))
        return None
    kind = str(raw.get("kind") or "").strip().lower()
    if kind not in KINDS:
        problems.append(
            Problem(where, "mapping.bad_kind", f"kind {kind!r} must be one of {', '.join(KINDS)}")
        )
        return None
    try:
        effective = dt.date.fromisoformat(str(raw.get("effective") or "").strip())
    except ValueError:
        problems.append(
            Problem(where, "mapping.bad_date", f"effective {raw.get('effective')!r} is not a date")
        )
        return None
    try:
        old = str(OrganId.parse(str(raw.get("old") or "")))
        new = tuple(str(OrganId.parse(c)) for c in _codes(raw.get("new")))
        parent = str(OrganId.parse(str(raw["parent"]))) if raw.get("parent") else None
        route_raw = _codes(raw.get("route"))
        route = new if route_raw == ["all"] else tuple(str(OrganId.parse(c)) for c in route_raw)
    except OrganIdError as exc:
        problems.append(Problem(where, "mapping.malformed", exc.message))
        return None
    wanted = {"merge": "exactly one", "split": "two or more", "rename": "exactly one"}
    counts_ok = {
        "merge": len(new) == 1,
        "split": len(new) >= 2,
        "rename": len(new) == 1,
        "abolish": not new,
    }
    if not counts_ok[kind]:
        need = wanted.get(kind, "no")
        problems.append(
            Problem(where, "mapping.arity", f"{kind} needs {need} new code(s), got {len(new)}")
        )
        return None
    if old in new and kind != "rename":
        problems.append(Problem(where, "mapping.self", f"{old} is mapped to itself"))
        return None
    if set(route) - set(new):
        problems.append(Problem(where, "mapping.route", "route names codes that are not new"))
        return None
    name = str(raw.get("name") or "").strip() or None
    if kind == "rename" and new == (old,) and not name:
        problems.append(Problem(where, "mapping.malformed", "a rename in place needs a name"))
        return None
    return MappingRow(where, old, new, effective, kind, parent, name, route)


def read_mapping(path: str | Path) -> tuple[list[MappingRow], list[Problem]]:
    """The rows of a CSV (header row) or JSON (a list, or {"mapping": [...]}) mapping file,
    and every row that cannot be read (all of them, not only the first)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return [], [Problem(path.name, "mapping.malformed", "not UTF-8 text")]
    problems: list[Problem] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return [], [Problem(path.name, "mapping.malformed", f"not valid JSON ({exc})")]
        raw_rows = data.get("mapping") if isinstance(data, dict) else data
        if not isinstance(raw_rows, list) or not all(isinstance(r, dict) for r in raw_rows):
            return [], [Problem(path.name, "mapping.malformed", "expected a list of objects")]
        found = [(f"{path.name} item {i}", r) for i, r in enumerate(raw_rows, 1)]
    else:
        reader = csv.DictReader(io.StringIO(text))
        missing = {"old", "effective", "kind"} - set(reader.fieldnames or ())
        if missing:
            return [], [
                Problem(path.name, "mapping.malformed", f"the header lacks {sorted(missing)}")
            ]
        found = [(f"{path.name} line {reader.line_num}", dict(r)) for r in reader]
    rows = [row for where, raw in found if (row := _row(raw, where, problems))]
    return rows, problems
