"""A generated month of traffic, written as the hub records it: package rows and their trail
events (with their ledger leaves), at chosen times, for the KPI tests and the console shots.

The generator writes through :func:`exchange.store.events.record_events`, so the rows are the
ones the hub itself would have written; only the times are chosen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid

from exchange.events import Event
from exchange.kpi.calendar import VIETNAM
from exchange.registry import Agency
from exchange.store.events import record_events

AGENCIES = (
    Agency("000.00.00.G22", "Văn phòng Chính phủ", None, "central"),
    Agency("000.00.00.G13", "Bộ Nội vụ", None, "central"),
    Agency("000.00.00.H49", "UBND tỉnh Quảng Ninh", None, "province"),
    Agency("000.00.00.H47", "UBND tỉnh Quảng Nam", None, "province"),
    Agency("000.00.10.H49", "UBND thành phố Hạ Long", "000.00.00.H49", "district"),
    Agency("000.00.11.H49", "UBND thành phố Cẩm Phả", "000.00.00.H49", "district"),
    Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune"),
    Agency("000.06.10.H49", "UBND phường Bãi Cháy", "000.00.10.H49", "commune"),
)


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


async def generate_month(
    pool, year: int, month: int, documents: int = 400, seed: int = 14
) -> dict[str, int]:
    """``documents`` documents sent in the given month between the agencies of
    :data:`AGENCIES` (registered first), with deliveries, fetches, statuses 01-06, recalls,
    verification reports and refusals at the door. Returns what was written."""
    rng = random.Random(seed)
    start = dt.datetime(year, month, 1, tzinfo=VIETNAM)
    days = ((start + dt.timedelta(days=32)).replace(day=1) - start).days
    codes = [a.code for a in AGENCIES]
    written = {"documents": 0, "events": 0, "refusals": 0}
    async with pool.acquire() as conn, conn.transaction():
        for a in AGENCIES:
            await conn.execute(
                "INSERT INTO agencies (code, name, parent, level, routing_key) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO NOTHING",
                a.code,
                a.name,
                a.parent,
                a.level,
                a.routing_key,
            )
            # the registry answers from its versions (migration 0009): one, since always
            await conn.execute(
                "INSERT INTO agency_versions (code, effective_from, name, parent, level, "
                "routing_key, recorded_by, reason) SELECT $1, DATE '0001-01-01', $2, $3, $4, $5, "
                "'traffic generator', 'generated traffic' WHERE NOT EXISTS "
                "(SELECT 1 FROM agency_versions WHERE code = $1)",
                a.code,
                a.name,
                a.parent,
                a.level,
                a.routing_key,
            )
        for n in range(documents):
            sent = start + dt.timedelta(
                days=rng.randrange(days), hours=rng.uniform(7, 18), seconds=rng.random()
            )
            sender = rng.choice(codes)
            recipients = rng.sample([c for c in codes if c != sender], rng.randint(1, 3))
            events = await _document(conn, rng, n, sent, sender, recipients)
            await record_events(conn, events)
            written["documents"] += 1
            written["events"] += len(events)
        for n in range(documents // 20):
            at = start + dt.timedelta(days=rng.randrange(days), hours=rng.uniform(7, 18))
            code = rng.choice(["signature.invalid", "recipient.unknown", "edxml.schema"])
            await record_events(
                conn,
                [
                    Event(
                        "rejected",
                        _digest("refused", n),
                        None,
                        rng.choice(codes),
                        {"code": code},
                        at,
                    )
                ],
            )
            written["refusals"] += 1
    return written


async def _document(conn, rng, n, sent, sender, recipients) -> list[Event]:
    package_id, digest = uuid.uuid4(), _digest("doc", n, sent)
    await conn.execute(
        "INSERT INTO packages (id, digest, sender, kind, document_id, size, received_at) "
        "VALUES ($1, $2, $3, 'edoc', $4, 1000, $5)",
        package_id,
        digest,
        sender,
        f"{sender},{sent:%Y/%m/%d},{n}/GEN",
        sent,
    )
    events = [
        Event(
            "submitted",
            digest,
            package_id,
            sender,
            {"kind": "edoc", "size": 1000, "recipients": recipients},
            sent,
        )
    ]
    if rng.random() < 0.9:
        events.append(await _verified(conn, rng, package_id, digest, sender, sent))
    if rng.random() < 0.02:
        events.append(
            Event(
                "recalled",
                digest,
                package_id,
                sender,
                {"status_code": "13"},
                sent + dt.timedelta(hours=rng.uniform(1, 48)),
            )
        )
    for recipient in recipients:
        events += _copy(rng, package_id, digest, recipient, sent)
    if rng.random() < 0.03:  # revoked by a revocation package (BussinessDocType 1)
        events += await _revocation(conn, n, package_id, digest, sender, recipients, sent)
    for recipient in recipients:
        if rng.random() < 0.03:  # on push, and the push gave up (a dead letter)
            events.append(
                Event(
                    "push_failed",
                    digest,
                    package_id,
                    recipient,
                    {"webhook_id": str(uuid.uuid4()), "reason": "HTTP 410: gone"},
                    sent + dt.timedelta(hours=rng.uniform(1, 72)),
                )
            )
    if rng.random() < 0.06:  # recalled (13 or a revocation) or superseded: the copies' fate
        events += _dispositions(rng, package_id, digest, recipients, sent)
    return events


async def _revocation(conn, n, target, target_digest, sender, recipients, sent) -> list[Event]:
    """A revocation of document ``target``: a package of its own, linked to it both ways."""
    at = sent + dt.timedelta(hours=3)
    revocation, digest = uuid.uuid4(), _digest("revocation", n, sent)
    await conn.execute(
        "INSERT INTO packages (id, digest, sender, kind, document_id, business_doc_type, size, "
        "received_at) VALUES ($1, $2, $3, 'edoc', $4, 1, 1000, $5)",
        revocation,
        digest,
        sender,
        f"{sender},{sent:%Y/%m/%d},{n}/THU-HOI",
        at,
    )
    link = {"relation": "revokes", "organs": recipients}
    events = [
        Event(
            "submitted",
            digest,
            revocation,
            sender,
            {"kind": "edoc", "size": 1000, "recipients": recipients},
            at,
        ),
        Event(
            "linked",
            target_digest,
            target,
            sender,
            {**link, "by": str(revocation), "by_document_id": f"{n}/THU-HOI"},
            at,
        ),
        Event(
            "linked",
            digest,
            revocation,
            sender,
            {**link, "concerns": str(target), "document_id": f"{n}/GEN"},
            at,
        ),
    ]
    for recipient in recipients:
        events.append(Event("delivered", digest, revocation, recipient, {}, at))
    return events


def _dispositions(rng, package_id, digest, recipients, sent) -> list[Event]:
    events, at = [], sent + dt.timedelta(hours=rng.uniform(2, 72))
    superseded = rng.random() < 0.4
    for recipient in recipients:
        steps = [("active", "superseded")] if superseded else [("active", "recall_requested")]
        if not superseded and rng.random() < 0.8:
            steps.append(("recall_requested", rng.choice(["recalled", "recall_refused"])))
        for n, (before, after) in enumerate(steps):
            events.append(
                Event(
                    "disposition",
                    digest,
                    package_id,
                    recipient,
                    {"from": before, "to": after, "cause": str(uuid.uuid4()), "why": "gen"},
                    at + dt.timedelta(minutes=30 * n),
                )
            )
    return events


async def _verified(conn, rng, package_id, digest, sender, sent) -> Event:
    indication = "TOTAL-PASSED" if rng.random() < 0.85 else "INDETERMINATE"
    pdfs = rng.randint(0, 2)
    report = json.dumps(
        {
            "indication": indication,
            "attachments": [
                {
                    "content_id": f"cid:{i}",
                    "indication": "TOTAL-PASSED" if rng.random() < 0.8 else "TOTAL-FAILED",
                }
                for i in range(pdfs)
            ],
        }
    ).encode()
    report_digest = hashlib.sha256(report).digest()
    await conn.execute(
        "INSERT INTO verification_reports (package_id, indication, digest, report) "
        "VALUES ($1, $2, $3, $4)",
        package_id,
        indication,
        report_digest,
        report,
    )
    return Event(
        "verified",
        digest,
        package_id,
        sender,
        {"indication": indication, "report_digest": report_digest.hex()},
        sent + dt.timedelta(milliseconds=50),
    )


def _copy(rng, package_id, digest, recipient, sent) -> list[Event]:
    at = sent + dt.timedelta(seconds=rng.uniform(0.05, 3))
    events = [Event("routed", digest, package_id, recipient, {}, at)]
    if rng.random() < 0.01:
        return events  # still on its way
    at += dt.timedelta(seconds=rng.uniform(0.01, 2))
    events.append(Event("delivered", digest, package_id, recipient, {}, at))
    if rng.random() < 0.03:
        return events  # never fetched
    at += dt.timedelta(minutes=rng.expovariate(1 / 30))
    events.append(Event("fetched", digest, package_id, recipient, {}, at))
    events.append(Event("acknowledged", digest, package_id, recipient, {}, at))
    if rng.random() < 0.03:
        events.append(_status(digest, package_id, recipient, "02", at + dt.timedelta(minutes=5)))
        return events
    for code, mean_hours, chance in (
        ("01", 2, 0.95),
        ("03", 20, 0.9),
        ("04", 8, 0.8),
        ("05", 24, 0.8),
        ("06", 24 * 6, 0.7),
    ):
        if rng.random() > chance:
            break
        at += dt.timedelta(hours=rng.expovariate(1 / mean_hours))
        events.append(_status(digest, package_id, recipient, code, at))
    return events


def _status(digest, package_id, recipient, code, at) -> Event:
    return Event(
        "status",
        digest,
        package_id,
        recipient,
        {
            "status_code": code,
            "status_package": str(uuid.uuid4()),
            "status_digest": _digest(code, at).hex(),
        },
        at,
    )
