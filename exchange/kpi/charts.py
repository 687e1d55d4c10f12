"""Server-rendered SVG charts for KPI reports and the console (no script, printable).

Each function returns a complete ``<svg>`` element as :class:`markupsafe.Markup`; every label
is escaped. Colours come from CSS classes, so print and screen stylesheets can restyle them.
"""

from __future__ import annotations

from markupsafe import Markup, escape

__all__ = ["bar_chart", "column_chart"]

_ROW = 26
_LABEL_WIDTH = 190
_BAR_WIDTH = 300


def bar_chart(title: str, rows: list[tuple[str, float | None]], *, percent: bool = False) -> Markup:
    """Horizontal bars, one per (label, value); ``percent`` draws ratios 0..1 as per cent.
    A missing value (None) is drawn as "–" with no bar."""
    top = max([v for _, v in rows if v is not None] or [0]) if not percent else 1.0
    height = _ROW * max(len(rows), 1) + 34
    width = _LABEL_WIDTH + _BAR_WIDTH + 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="0" y="16">{escape(title)}</text>',
    ]
    if not rows:
        parts.append('<text class="chart-value" x="0" y="44">–</text>')
    for index, (label, value) in enumerate(rows):
        y = 28 + index * _ROW
        length = 0 if value is None or not top else round(_BAR_WIDTH * value / top, 1)
        shown = "–" if value is None else (f"{value * 100:.1f} %" if percent else f"{value:g}")
        parts += [
            f'<text class="chart-label" x="0" y="{y + 15}">{escape(label)}</text>',
            f'<rect class="chart-bar" x="{_LABEL_WIDTH}" y="{y + 3}" width="{length}" '
            f'height="{_ROW - 8}"><title>{escape(label)}: {escape(shown)}</title></rect>',
            f'<text class="chart-value" x="{_LABEL_WIDTH + length + 6}" y="{y + 15}">'
            f"{escape(shown)}</text>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(title: str, columns: list[tuple[str, int]]) -> Markup:
    """Vertical columns, one per (label, count), e.g. documents per week."""
    step = 56
    plot = 140
    top = max([v for _, v in columns] or [0])
    width = max(step * len(columns), 200) + 10
    height = plot + 74
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
        f'<text class="chart-title" x="0" y="16">{escape(title)}</text>',
    ]
    if not columns:
        parts.append('<text class="chart-value" x="0" y="44">–</text>')
    for index, (label, value) in enumerate(columns):
        x = 5 + index * step
        bar = 0 if not top else round(plot * value / top, 1)
        y = 40 + plot - bar
        parts += [
            f'<rect class="chart-bar" x="{x}" y="{y}" width="{step - 14}" height="{bar}">'
            f"<title>{escape(label)}: {value}</title></rect>",
            f'<text class="chart-value" x="{x}" y="{y - 4}">{value}</text>',
            f'<text class="chart-label" x="{x}" y="{40 + plot + 16}">{escape(label)}</text>',
        ]
    parts.append("</svg>")
    return Markup("".join(parts))
