"""A hub killed (SIGKILL) in the middle of push delivery: between attempts, and while an attempt
is on the wire. The restarted hub finishes the job; the push is acknowledged once, and a repeat
carries the same webhook-id so the receiver can tell."""

from __future__ import annotations

import aiohttp
import pytest

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.push import PushAdmin
from exchange.sealing import open_secret_box
from exchange.store import Stores
from exchange.store import database as db
from exchange.store.push import PostgresPush
from tests.conftest import cleanup_broker, make_settings
from tests.e2e.test_processes import Served
from tests.integration.test_faults import AGENCIES, RECIPIENT, SENDER, document, until
from tests.support.receivers import Receiver

PUSH_ENV = {
    "LIENTHONG_PUSH_RETRY_SCHEDULE": "1",
    "LIENTHONG_PUSH_TIMEOUT_SECONDS": "2",
    "LIENTHONG_PUSH_POLL_SECONDS": "0.05",
}


@pytest.fixture
async def setup(tmp_path):
    settings = make_settings(tmp_path)
    await db.create_database(settings)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=4)
    stores = Stores.over(pool)
    await stores.registry.upsert(AGENCIES)
    creds = await issue_credentials(stores.credentials, SENDER)
    try:
        yield settings, pool, stores, creds
    finally:
        await pool.close()
        await cleanup_broker(settings, [a.code for a in AGENCIES])
        await db.drop_schema(settings)


async def _state(pool, package_id: str) -> str | None:
    return await pool.fetchval(
        "SELECT p.state FROM push_deliveries p JOIN deliveries d ON d.id = p.delivery_id "
        "WHERE d.package_id = $1::uuid",
        package_id,
    )


async def _acks(pool, package_id: str) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM events WHERE event = 'acknowledged' AND package_id = $1::uuid",
        package_id,
    )


async def _submit(served: Served, creds) -> str:
    async with aiohttp.ClientSession() as session:
        client = HubClient(served.url, creds.client_id, creds.client_secret, session=session)
        return (await client.submit(document(served.mark[:8])))["id"]


@pytest.mark.parametrize("moment", ["waiting_for_retry", "in_progress"])
async def test_hub_killed_mid_retry_loses_nothing_and_doubles_nothing(setup, moment):
    settings, pool, stores, creds = setup
    async with Receiver() as receiver:
        admin = PushAdmin(PostgresPush(pool), open_secret_box(settings))
        await admin.switch_on(RECIPIENT, receiver.url)
        receiver.answers = [500]
        first = Served(settings, 1, **PUSH_ENV)
        try:
            await first.wait_ready()
            package_id = await _submit(first, creds)
            await until(lambda: _requests(receiver, 1))
            if moment == "in_progress":
                receiver.hang = True  # the second attempt is on the wire when the hub dies
                await until(lambda: _requests(receiver, 2))
            assert await _state(pool, package_id) == moment
        finally:
            first.finish()  # SIGKILL: no chance to clean up
        receiver.hang = False
        second = Served(settings, 1, **PUSH_ENV)
        try:
            await second.wait_ready()
            await until(lambda: _is(pool, package_id, "acknowledged"), timeout=30)
        finally:
            second.finish()
        assert await _acks(pool, package_id) == 1
        assert set(receiver.ids()) == {receiver.ids()[0]}
        expected = 3 if moment == "in_progress" else 2
        assert len(receiver.requests) == expected
        assert "Traceback" not in first.err + second.err


async def _requests(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n


async def _is(pool, package_id: str, state: str) -> bool:
    return await _state(pool, package_id) == state


async def test_several_hub_processes_push_each_delivery_once(setup):
    settings, pool, stores, creds = setup
    async with Receiver() as receiver:
        admin = PushAdmin(PostgresPush(pool), open_secret_box(settings))
        await admin.switch_on(RECIPIENT, receiver.url)
        served = Served(settings, 2, **PUSH_ENV)
        try:
            await served.wait_ready()
            async with aiohttp.ClientSession() as session:
                client = HubClient(
                    served.url, creds.client_id, creds.client_secret, session=session
                )
                sent = [(await client.submit(document(f"multi-{n}")))["id"] for n in range(20)]
            for package_id in sent:
                await until(lambda p=package_id: _is(pool, p, "acknowledged"), timeout=30)
        finally:
            served.finish()
        ids = receiver.ids()
        assert len(ids) == len(set(ids)) == 20  # one request per delivery, across 2 processes
        acks = await pool.fetchval("SELECT count(*) FROM events WHERE event = 'acknowledged'")
        assert acks == 20
