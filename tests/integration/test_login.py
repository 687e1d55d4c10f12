"""POST /v1/token under attack: scrypt off the event loop, the same cost for unknown and known
client ids, failures throttled per client id and per address, each failure audited."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time

import aiohttp
import pytest

from exchange.auth import issue_credentials
from exchange.http.serve import running_hub
from exchange.logs import JsonFormatter
from exchange.registry import Agency
from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.http import assert_error

AGENCY = "000.00.00.G09"


async def start_hub(tmp_path, **changes):
    settings = make_settings(tmp_path, **changes)
    context = running_hub(settings, consume=False)
    hub, url = await context.__aenter__()
    await hub.registry.upsert([Agency(AGENCY, "Bộ", None, "central")])
    return settings, context, hub, url


@pytest.fixture(scope="module")
async def lenient(tmp_path_factory):
    """Throttles out of the way: what is measured is the cost of checking secrets."""
    settings, context, hub, url = await start_hub(
        tmp_path_factory.mktemp("lenient"),
        login_failures_per_client=10_000,
        login_failures_per_address=10_000,
    )
    yield hub, url
    await context.__aexit__(None, None, None)
    await db.drop_schema(settings)


@pytest.fixture(scope="module")
async def strict(tmp_path_factory):
    settings, context, hub, url = await start_hub(
        tmp_path_factory.mktemp("strict"),
        login_failures_per_client=3,
        login_failures_per_address=5,
        login_window_seconds=60.0,
    )
    yield hub, url
    await context.__aexit__(None, None, None)
    await db.drop_schema(settings)


async def login(url: str, client_id: str, secret: str, source: str = "127.0.0.1"):
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            f"{url}/v1/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        ) as r,
    ):
        return r.status, await r.json(), r.headers


async def test_healthz_stays_fast_while_wrong_secrets_are_checked(lenient):
    hub, url = lenient
    creds = await issue_credentials(hub.credentials, AGENCY)
    storm = [asyncio.create_task(login(url, creds.client_id, f"wrong-{n}")) for n in range(16)]
    latencies = []
    async with aiohttp.ClientSession() as session:
        await asyncio.sleep(0.02)
        while not all(t.done() for t in storm):
            start = time.perf_counter()
            async with session.get(f"{url}/healthz") as r:
                assert r.status == 200
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.01)
    assert all(t.result()[0] == 401 for t in storm)
    assert len(latencies) >= 10
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"/healthz during 16 wrong logins: p95 {p95 * 1000:.1f} ms over {len(latencies)}")
    assert p95 < 0.05


async def test_unknown_client_ids_cost_what_known_ones_do(lenient):
    hub, url = lenient
    creds = await issue_credentials(hub.credentials, AGENCY)
    known, unknown = [], []
    for n in range(9):
        for client_id, times in ((creds.client_id, known), (f"lt-{n:016x}", unknown)):
            start = time.perf_counter()
            status, _, _ = await login(url, client_id, "not-the-secret")
            times.append(time.perf_counter() - start)
            assert status == 401
    ratio = statistics.median(unknown) / statistics.median(known)
    print(f"median unknown/known: {ratio:.2f}")
    assert 1 / 1.3 < ratio < 1.3


async def test_failures_are_throttled_per_client_id(strict):
    hub, url = strict
    creds = await issue_credentials(hub.credentials, AGENCY)
    for _ in range(3):
        status, body, _ = await login(url, creds.client_id, "guess", "127.0.0.2")
        assert_error(status, body, 401, "auth.invalid_client")
    status, body, headers = await login(url, creds.client_id, "guess", "127.0.0.2")
    assert_error(status, body, 429, "auth.throttled")
    assert 1 <= int(headers["Retry-After"]) <= 60
    # The limit is the client id's, whatever the address it is tried from.
    status, body, _ = await login(url, creds.client_id, creds.client_secret, "127.0.0.3")
    assert_error(status, body, 429, "auth.throttled")


async def test_a_guesser_does_not_lock_out_the_real_client(strict):
    hub, url = strict
    creds = await issue_credentials(hub.credentials, AGENCY)
    status, _, _ = await login(url, creds.client_id, creds.client_secret, "127.0.0.4")
    assert status == 200
    for _ in range(3):
        await login(url, creds.client_id, "guess", "127.0.0.5")
    status, body, _ = await login(url, creds.client_id, "guess", "127.0.0.5")
    assert_error(status, body, 429, "auth.throttled")
    status, _, _ = await login(url, creds.client_id, creds.client_secret, "127.0.0.4")
    assert status == 200


async def test_a_stranger_behind_the_same_address_does_not_lock_out_the_real_client(strict):
    """Behind one proxy or NAT, a stranger spraying client ids is throttled; the client that
    logged in from there before is not."""
    hub, url = strict
    creds = await issue_credentials(hub.credentials, AGENCY)
    status, _, _ = await login(url, creds.client_id, creds.client_secret, "127.0.0.9")
    assert status == 200
    for n in range(8):
        await login(url, f"lt-stranger{n}", "guess", "127.0.0.9")
    status, body, _ = await login(url, "lt-stranger-next", "guess", "127.0.0.9")
    assert_error(status, body, 429, "auth.throttled")
    status, _, _ = await login(url, creds.client_id, creds.client_secret, "127.0.0.9")
    assert status == 200


async def test_failures_are_throttled_per_address(strict):
    _, url = strict
    for n in range(5):
        status, body, _ = await login(url, f"lt-spray{n}", "guess", "127.0.0.6")
        assert_error(status, body, 401, "auth.invalid_client")
    status, body, headers = await login(url, "lt-spray-next", "guess", "127.0.0.6")
    assert_error(status, body, 429, "auth.throttled")
    assert int(headers["Retry-After"]) >= 1
    status, body, _ = await login(url, "lt-spray-next", "guess", "127.0.0.7")
    assert_error(status, body, 401, "auth.invalid_client")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_each_failed_login_is_an_audit_record_without_the_secret(strict):
    hub, url = strict
    creds = await issue_credentials(hub.credentials, AGENCY)
    collect = Collect()
    logger = logging.getLogger("lienthong.security")
    logger.addHandler(collect)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        secret = "s3cret-that-must-not-be-logged"
        status, _, _ = await login(url, creds.client_id, secret, "127.0.0.8")
        assert status == 401
    finally:
        logger.removeHandler(collect)
        logger.setLevel(old_level)
    lines = [json.loads(JsonFormatter().format(r)) for r in collect.records]
    failed = [line for line in lines if line.get("audit") == "login_failed"]
    assert len(failed) == 1, lines
    assert failed[0]["client_id"] == creds.client_id and failed[0]["remote"] == "127.0.0.8"
    assert secret not in json.dumps(lines)
