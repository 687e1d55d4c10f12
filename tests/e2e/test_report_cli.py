"""``lienthong report kpi`` as an operator runs it: table, JSON, CSV and HTML of one month."""

from __future__ import annotations

import csv
import json

import pytest

from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.cli import lienthong
from tests.support.traffic import generate_month


@pytest.fixture(scope="module")
async def month_settings(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("report"))
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    try:
        await generate_month(pool, 2026, 11, documents=120, seed=3)
    finally:
        await pool.close()
    try:
        yield settings
    finally:
        await db.drop_schema(settings)


def test_csv_html_and_json_say_the_same(month_settings, tmp_path):
    out_csv, out_html = tmp_path / "kpi.csv", tmp_path / "kpi.html"
    args = ("report", "kpi", "--from", "2026-11-01", "--to", "2026-11-30")
    done = lienthong(month_settings, *args, "--csv", str(out_csv), "--html", str(out_html))
    assert "Văn bản đã gửi" in done.stdout and "CSV written" in done.stdout
    report = json.loads(lienthong(month_settings, *args, "--json").stdout)
    assert report["figures"]["documents_sent"]["value"] == 120
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    overall = {r["figure"]: r for r in rows if r["scope"] == "all"}
    for name, figure in report["figures"].items():
        assert overall[name]["numerator"] == (
            "" if figure["numerator"] is None else str(figure["numerator"])
        )
        assert overall[name]["denominator"] == (
            "" if figure["denominator"] is None else str(figure["denominator"])
        )
    assert any(r["scope"].startswith("level:") for r in rows)
    assert any(r["scope"] == "agency:000.00.00.H49" for r in rows)
    html = out_html.read_text(encoding="utf-8")
    assert html.count("<svg") == 4 and 'lang="vi"' in html
    assert "Báo cáo chỉ số liên thông văn bản" in html and "<script" not in html


def test_english_html_and_a_subtree(month_settings, tmp_path):
    out = tmp_path / "en.html"
    lienthong(
        month_settings,
        "report",
        "kpi",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--under",
        "000.00.00.H49",
        "--lang",
        "en",
        "--html",
        str(out),
    )
    html = out.read_text(encoding="utf-8")
    assert "Document exchange KPI report" in html and "H49" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-02-30"), "request.invalid_parameter"),
        (("--from", "2026-11-02", "--to", "2026-11-01"), "to is before from"),
        (("--under", "x!"), "is not valid"),
    ],
)
def test_bad_options_are_refused_without_a_traceback(month_settings, args, message):
    done = lienthong(month_settings, "report", "kpi", *args, check=False)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
