"""``lienthong report kpi``: timeliness and volume KPIs, as a table, CSV, HTML or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from exchange.cli.common import settings_of, with_stores

__all__ = ["add_report_commands"]


def cmd_report_kpi(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from exchange.kpi import deadlines_of, kpi_report, parse_query
    from exchange.kpi.render import figure_label, render_csv, render_html, shown

    settings = settings_of(args)
    params = {"from": args.start, "to": args.end, "under": args.under, "level": args.level}
    params["agency"] = args.agency
    params["structure_at"] = args.structure_at
    query = parse_query({k: v for k, v in params.items() if v})
    deadlines = deadlines_of(settings)
    report = asyncio.run(
        with_stores(
            settings, lambda s: kpi_report(s.kpi, query, deadlines, s.registry.structure_at)
        )
    )
    if args.csv:
        Path(args.csv).write_text(render_csv(report), encoding="utf-8")
    if args.html:
        Path(args.html).write_text(render_html(report, args.lang), encoding="utf-8")
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    period = f"{report['period']['from']} – {report['period']['to']}"
    table = Table("figure", "value", "numerator", "denominator", title=f"KPIs {period}")
    for name, figure in report["figures"].items():
        table.add_row(
            figure_label(name, args.lang),
            shown(figure),
            "" if figure["numerator"] is None else str(figure["numerator"]),
            "" if figure["denominator"] is None else str(figure["denominator"]),
        )
    console = Console()
    console.print(table)
    console.print("Not computed yet: " + ", ".join(report["pending"]))
    for kind, path in (("CSV", args.csv), ("HTML", args.html)):
        if path:
            console.print(f"{kind} written to {path}")
    return 0


def add_report_commands(sub: argparse._SubParsersAction) -> None:
    """report kpi."""
    reports = sub.add_parser("report", help="reports computed from the trail").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = reports.add_parser("kpi", help="timeliness and volume KPIs of a period")
    p.add_argument("--from", dest="start", help="first day YYYY-MM-DD (default: 1st of month)")
    p.add_argument("--to", dest="end", help="last day, included (default: today)")
    p.add_argument("--under", help="an organ id: its whole subtree")
    p.add_argument("--level", choices=("central", "province", "district", "commune"))
    p.add_argument("--agency", help="one organ id")
    p.add_argument(
        "--structure-at",
        metavar="DATE",
        help="group by the levels of that day (2025-06-30: the four levels before the 2025 "
        "reorganisation; default: today's registry)",
    )
    p.add_argument("--csv", metavar="FILE", help="write every figure as CSV")
    p.add_argument("--html", metavar="FILE", help="write a printable HTML report with charts")
    p.add_argument("--lang", choices=("vi", "en"), default="vi", help="HTML and table language")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_report_kpi)
