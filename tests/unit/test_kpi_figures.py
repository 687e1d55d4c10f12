"""KPI figures of a small, hand-made period, computed by hand; labels and renderings."""

from __future__ import annotations

import csv
import datetime as dt
import io

from exchange.kpi import Deadlines, Scope
from exchange.kpi.model import Copy, Document, Evidence, Refusal
from exchange.kpi.render import figure_label, render_csv, render_html
from exchange.kpi.report import build_report

ICT = dt.timezone(dt.timedelta(hours=7))
MONDAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=ICT)
H = dt.timedelta(hours=1)


def _evidence() -> Evidence:
    doc = Document(
        "d1", "000.00.00.G22", MONDAY, ("000.00.00.H49", "000.00.10.H49"), "TOTAL-PASSED", 2, 1
    )
    late = Document("d2", "000.00.00.H49", MONDAY + 2 * H, ("000.00.10.H49",), None)
    copies = [
        # on time for 01 (same day) and 03 (next working day)
        Copy(
            doc,
            "000.00.00.H49",
            MONDAY + H,
            MONDAY + 2 * H,
            {"01": MONDAY + 3 * H, "03": MONDAY + 30 * H},
        ),
        # 03 on Wednesday: late for 03 (deadline end of Tuesday); 01 never sent: overdue
        Copy(doc, "000.00.10.H49", MONDAY + H, None, {"03": MONDAY + 50 * H}),
        Copy(late, "000.00.10.H49", None, None, {}),
    ]
    return Evidence(
        MONDAY.replace(hour=0),
        MONDAY.replace(hour=0) + dt.timedelta(days=30),
        MONDAY + dt.timedelta(days=20),
        [doc, late],
        copies,
        [Refusal("000.00.00.G22", MONDAY, "signature.invalid")],
        {"000.00.00.G22": "central", "000.00.00.H49": "province", "000.00.10.H49": "district"},
        {"000.00.00.G22": "Văn phòng Chính phủ"},
    )


def test_figures_of_a_hand_made_period():
    report = build_report(_evidence(), Scope(), Deadlines(0, 1, 10))
    f = report["figures"]
    assert (f["documents_sent"]["value"], f["copies_received"]["value"]) == (2, 3)
    assert (f["deliveries"]["numerator"], f["deliveries"]["denominator"]) == (2, 3)
    assert f["fetched"]["numerator"] == 1
    assert f["time_to_delivered_median"]["value"] == 3600.0
    assert f["time_to_03_median"]["value"] == 40 * 3600.0  # (30 h + 50 h) / 2
    assert f["time_to_03_p90"]["value"] == 48 * 3600.0  # 30 + 0.9 * (50 - 30)
    on_time_01 = f["on_time_01"]
    assert (on_time_01["numerator"], on_time_01["denominator"]) == (1, 3)
    assert on_time_01["detail"]["overdue"] == 2
    on_time_03 = f["on_time_03"]
    assert (
        on_time_03["numerator"],
        on_time_03["detail"]["late"],
        on_time_03["detail"]["overdue"],
    ) == (1, 1, 1)
    assert (f["signed_packages"]["numerator"], f["signed_packages"]["denominator"]) == (1, 2)
    assert (f["signed_pdfs"]["numerator"], f["signed_pdfs"]["denominator"]) == (0, 1)
    assert f["refused_at_door"]["detail"]["by_code"] == {"signature.invalid": 1}
    assert set(report["by_level"]) == {"central", "province", "district"}
    assert report["by_level"]["district"]["copies_received"]["value"] == 2
    late = report["charts"]["top_late_agencies"]
    assert [a["organ_id"] for a in late] == ["000.00.10.H49"] and late[0]["late"] == 2


def test_a_subtree_and_one_agency():
    province = build_report(_evidence(), Scope(under="H49"), Deadlines())
    assert province["figures"]["documents_sent"]["value"] == 1  # the central office is outside
    assert province["figures"]["copies_received"]["value"] == 3
    district = build_report(_evidence(), Scope(agency="000.00.10.H49"), Deadlines())
    assert district["figures"]["copies_received"]["value"] == 2
    assert [a["organ_id"] for a in district["by_agency"]] == ["000.00.10.H49"]


def test_every_figure_has_a_vietnamese_and_an_english_name():
    report = build_report(_evidence(), Scope(), Deadlines())
    for name in report["figures"]:
        vi, en = figure_label(name, "vi"), figure_label(name, "en")
        assert vi != name.replace("_", " ") and en != vi, name


def test_renderings_escape_names_and_say_the_same():
    evidence = _evidence()
    evidence.names["000.00.10.H49"] = "<b>Hạ Long</b>"
    report = build_report(evidence, Scope(), Deadlines())
    html = render_html(report)
    assert "<b>Hạ Long</b>" not in html and "&lt;b&gt;Hạ Long&lt;/b&gt;" in html
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    sent = next(r for r in rows if r["scope"] == "all" and r["figure"] == "documents_sent")
    assert sent["value"] == "2" and sent["events"] == "submitted"
