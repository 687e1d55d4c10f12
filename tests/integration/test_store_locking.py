"""Confirming publishes and delivering lock the same rows from several connections at once
(four publisher channels, the relay, the inbox worker, other hub processes): they must wait
for each other, never deadlock, and leave exactly one 'routed' and one 'delivered' per copy."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid

import pytest

from exchange.delivery import choose_document
from exchange.flows import settle
from exchange.submission import new_package
from schemas import build_document, read_package
from tests.integration.test_exchange import (  # noqa: F401 (agencies is a fixture)
    COMMUNE,
    DISTRICT,
    MINISTRY,
    PROVINCE,
    agencies,
)

ROUNDS = 8
PACKAGES_PER_ROUND = 60


async def _stored(hub, tmp_path, number: int):
    """A package stored with its outbox rows, not handed to the broker (the relay would wait an
    hour): its copies are the rows the test confirms and delivers."""
    raw = build_document(
        sender=MINISTRY,
        recipients=[PROVINCE, DISTRICT, COMMUNE],
        code_number=str(number),
        code_notation="KHOA-LT",
        subject="V/v thử khóa dòng",
    )
    path = tmp_path / f"p{number}.xml"
    path.write_bytes(raw)
    package = read_package(path).package
    new = new_package(
        uuid.uuid4(),
        package,
        hashlib.sha256(raw).digest(),
        len(raw),
        (PROVINCE, DISTRICT, COMMUNE),
        3600.0,
        None,
    )
    result = await hub.packages.insert(new, choose_document, settle)
    return list(result.outgoing)


async def _until_waiting(pool, count: int, timeout: float = 10.0) -> None:
    """Until ``count`` sessions wait for a lock (or ``timeout``: some finished first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("agencies")
async def test_confirms_and_deliveries_in_opposite_orders_never_deadlock(exchange, tmp_path):
    hub = exchange.hub
    packages = hub.packages
    all_ids: list[int] = []
    for round_number in range(ROUNDS):
        outgoing = []
        for n in range(PACKAGES_PER_ROUND):
            outgoing += await _stored(hub, tmp_path, 900_000 + round_number * 100 + n)
        ids = [o.delivery_id for o in outgoing]
        all_ids += ids
        now = dt.datetime.now(dt.UTC)
        # The same copies, confirmed by two publishers and delivered by the inbox worker at
        # once, each walking them in another order.
        half = len(ids) // 2
        # A third party holds one copy in the middle: every operation below locks up to it and
        # waits there, so they are all inside their statements at the same moment.
        async with hub.pool.acquire() as holder, holder.transaction():
            await holder.execute("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", ids[half])
            running = [
                asyncio.ensure_future(op)
                for op in (
                    packages.confirm_published(outgoing, now),
                    packages.confirm_published(outgoing[::-1], now),
                    packages.mark_delivered(ids[::-1]),
                    packages.mark_delivered(ids[half:] + ids[:half]),
                )
            ]
            await _until_waiting(hub.pool, len(running))
        results = await asyncio.gather(*running, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, failures
        # (the hub's own relay may deliver some of them too, after a broker reconnect: the
        # final state below is what must hold, not who did it)
    rows = await hub.pool.fetch(
        "SELECT d.id, d.state, d.routed_at IS NOT NULL AS routed, "
        "(SELECT count(*) FROM events e WHERE e.package_id = d.package_id "
        " AND e.organ_id = d.recipient AND e.event = 'routed') AS routed_events, "
        "(SELECT count(*) FROM events e WHERE e.package_id = d.package_id "
        " AND e.organ_id = d.recipient AND e.event = 'delivered') AS delivered_events, "
        "EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id) AS in_outbox "
        "FROM deliveries d WHERE d.id = ANY($1::bigint[])",
        all_ids,
    )
    assert len(rows) == len(all_ids)
    for row in rows:
        assert row["state"] == "delivered" and row["routed"] and not row["in_outbox"], dict(row)
        assert row["routed_events"] == 1 and row["delivered_events"] == 1, dict(row)
