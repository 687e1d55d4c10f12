"""KPIs from the recorded events, checked against an independent SQL recomputation
(tests/support/kpi_oracle.py): for a generated month of traffic, for the demo's exchange, and
through the API with its scope rules."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange.kpi import Deadlines, KpiQuery, Scope, kpi_report, parse_query
from exchange.kpi.report import period_bounds
from exchange.registry import Agency
from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.http import assert_error
from tests.support.kpi_oracle import month, oracle
from tests.support.traffic import generate_month

DEADLINES = Deadlines(0, 1, 10)
ORACLE_FIGURES = (
    "documents_sent",
    "copies_received",
    "deliveries",
    "fetched",
    *(f"status_{c}" for c in ("01", "02", "03", "04", "05", "06")),
    *(
        f"time_to_{m}_{q}"
        for m in ("delivered", "fetched", "01", "03", "06")
        for q in ("median", "p90")
    ),
    "on_time_01",
    "on_time_03",
    "on_time_06",
    *(f"copies_{d}" for d in ("recall_requested", "recalled", "recall_refused", "superseded")),
    "copies_push_failed",
)


@pytest.fixture(scope="module")
async def month_pool(tmp_path_factory):
    """A schema holding November 2026 of generated traffic (it has a public holiday, 24/11)."""
    settings = make_settings(tmp_path_factory.mktemp("kpi"))
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=4)
    written = await generate_month(pool, 2026, 11, documents=500)
    assert written["documents"] == 500
    try:
        yield pool
    finally:
        await pool.close()
        await db.drop_schema(settings)


def _check_against_oracle(report: dict, expected: dict) -> None:
    for name in ORACLE_FIGURES:
        figure = report["figures"][name]
        numerator, denominator, value = expected[name]
        assert (figure["numerator"], figure["denominator"]) == (numerator, denominator), name
        if value is None:
            assert figure["value"] is None, name
        else:
            assert figure["value"] == pytest.approx(value, abs=1e-3), name


@pytest.mark.parametrize("under", [None, "H49", "H49.10"])
async def test_a_generated_month_matches_the_sql_recomputation(month_pool, under):
    from exchange.store import PostgresKpi

    first, last = month(2026, 11)
    as_of = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)
    query = KpiQuery(first, last, Scope(under=under), as_of=as_of)
    report = await kpi_report(PostgresKpi(month_pool), query, DEADLINES)
    start, end = period_bounds(first, last)
    expected = await oracle(
        month_pool, start, end, as_of, {"01": 0, "03": 1, "06": 10}, under=under
    )
    _check_against_oracle(report, expected)
    figures = report["figures"]
    assert figures["documents_sent"]["value"] > 0 and figures["copies_received"]["value"] > 0
    # the deadlines bite: some copies are late, most are not
    assert 0 < figures["on_time_03"]["value"] < 1
    assert figures["on_time_03"]["detail"]["late"] > 0


async def test_a_month_report_has_every_part_the_charts_need(month_pool):
    from exchange.store import PostgresKpi

    first, last = month(2026, 11)
    as_of = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)
    report = await kpi_report(
        PostgresKpi(month_pool), KpiQuery(first, last, Scope(), as_of), DEADLINES
    )
    assert (report["period"]["from"], report["period"]["to"]) == ("2026-11-01", "2026-11-30")
    assert report["period"]["end"] == "2026-12-01T00:00:00+07:00"  # excluded
    assert set(report["by_level"]) == {"central", "province", "district", "commune"}
    charts = report["charts"]
    weeks = charts["volume_per_week"]
    assert sum(w["documents"] for w in weeks) == report["figures"]["documents_sent"]["value"]
    bars = charts["time_to_03_distribution"]
    assert sum(b["count"] for b in bars) == report["figures"]["time_to_03_median"]["numerator"]
    late = charts["top_late_agencies"]
    assert late and late == sorted(late, key=lambda a: (-a["late"], a["organ_id"]))
    per_agency = sum(a["figures"]["documents_sent"]["value"] for a in report["by_agency"])
    assert per_agency == report["figures"]["documents_sent"]["value"]
    assert set(report["pending"]) == {"witness_signatures"}
    # revocations are packages of their own, but recalls, not documents to handle
    revocations = await month_pool.fetchval(
        "SELECT count(*) FROM packages WHERE business_doc_type = 1"
    )
    assert revocations > 0 and report["figures"]["documents_sent"]["value"] == 500
    assert report["figures"]["recalled"]["numerator"] >= revocations
    dispositions = [
        report["figures"][f"copies_{d}"]["numerator"] for d in ("recalled", "superseded")
    ]
    assert all(n > 0 for n in dispositions), dispositions
    for figure in report["figures"].values():
        assert figure["events"] and figure["how"]
    # signatures: 85 % of the verified packages pass, PDFs from the reports the events cite
    signed = report["figures"]["signed_packages"]
    assert 0.6 < signed["value"] < 0.95 and signed["detail"]["not_verified"] > 0
    assert report["figures"]["signed_pdfs"]["denominator"] > 0
    assert report["figures"]["refused_at_door"]["numerator"] == 25


async def test_a_period_outside_the_traffic_is_empty(month_pool):
    from exchange.store import PostgresKpi

    query = KpiQuery(dt.date(2025, 1, 1), dt.date(2025, 1, 31), Scope())
    report = await kpi_report(PostgresKpi(month_pool), query, DEADLINES)
    assert report["figures"]["documents_sent"]["value"] == 0
    assert report["figures"]["on_time_03"]["value"] is None
    assert report["figures"]["time_to_03_median"]["value"] is None


def test_bad_queries_are_refused_with_the_field():
    from exchange.errors import HubError

    for params, field in (
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "to"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),
        ({"level": "planet"}, "level"),
    ):
        with pytest.raises(HubError) as caught:
            parse_query(params)
        assert caught.value.code == "request.invalid_parameter"
        assert caught.value.field == field


# ----- through the API, after a real exchange ------------------------------------------------

CENTRAL, PROVINCE, DISTRICT, COMMUNE = (
    "000.00.00.G22",
    "000.00.00.H49",
    "000.00.10.H49",
    "000.05.10.H49",
)


@pytest.fixture(scope="module")
async def exchanged(exchange):
    """The demo's exchange: the centre sends to three levels; each fetches, acks, sends 01, 03."""
    from tests.support.demo_flow import run_exchange

    await exchange.register(
        (CENTRAL, "Văn phòng Chính phủ"),
        (PROVINCE, "UBND tỉnh Quảng Ninh"),
        (DISTRICT, "UBND thành phố Hạ Long"),
        (COMMUNE, "UBND phường Hồng Gai"),
    )
    return await run_exchange(exchange, CENTRAL, [PROVINCE, DISTRICT, COMMUNE])


