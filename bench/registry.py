"""Registry benchmark at national size: as-of lookups, routing to successors, a reorganisation.

    .venv/bin/python bench/registry.py            # 63 provinces x 10 districts x 18 communes
    .venv/bin/python bench/registry.py --quick    # 10 x 5 x 5

It builds a four-level registry (provinces, districts, communes) in its own schema, then times
what a submission asks of it (the recipients as of today, a retired recipient's successors, a
successor's predecessors), the tree of a day for reports, and a reorganisation of the kind of
2025 (every district retired into its first commune, every other commune merged into it),
dry run then applied, then applied again (nothing to do). The schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exchange.config import load_settings  # noqa: E402
from exchange.mapping import MappingRow  # noqa: E402
from exchange.registry import Agency  # noqa: E402
from exchange.reorganise import apply_reorganisation  # noqa: E402
from exchange.store import database as db  # noqa: E402
from exchange.store.registry import PostgresRegistry, today  # noqa: E402
from exchange.succession import predecessors, route_recipients  # noqa: E402

DAY = dt.date(2025, 7, 1)


def registry_of(provinces: int, districts: int, communes: int) -> list[Agency]:
    out = []
    for p in range(1, provinces + 1):
        top = f"000.00.00.H{p:02d}"
        out.append(Agency(top, f"UBND tỉnh {p}", None, "province"))
        for d in range(1, districts + 1):
            district = f"000.00.{d:02d}.H{p:02d}"
            out.append(Agency(district, f"UBND huyện {p}/{d}", top, "district"))
            for c in range(1, communes + 1):
                code = f"000.{c:02d}.{d:02d}.H{p:02d}"
                out.append(Agency(code, f"UBND xã {p}/{d}/{c}", district, "commune"))
    return out


def mapping_of(provinces: int, districts: int, communes: int) -> list[MappingRow]:
    rows = []
    for p in range(1, provinces + 1):
        top = f"000.00.00.H{p:02d}"
        for d in range(1, districts + 1):
            first = f"000.01.{d:02d}.H{p:02d}"
            rows.append(
                MappingRow(f"d{p}/{d}", f"000.00.{d:02d}.H{p:02d}", (first,), DAY, "merge", top)
            )
            for c in range(2, communes + 1):
                rows.append(
                    MappingRow(
                        f"c{p}/{d}/{c}", f"000.{c:02d}.{d:02d}.H{p:02d}", (first,), DAY, "merge"
                    )
                )
    return rows


async def timed(label: str, results: dict, work, repeat: int = 1):
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = await work()
        samples.append((time.perf_counter() - started) * 1000)
    results[label] = statistics.median(samples)
    return value


async def main(quick: bool) -> None:
    shape = (10, 5, 5) if quick else (63, 10, 18)
    settings = load_settings().replace(database_schema=f"bench_{secrets.token_hex(4)}")
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=4)
    registry = PostgresRegistry(pool)
    results: dict[str, float] = {}
    try:
        agencies = registry_of(*shape)
        await timed(
            f"register {len(agencies)} agencies", results, lambda: registry.upsert(agencies)
        )
        one = [agencies[len(agencies) // 2].code]
        await timed(
            "3 recipients as of today (median)",
            results,
            lambda: registry.agencies([a.code for a in agencies[:3]]),
            50,
        )
        rows = mapping_of(*shape)
        plan = await timed(
            f"reorganise dry run ({len(rows)} rows)",
            results,
            lambda: apply_reorganisation(registry, rows, by="bench", reason="b", dry_run=True),
        )
        assert not plan.problems, plan.problems[:3]
        await timed(
            f"reorganise applied ({len(plan.versions)} versions)",
            results,
            lambda: apply_reorganisation(registry, rows, by="bench", reason="b", dry_run=False),
        )
        await timed(
            "reorganise again (nothing to do)",
            results,
            lambda: apply_reorganisation(registry, rows, by="bench", reason="b", dry_run=False),
        )
        district = "000.00.01.H01"
        await timed(
            "route a retired district (median)",
            results,
            lambda: route_recipients(registry, (district,), today(), "redirect", "To"),
            50,
        )
        await timed(
            "predecessors of a successor (median)",
            results,
            lambda: predecessors(registry, "000.01.01.H01", today()),
            50,
        )
        await timed(
            "structure as of 2025-06-30",
            results,
            lambda: registry.structure_at(dt.date(2025, 6, 30)),
        )
        await timed(
            "one agency as of a day (median)",
            results,
            lambda: registry.as_of(one, dt.date(2025, 6, 30)),
            50,
        )
    finally:
        await pool.close()
        await db.drop_schema(settings)
    width = max(len(k) for k in results)
    for label, ms in results.items():
        print(f"{label:<{width}}  {ms:10.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
