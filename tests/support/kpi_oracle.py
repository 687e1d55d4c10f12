"""An independent recomputation of the KPIs: straight SQL over the events table.

It shares no code with :mod:`exchange.kpi`: copies come from ``jsonb_array_elements_text``,
medians from PostgreSQL's ``percentile_cont`` and deadlines from a ranked calendar of working
days built in SQL (weekends and the public holidays the ``holidays`` package lists).
"""

from __future__ import annotations

import datetime as dt

import holidays

ICT = "Asia/Ho_Chi_Minh"

_COPIES = """
WITH docs AS (
    SELECT e.package_id, e.organ_id AS sender, e.at AS sent, e.detail
    FROM events e JOIN agencies s ON s.code = e.organ_id
    WHERE e.event = 'submitted' AND e.detail->>'kind' = 'edoc'
      AND e.at >= $1 AND e.at < $2 AND e.at <= $3
      AND NOT EXISTS (SELECT 1 FROM events l WHERE l.package_id = e.package_id
          AND l.event = 'linked' AND l.detail->>'relation' = 'revokes' AND l.detail ? 'concerns')
), copies AS (
    SELECT DISTINCT d.package_id, d.sent, r.recipient
    FROM docs d, jsonb_array_elements_text(d.detail->'recipients') AS r(recipient)
    JOIN agencies a ON a.code = r.recipient
    WHERE $4::text IS NULL OR a.routing_key = $4 OR a.routing_key LIKE $4 || '.%'
), firsts AS (
    SELECT c.package_id, c.recipient, c.sent,
        (SELECT min(at) FROM events e WHERE e.package_id = c.package_id
            AND e.organ_id = c.recipient AND e.event = 'delivered' AND e.at <= $3) AS delivered,
        (SELECT min(at) FROM events e WHERE e.package_id = c.package_id
            AND e.organ_id = c.recipient AND e.event = 'fetched' AND e.at <= $3) AS fetched,
        (SELECT min(at) FROM events e WHERE e.package_id = c.package_id
            AND e.organ_id = c.recipient AND e.event = 'status'
            AND e.detail->>'status_code' = $5 AND e.at <= $3) AS status
    FROM copies c
)
"""


async def oracle(pool, start, end, as_of, deadlines: dict[str, int], under: str | None = None):
    """{figure name: (numerator, denominator, value)} for the figures the oracle knows."""
    out: dict[str, tuple] = {}
    args = (start, end, as_of, under)
    async with pool.acquire() as conn:
        sent = await conn.fetchval(
            "SELECT count(*) FROM events e JOIN agencies s ON s.code = e.organ_id "
            "WHERE e.event = 'submitted' AND e.detail->>'kind' = 'edoc' "
            "AND e.at >= $1 AND e.at < $2 AND e.at <= $3 "
            "AND ($4::text IS NULL OR s.routing_key = $4 OR s.routing_key LIKE $4 || '.%') "
            "AND NOT EXISTS (SELECT 1 FROM events l WHERE l.package_id = e.package_id "
            "AND l.event = 'linked' AND l.detail->>'relation' = 'revokes' "
            "AND l.detail ? 'concerns')",
            *args,
        )
        out["documents_sent"] = (sent, None, sent)
        copies = await conn.fetchval(_COPIES + "SELECT count(*) FROM firsts", *args, "01")
        out["copies_received"] = (copies, None, copies)
        for name, column in (("deliveries", "delivered"), ("fetched", "fetched")):
            n = await conn.fetchval(_COPIES + f"SELECT count({column}) FROM firsts", *args, "01")
            out[name] = (n, copies, round(n / copies, 6) if copies else None)
        for code in ("01", "02", "03", "04", "05", "06"):
            n = await conn.fetchval(_COPIES + "SELECT count(status) FROM firsts", *args, code)
            out[f"status_{code}"] = (n, copies, round(n / copies, 6) if copies else None)
        for label, column, code in (
            ("delivered", "delivered", "01"),
            ("fetched", "fetched", "01"),
            ("01", "status", "01"),
            ("03", "status", "03"),
            ("06", "status", "06"),
        ):
            row = await conn.fetchrow(
                _COPIES + f"SELECT count({column}) AS n, "
                f"percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM {column} - sent)) "
                "AS median, percentile_cont(0.9) WITHIN GROUP "
                f"(ORDER BY extract(epoch FROM {column} - sent)) AS p90 FROM firsts",
                *args,
                code,
            )
            for q in ("median", "p90"):
                value = None if row[q] is None else round(float(row[q]), 3)
                out[f"time_to_{label}_{q}"] = (row["n"], copies, value)
        for name in ("recall_requested", "recalled", "recall_refused", "superseded"):
            n = await conn.fetchval(
                _COPIES
                + "SELECT count(*) FROM firsts f WHERE (SELECT e.detail->>'to' FROM events e "
                "WHERE e.package_id = f.package_id AND e.organ_id = f.recipient "
                "AND e.event = 'disposition' AND e.at <= $3 ORDER BY e.at DESC, e.id DESC "
                "LIMIT 1) = $6",
                *args,
                "01",
                name,
            )
            out[f"copies_{name}"] = (n, copies, round(n / copies, 6) if copies else None)
        n = await conn.fetchval(
            _COPIES + "SELECT count(*) FROM firsts f WHERE EXISTS (SELECT 1 FROM events e "
            "WHERE e.package_id = f.package_id AND e.organ_id = f.recipient "
            "AND e.event = 'push_failed' AND e.at <= $3)",
            *args,
            "01",
        )
        out["copies_push_failed"] = (n, copies, round(n / copies, 6) if copies else None)
        for code, days in deadlines.items():
            out[f"on_time_{code}"] = await _on_time(conn, args, code, days, as_of)
    return out


async def _on_time(conn, args, code: str, days: int, as_of) -> tuple:
    years = range(args[0].year - 1, args[1].year + 2)
    free = sorted(holidays.country_holidays("VN", years=list(years)).keys())
    row = await conn.fetchrow(
        _COPIES
        + """
        , calendar AS (
            SELECT day::date AS day, row_number() OVER (ORDER BY day) AS n
            FROM generate_series($6::date - 20, $7::date + 400, interval '1 day') AS day
            WHERE extract(isodow FROM day) < 6 AND day::date <> ALL($8::date[])
        ), due AS (
            SELECT f.*, ((SELECT c2.day FROM calendar c2 WHERE c2.n = (
                SELECT min(c.n) FROM calendar c WHERE c.day >= (f.sent AT TIME ZONE $9)::date
            ) + $10) + 1)::timestamp AT TIME ZONE $9 AS deadline FROM firsts f
        )
        SELECT count(*) FILTER (WHERE status <= deadline) AS on_time,
               count(*) FILTER (WHERE status > deadline) AS late,
               count(*) FILTER (WHERE status IS NULL AND deadline <= $3) AS overdue
        FROM due
        """,
        *args,
        code,
        args[0].date(),
        args[1].date(),
        free,
        "Asia/Ho_Chi_Minh",
        days,
    )
    den = row["on_time"] + row["late"] + row["overdue"]
    return (row["on_time"], den, round(row["on_time"] / den, 6) if den else None)


def month(year: int, month_: int) -> tuple[dt.date, dt.date]:
    """The first and last day of a month."""
    first = dt.date(year, month_, 1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return first, last