async def _get(exchange, organ_id: str, query: str):
    token = await exchange.token(organ_id)
    async with exchange.session.get(
        f"{exchange.url}/v1/reports/kpi?{query}", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        return r.status, await r.json()


async def test_the_demo_exchange_through_the_api_matches_the_recomputation(exchange, exchanged):
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).date()
    status, report = await _get(exchange, PROVINCE, f"from={today}&to={today}")
    assert status == 200, report
    assert report["scope"]["under"] == "H49"  # a province sees its own subtree by default
    figures = report["figures"]
    assert figures["copies_received"]["value"] == 3
    assert figures["status_03"]["numerator"] == 3
    assert figures["on_time_01"]["value"] == 1.0
    start, end = period_bounds(today, today)
    as_of = dt.datetime.fromisoformat(report["as_of"])
    expected = await oracle(
        exchange.hub.pool, start, end, as_of, {"01": 0, "03": 1, "06": 10}, under="H49"
    )
    _check_against_oracle(report, expected)
    _, communes = await _get(exchange, PROVINCE, f"from={today}&to={today}&level=commune")
    assert communes["figures"]["copies_received"]["value"] == 1
    assert list(communes["by_level"]) == ["commune"]
    _, central = await _get(exchange, CENTRAL, f"from={today}&to={today}")
    assert central["figures"]["documents_sent"]["value"] == 1
    assert central["figures"]["copies_received"]["value"] == 0


async def test_an_agency_sees_only_its_own_subtree(exchange, exchanged):
    status, body = await _get(exchange, DISTRICT, "under=000.00.00.H49")
    assert_error(status, body, 403, "report.out_of_scope")
    status, body = await _get(exchange, DISTRICT, f"agency={CENTRAL}")
    assert_error(status, body, 403, "report.out_of_scope")
    status, body = await _get(exchange, DISTRICT, f"agency={COMMUNE}")
    assert status == 200 and body["scope"]["agency"] == COMMUNE


