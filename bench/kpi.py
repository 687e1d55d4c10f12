"""KPI benchmark: a month of generated traffic, the report computed from its events, beside
the same figures recomputed in straight SQL (tests/support/kpi_oracle.py) in the same run.

    .venv/bin/python bench/kpi.py                 # 1,000 and 5,000 documents in a month
    .venv/bin/python bench/kpi.py --documents 20000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from exchange.config import load_settings  # noqa: E402
from exchange.kpi import Deadlines, KpiQuery, Scope, kpi_report  # noqa: E402
from exchange.kpi.report import period_bounds  # noqa: E402
from exchange.store import PostgresKpi  # noqa: E402
from exchange.store import database as db  # noqa: E402
from tests.support.kpi_oracle import oracle  # noqa: E402
from tests.support.traffic import generate_month  # noqa: E402

AS_OF = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)


async def one_month(documents: int) -> tuple[int, int, float, float]:
    """(documents, copies, seconds for the report, seconds for the SQL recomputation)."""
    tag = secrets.token_hex(3)
    settings = load_settings().replace(
        database_url=os.environ.get(
            "LIENTHONG_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/lienthong_bench"
        ),
        database_schema=f"bench_kpi_{tag}",
        blob_dir=tempfile.mkdtemp(prefix="lienthong-bench-"),
    )
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=4)
    try:
        await generate_month(pool, 2026, 11, documents=documents)
        query = KpiQuery(dt.date(2026, 11, 1), dt.date(2026, 11, 30), Scope(), AS_OF)
        started = time.perf_counter()
        report = await kpi_report(PostgresKpi(pool), query, Deadlines())
        ours = time.perf_counter() - started
        start, end = period_bounds(query.start, query.end)
        started = time.perf_counter()
        await oracle(pool, start, end, AS_OF, {"01": 0, "03": 1, "06": 10})
        sql = time.perf_counter() - started
        return documents, report["figures"]["copies_received"]["value"], ours, sql
    finally:
        await pool.close()
        await db.drop_schema(settings)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, nargs="*", default=[1_000, 5_000])
    args = parser.parse_args()
    table = Table(
        "documents",
        "copies",
        "report s (every figure, per level, per agency)",
        "SQL recomputation s (whole hub only)",
        title="lienthong KPIs, one month",
    )
    for n in args.documents:
        documents, copies, ours, sql = await one_month(n)
        table.add_row(f"{documents:,}", f"{copies:,}", f"{ours:.2f}", f"{sql:.2f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
