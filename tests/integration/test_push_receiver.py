"""The example receiver (adapters/examples/webhook_receiver.py) taking real pushes from a hub:
each package stored once, byte for byte; a repeat of the same delivery is answered 200 and not
stored again; a forged push is refused."""

from __future__ import annotations

import hashlib
import time

import pytest
from aiohttp import web

from adapters.examples.webhook_receiver import make_app
from exchange.push.contract import push_headers, secret_key, signature
from tests.integration.test_faults import until
from tests.integration.test_push import hub_with, send, state_is
from tests.support.receivers import free_port


@pytest.fixture(scope="module")
async def ex(tmp_path_factory):
    async with hub_with(tmp_path_factory.mktemp("receiver")) as exchange:
        yield exchange


async def test_the_example_receiver_stores_each_package_once(ex, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    code = "000.00.81.H31"
    await ex.register((code, "UBND có hệ thống nhận"))
    secret = await ex.hub.push_admin.switch_on(code, url)
    out = tmp_path / "received"
    runner = web.AppRunner(make_app(secret, out), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        package_id, body = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        stored = out / f"{package_id}.edxml"
        assert stored.read_bytes() == body
        first_write = stored.stat().st_mtime_ns
        # the hub repeats the delivery (its answer was lost): same webhook-id, not stored again
        row = await ex.hub.pool.fetchrow(
            "SELECT p.id FROM push_deliveries p JOIN deliveries d ON d.id = p.delivery_id "
            "WHERE d.package_id = $1::uuid", package_id,
        )  # fmt: skip
        stamp = int(time.time())
        headers = push_headers(
            str(row["id"]), stamp, signature(secret_key(secret), str(row["id"]), stamp, body),
            hashlib.sha256(body).digest(), package_id, "edoc", 2,
        )  # fmt: skip
        async with ex.session.post(url, data=body, headers=headers) as r:
            assert r.status == 200 and (await r.json())["duplicate"] is True
        assert stored.stat().st_mtime_ns == first_write
        # a forged push (body changed after signing) is refused, nothing written
        async with ex.session.post(url, data=body + b"x", headers=headers) as r:
            assert r.status == 401
        assert sorted(p.name for p in out.iterdir()) == [f"{package_id}.edxml"]
    finally:
        await runner.cleanup()