async def test_bad_parameters_are_refused(exchange, exchanged):
    status, body = await _get(exchange, PROVINCE, "from=yesterday")
    assert_error(status, body, 400, "request.invalid_parameter")
    status, body = await _get(exchange, PROVINCE, "under=not-an-id!")
    assert_error(status, body, 422, "organ_id.invalid")
    token = "nope"
    async with exchange.session.get(
        f"{exchange.url}/v1/reports/kpi", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert_error(r.status, await r.json(), 401, "auth.invalid_token")


async def test_an_auditor_recomputes_the_figures_from_the_evidence_export(exchange, exchanged):
    """The sender's evidence bundle holds every leaf about the document: from those alone the
    document's figures come out as the report says."""
    import base64
    import io
    import json
    import statistics
    import zipfile

    token = await exchange.token(CENTRAL)
    async with exchange.session.get(
        f"{exchange.url}/v1/packages/{exchanged['id']}/evidence",
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        bundle = zipfile.ZipFile(io.BytesIO(await r.read()))
    leaves = [
        json.loads(base64.b64decode(item["leaf"]))
        for item in json.loads(bundle.read("ledger/leaves.json"))["leaves"]
        if item["package_id"] == exchanged["id"]
    ]
    submitted = next(leaf for leaf in leaves if leaf["event"] == "submitted")
    sent_at = dt.datetime.fromisoformat(submitted["at"])
    recipients = submitted["detail"]["recipients"]

    def first(kind: str, organ: str, code: str | None = None) -> dt.datetime | None:
        times = [
            dt.datetime.fromisoformat(leaf["at"])
            for leaf in leaves
            if leaf["event"] == kind
            and leaf["organ"] == organ
            and (code is None or leaf["detail"].get("status_code") == code)
        ]
        return min(times) if times else None

    to_03 = [(first("status", r, "03") - sent_at).total_seconds() for r in recipients]
    to_delivered = [(first("delivered", r) - sent_at).total_seconds() for r in recipients]
    today = sent_at.astimezone(dt.timezone(dt.timedelta(hours=7))).date()
    query = KpiQuery(today, today, Scope(), as_of=dt.datetime.now(dt.UTC))
    report = await kpi_report(exchange.hub.stores.kpi, query, DEADLINES)
    figures = report["figures"]
    assert figures["copies_received"]["value"] == len(recipients) == 3
    assert figures["status_03"]["numerator"] == sum(
        first("status", r, "03") is not None for r in recipients
    )
    assert figures["time_to_03_median"]["value"] == pytest.approx(
        statistics.median(to_03), abs=1e-3
    )
    assert figures["time_to_delivered_p90"]["value"] == pytest.approx(
        statistics.quantiles(to_delivered, n=10, method="inclusive")[8], abs=1e-3
    )


async def test_reports_are_rate_limited_per_agency(exchange, exchanged):
    limit = exchange.hub.settings.kpi_reports_per_minute
    token = await exchange.token(COMMUNE)
    statuses = []
    for _ in range(limit + 1):
        async with exchange.session.get(
            f"{exchange.url}/v1/reports/kpi", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            statuses.append(r.status)
            body, retry = await r.json(), r.headers.get("Retry-After")
    assert statuses[:limit] == [200] * limit
    assert_error(statuses[-1], body, 429, "request.rate_limited")
    assert int(retry) >= 1
    status, _ = await _get(exchange, PROVINCE, "")  # another agency is not held back
    assert status == 200


async def test_reports_group_by_the_structure_of_any_day(tmp_path):
    """A district that became a commune on 2026-12-15 counts as a district when the report asks
    for the structure of 2026-11-30, and as a commune with today's registry."""
    from exchange.store import PostgresKpi, PostgresRegistry

    settings = make_settings(tmp_path)
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    try:
        await generate_month(pool, 2026, 11, documents=80, seed=3)
        registry = PostgresRegistry(pool)
        city = "000.00.10.H49"
        await registry.upsert(
            [Agency(city, "UBND phường Hạ Long", "000.00.00.H49", "commune")],
            effective=dt.date(2026, 12, 15),
            reason="test: a district became a commune",
        )
        first, last = month(2026, 11)
        as_of = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)
        start, end = period_bounds(first, last)
        sent_by_city = await pool.fetchval(
            "SELECT count(*) FROM events WHERE event = 'submitted' AND organ_id = $1 "
            "AND detail->>'kind' = 'edoc' AND at >= $2 AND at < $3 AND NOT EXISTS "
            "(SELECT 1 FROM events l WHERE l.package_id = events.package_id "
            "AND l.event = 'linked' AND l.detail->>'relation' = 'revokes' "
            "AND l.detail ? 'concerns')",
            city,
            start,
            end,
        )
        assert sent_by_city > 0

        async def report(structure_at):
            query = KpiQuery(first, last, Scope(), as_of, structure_at=structure_at)
            return await kpi_report(PostgresKpi(pool), query, DEADLINES, registry.structure_at)

        today, then = await report(None), await report(dt.date(2026, 11, 30))
        assert then["structure_at"] == "2026-11-30" and "structure_at" not in today

        def sent(rep, level):
            return rep["by_level"][level]["documents_sent"]["value"]

        assert sent(then, "district") - sent(today, "district") == sent_by_city
        assert sent(today, "commune") - sent(then, "commune") == sent_by_city
        assert then["figures"]["documents_sent"] == today["figures"]["documents_sent"]
    finally:
        await pool.close()
        await db.drop_schema(settings)
