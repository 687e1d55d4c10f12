"""Push delivery while the hub's own services fail: the database goes away in the middle of an
attempt, the broker goes away between attempts. Each push is recorded acknowledged once, the
receiver gets every package, and a repeat carries the same webhook-id."""

from __future__ import annotations

import asyncio

import aiohttp

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.http.serve import running_hub
from tests.conftest import make_settings
from tests.integration.test_faults import (
    AGENCIES,
    RECIPIENT,
    SENDER,
    clean,
    document,
    proxied,
    until,
)
from tests.integration.test_push import FAST
from tests.support.faults import TcpProxy
from tests.support.receivers import Receiver


async def _states(pool) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT d.package_id, p.state FROM push_deliveries p JOIN deliveries d "
        "ON d.id = p.delivery_id"
    )
    return {str(r["package_id"]): r["state"] for r in rows}


async def _acks(pool) -> list[str]:
    rows = await pool.fetch("SELECT package_id FROM events WHERE event = 'acknowledged'")
    return [str(r["package_id"]) for r in rows]


async def _set_up(hub, url, session, receiver) -> HubClient:
    await hub.registry.upsert(AGENCIES)
    for agency in AGENCIES:
        await hub.broker.ensure_agency(agency.code)
    await hub.push_admin.switch_on(RECIPIENT, receiver.url)
    creds = await issue_credentials(hub.credentials, SENDER)
    return HubClient(url, creds.client_id, creds.client_secret, session=session)


async def test_database_lost_in_the_middle_of_an_attempt(tmp_path):
    base = make_settings(tmp_path, **FAST)
    async with TcpProxy("127.0.0.1", 5432) as pg, clean(base), Receiver() as receiver:
        settings = proxied(base, pg)
        async with running_hub(settings) as (hub, url), aiohttp.ClientSession() as session:
            sender = await _set_up(hub, url, session, receiver)
            receiver.answers = [500]
            receiver.delay = 0.0
            sent = await sender.submit(document("db-1"))
            await until(lambda: _has(receiver, 1))
            receiver.delay = 1.0  # the retry is answered late: the database goes meanwhile
            await until(lambda: _has(receiver, 2))
            pg.cut()
            await asyncio.sleep(3.0)  # the 200 came back while the database was away
            pg.restore()
            await until(lambda: _is(hub.pool, sent["id"], "acknowledged"), timeout=30)
            assert await _acks(hub.pool) == [sent["id"]]
            assert len(receiver.requests) == 2 and len(set(receiver.ids())) == 1
            outcomes = await hub.pool.fetch("SELECT outcome FROM push_attempts ORDER BY id")
            assert [r["outcome"] for r in outcomes] == ["retry", "acknowledged"]


async def test_broker_lost_between_attempts(tmp_path):
    base = make_settings(tmp_path, broker_reconnect_seconds=0.2, **FAST)
    async with TcpProxy("127.0.0.1", 5672) as mq, clean(base), Receiver() as receiver:
        settings = proxied(base, amqp=mq)
        async with running_hub(settings) as (hub, url), aiohttp.ClientSession() as session:
            sender = await _set_up(hub, url, session, receiver)
            receiver.answers = [503, 503]
            first = await sender.submit(document("mq-1"))
            await until(lambda: _has(receiver, 1))
            mq.cut()  # retries live in PostgreSQL: they go on without the broker
            await until(lambda: _is(hub.pool, first["id"], "acknowledged"))
            second = await sender.submit(document("mq-2"))  # waits in the outbox
            await asyncio.sleep(1.0)
            assert second["id"] not in await _states(hub.pool)
            mq.restore()
            await until(lambda: _is(hub.pool, second["id"], "acknowledged"), timeout=30)
            assert sorted(await _acks(hub.pool)) == sorted([first["id"], second["id"]])
            got = [r.headers["Lienthong-Package-Id"] for r in receiver.requests]
            assert got == [first["id"]] * 3 + [second["id"]]


async def _has(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n


async def _is(pool, package_id: str, state: str) -> bool:
    return (await _states(pool)).get(package_id) == state
