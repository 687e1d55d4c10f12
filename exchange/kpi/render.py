"""KPI reports as CSV (one row per figure and scope) and as printable HTML with SVG charts,
in Vietnamese by default or in English."""

from __future__ import annotations

import csv
import io

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from exchange.kpi.charts import bar_chart, column_chart

__all__ = ["LABELS", "chart_set", "figure_label", "render_csv", "render_html", "shown", "text"]

# Figure names in Vietnamese and English; figures not listed show their name.
LABELS = {
    "documents_sent": ("Văn bản đã gửi", "Documents sent"),
    "copies_received": ("Bản nhận", "Copies received"),
    "deliveries": ("Đã chuyển vào hộp thư", "Delivered to the inbox"),
    "fetched": ("Đã tải về", "Fetched"),
    "on_time_01": ("Báo đã đến (01) đúng hạn", "Arrival (01) on time"),
    "on_time_03": ("Tiếp nhận (03) đúng hạn", "Registered (03) on time"),
    "on_time_06": ("Hoàn thành (06) đúng hạn", "Completed (06) on time"),
    "signed_packages": ("Gói tin có chữ ký số hợp lệ", "Packages with a valid signature"),
    "signed_pdfs": ("Văn bản PDF ký số hợp lệ", "Validly signed PDFs"),
    "rejected_02": ("Bị từ chối (02)", "Rejected (02)"),
    "refused_at_door": ("Bị hệ thống từ chối", "Refused at the door"),
    "recalled": ("Bị thu hồi (13)", "Recalled (13)"),
    "copies_recall_requested": ("Bản đang chờ trả lời thu hồi", "Copies awaiting a recall answer"),
    "copies_recalled": ("Bản đã thu hồi", "Copies recalled"),
    "copies_recall_refused": ("Bản từ chối thu hồi (16)", "Copies whose recall was refused (16)"),
    "copies_superseded": ("Bản bị thay thế/cập nhật", "Copies superseded (update, replacement)"),
    "copies_push_failed": ("Bản đẩy thất bại (thư chết)", "Copies whose push failed (dead letter)"),
}
_TEXT = {
    "title": ("Báo cáo chỉ số liên thông văn bản", "Document exchange KPI report"),
    "period": ("Kỳ báo cáo", "Period"),
    "scope": ("Phạm vi", "Scope"),
    "all": ("toàn hệ thống", "the whole hub"),
    "figure": ("Chỉ số", "Figure"),
    "value": ("Giá trị", "Value"),
    "numerator": ("Tử số", "Numerator"),
    "denominator": ("Mẫu số", "Denominator"),
    "events": ("Sự kiện dùng", "Events used"),
    "on_time_by_level": (
        "Tỷ lệ tiếp nhận (03) đúng hạn theo cấp",
        "Registered (03) on time by level",
    ),
    "time_to_03": ("Thời gian đến khi tiếp nhận (03)", "Time to registration (03)"),
    "volume": ("Số văn bản gửi theo tuần", "Documents sent per week"),
    "late": ("Đơn vị trễ hạn nhiều nhất (03)", "Agencies most often late (03)"),
    "pending": ("Chỉ số chưa tính được", "Figures not computed yet"),
    "deadlines": ("Hạn (ngày làm việc)", "Deadlines (working days)"),
    "as_of": ("Số liệu đến", "Data as of"),
    "central": ("Trung ương", "Central"),
    "province": ("Tỉnh", "Province"),
    "district": ("Huyện", "District"),
    "commune": ("Xã", "Commune"),
    "level": ("Cấp", "Level"),
}
_env = Environment(
    loader=PackageLoader("exchange.kpi", "templates"),
    autoescape=select_autoescape(["j2", "html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def text(key: str, lang: str) -> str:
    """A report text in Vietnamese (``vi``) or English (``en``)."""
    vi, en = _TEXT[key]
    return en if lang == "en" else vi


_MILESTONES = {
    "delivered": ("vào hộp thư", "delivery"),
    "fetched": ("tải về", "fetch"),
    "01": ("báo đã đến (01)", "arrival (01)"),
    "03": ("tiếp nhận (03)", "registration (03)"),
    "06": ("hoàn thành (06)", "completion (06)"),
}
_STATUS_NAMES = {
    "01": ("Đã đến", "Arrived"),
    "02": ("Từ chối", "Rejected"),
    "03": ("Tiếp nhận", "Registered"),
    "04": ("Phân công", "Assigned"),
    "05": ("Đang xử lý", "In progress"),
    "06": ("Hoàn thành", "Completed"),
    "15": ("Đồng ý thu hồi/cập nhật", "Agrees to recall/update"),
    "16": ("Từ chối thu hồi/cập nhật", "Refuses recall/update"),
}


def figure_label(name: str, lang: str) -> str:
    """A figure's name for people."""
    english = lang == "en"
    if name in LABELS:
        return LABELS[name][english]
    if name.startswith("status_") and name[7:] in _STATUS_NAMES:
        code = name[7:]
        return f"{_STATUS_NAMES[code][english]} ({code})"
    if name.startswith("time_to_"):
        milestone, _, statistic = name[8:].rpartition("_")
        if milestone in _MILESTONES:
            what = _MILESTONES[milestone][english]
            if english:
                return f"Time to {what}, {'median' if statistic == 'median' else '90th percentile'}"
            return (
                f"Thời gian đến khi {what}, {'trung vị' if statistic == 'median' else 'phân vị 90'}"
            )
    return name.replace("_", " ")


def shown(figure: dict) -> str:
    """A figure's value as people read it: per cent, hours or a count."""
    value = figure["value"]
    if value is None:
        return "–"
    if figure["unit"] == "ratio":
        return f"{value * 100:.1f} %"
    if figure["unit"] == "seconds":
        return f"{value / 3600:.2f} h" if value >= 60 else f"{value:.2f} s"
    return f"{value:,}".replace(",", ".")


def chart_set(report: dict, lang: str) -> dict[str, Markup]:
    """The four charts of a report."""
    charts = report["charts"]
    levels = [
        (text(level, lang), values.get("03"))
        for level, values in charts["on_time_by_level"].items()
    ]
    late = [(f"{a['name'] or a['organ_id']}", a["late"]) for a in charts["top_late_agencies"]]
    return {
        "on_time_by_level": bar_chart(text("on_time_by_level", lang), levels, percent=True),
        "time_to_03": bar_chart(
            text("time_to_03", lang),
            [(b["label"], b["count"]) for b in charts["time_to_03_distribution"]],
        ),
        "volume": column_chart(
            text("volume", lang),
            [(w["week"][5:], w["documents"]) for w in charts["volume_per_week"]],
        ),
        "late": bar_chart(text("late", lang), late),
    }


def render_html(report: dict, lang: str = "vi") -> str:
    """A self-contained, printable HTML page of the report."""
    return _env.get_template("report.html.j2").render(
        report=report,
        lang=lang,
        t=lambda key: text(key, lang),
        label=lambda name: figure_label(name, lang),
        shown=shown,
        charts=chart_set(report, lang),
    )


def render_csv(report: dict) -> str:
    """One row per figure, for the whole scope, then per level and per agency."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["scope", "figure", "value", "numerator", "denominator", "unit", "events", "how"]
    )
    parts = [("all", report["figures"])]
    parts += [(f"level:{level}", figures) for level, figures in report["by_level"].items()]
    parts += [(f"agency:{a['organ_id']}", a["figures"]) for a in report["by_agency"]]
    for scope, figures in parts:
        for name, f in figures.items():
            writer.writerow(
                [
                    scope,
                    name,
                    "" if f["value"] is None else f["value"],
                    "" if f["numerator"] is None else f["numerator"],
                    "" if f["denominator"] is None else f["denominator"],
                    f["unit"],
                    " ".join(f["events"]),
                    f["how"],
                ]
            )
    return out.getvalue()
