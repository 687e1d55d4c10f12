"""Reading the recorded events a KPI report is computed from (every SQL statement of the KPIs).

Only the ``events`` table (the ledger's rows) is read, plus the registry for names and levels
and the verification reports the ``verified`` events cite by digest: never counters.
"""

from __future__ import annotations

import datetime as dt
import json

import asyncpg

from exchange.kpi.model import Copy, Document, Evidence, Refusal

__all__ = ["PostgresKpi"]

PASSED = "TOTAL-PASSED"


class PostgresKpi:
    """The events of a period, as :class:`~exchange.kpi.model.Evidence`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def evidence(self, start: dt.datetime, end: dt.datetime, as_of: dt.datetime) -> Evidence:
        """Documents whose ``submitted`` event is in [start, end), every later event about them
        up to ``as_of``, and the refusals of [start, end)."""
        async with self.pool.acquire() as conn:
            submitted = await conn.fetch(
                "SELECT package_id, organ_id, at, detail FROM events "
                "WHERE event = 'submitted' AND detail->>'kind' = 'edoc' "
                "AND at >= $1 AND at < $2 AND at <= $3 ORDER BY at, id",
                start,
                end,
                as_of,
            )
            documents = {
                r["package_id"]: Document(
                    str(r["package_id"]),
                    r["organ_id"],
                    r["at"],
                    tuple(dict.fromkeys(r["detail"].get("recipients", []))),
                )
                for r in submitted
            }
            copies = {
                (key, recipient): Copy(doc, recipient)
                for key, doc in documents.items()
                for recipient in doc.recipients
            }
            later = await conn.fetch(
                "SELECT package_id, event, organ_id, at, detail FROM events "
                "WHERE package_id = ANY($1::uuid[]) AND at <= $2 "
                "AND event IN ('verified', 'delivered', 'fetched', 'status', 'recalled', "
                "'disposition', 'linked', 'push_failed') "
                "ORDER BY at, id",
                list(documents),
                as_of,
            )
            reports = await self._pdf_verdicts(conn, later)
            for r in later:
                _apply(r, documents[r["package_id"]], copies, reports)
            # A revocation (BussinessDocType 1) is a recall, not a document to handle: it
            # shows as the recall of the document it concerns (its "linked ... revokes" event).
            revocations = {
                r["package_id"]
                for r in later
                if r["event"] == "linked"
                and r["detail"].get("relation") == "revokes"
                and r["detail"].get("concerns")
            }
            refusals = await conn.fetch(
                "SELECT organ_id, at, detail->>'code' AS code FROM events "
                "WHERE event = 'rejected' AND at >= $1 AND at < $2 AND at <= $3",
                start,
                end,
                as_of,
            )
            agencies = await conn.fetch("SELECT code, name, level FROM agencies")
        return Evidence(
            start,
            end,
            as_of,
            [d for key, d in documents.items() if key not in revocations],
            [c for (key, _), c in copies.items() if key not in revocations],
            [Refusal(r["organ_id"] or "", r["at"], r["code"] or "") for r in refusals],
            {a["code"]: a["level"] for a in agencies},
            {a["code"]: a["name"] for a in agencies},
        )

    @staticmethod
    async def _pdf_verdicts(conn, later) -> dict[bytes, tuple[int, int]]:
        """(PDF attachments, of which TOTAL-PASSED) of each report a verified event cites."""
        digests = [
            bytes.fromhex(r["detail"]["report_digest"])
            for r in later
            if r["event"] == "verified" and r["detail"].get("report_digest")
        ]
        rows = await conn.fetch(
            "SELECT digest, report FROM verification_reports WHERE digest = ANY($1::bytea[])",
            digests,
        )
        verdicts = {}
        for row in rows:
            attachments = json.loads(row["report"]).get("attachments") or []
            verdicts[row["digest"]] = (
                len(attachments),
                sum(a.get("indication") == PASSED for a in attachments),
            )
        return verdicts


def _apply(row, document: Document, copies: dict, reports: dict) -> None:
    event, organ, at = row["event"], row["organ_id"], row["at"]
    if event == "verified":
        document.signature = row["detail"].get("indication")
        digest = row["detail"].get("report_digest")
        if digest:
            document.pdfs, document.pdfs_passed = reports.get(bytes.fromhex(digest), (0, 0))
        return
    if event == "recalled" or (
        event == "linked" and row["detail"].get("relation") == "revokes" and row["detail"].get("by")
    ):
        document.recalled_at = document.recalled_at or at  # status 13, or a revocation of it
        return
    if event == "linked":
        return
    copy = copies.get((row["package_id"], organ))
    if copy is None:
        return  # an event of an agency that is not a recipient (never for these kinds)
    if event == "delivered":
        copy.delivered_at = copy.delivered_at or at
    elif event == "fetched":
        copy.fetched_at = copy.fetched_at or at
    elif event == "push_failed":
        copy.push_failed_at = copy.push_failed_at or at
    elif event == "disposition":
        copy.disposition = row["detail"].get("to")  # rows come in time order: the last wins
    else:
        copy.statuses.setdefault(row["detail"].get("status_code"), at)
