"""`lienthong agency push` and `lienthong deliveries` as an operator runs them: the secret shown
once and sealed at rest, bad input refused with its code and no traceback, failed deliveries
listed and redelivered to a running hub."""

from __future__ import annotations

import json

from tests.integration.test_faults import until
from tests.integration.test_push import hub_with, pushed_agency, send, state_is
from tests.support.cli import lienthong, no_noise
from tests.support.receivers import Receiver


async def test_agency_push_prints_the_secret_once_and_seals_it(tmp_path):
    async with hub_with(tmp_path) as ex:
        code = "000.00.31.H31"
        await ex.register((code, "UBND thử CLI"))
        settings = ex.hub.settings
        out = lienthong(settings, "agency", "push", code, "--url", "https://dms.example.vn/hook")
        secret = next(
            line.split(": ", 1)[1] for line in out.stdout.splitlines() if "secret:" in line
        )
        assert secret.startswith("whsec_")
        stored = await ex.hub.pool.fetchrow(
            "SELECT * FROM push_endpoints WHERE organ_id = $1", code
        )
        assert stored["url"] == "https://dms.example.vn/hook" and stored["enabled"]
        assert secret.encode() not in bytes(stored["secret"])
        assert secret[6:].encode() not in bytes(stored["secret"])
        opened = ex.hub.secrets.open(bytes(stored["secret"]), context=f"webhook:{code}".encode())
        assert opened.decode() == secret
        again = lienthong(settings, "agency", "push", code, "--url", "https://dms.example.vn/v2")
        assert "whsec_" not in again.stdout and "unchanged" in again.stdout
        new = lienthong(settings, "agency", "push", code, "--url", "https://x.vn/", "--new-secret")
        assert "whsec_" in new.stdout and secret not in new.stdout
        off = lienthong(settings, "agency", "push", code, "--off")
        assert "back to pull" in off.stdout
        stored = await ex.hub.pool.fetchrow(
            "SELECT * FROM push_endpoints WHERE organ_id = $1", code
        )
        assert stored["secret"] is None and not stored["enabled"]
        for args, expected in (
            (("--url", "ftp://dms.example.vn/"), "error [push.invalid_url]"),
            (("--url", "not a url"), "error [push.invalid_url]"),
            ((), "error: give --url URL or --off"),
        ):
            bad = lienthong(settings, "agency", "push", code, *args, check=False)
            assert bad.returncode == 1 and expected in bad.stderr, bad.stderr
            no_noise(bad)
        unknown = lienthong(
            settings, "agency", "push", "000.00.99.H31", "--url", "http://a.vn/", check=False
        )
        assert unknown.returncode == 1 and "push.unknown_agency" in unknown.stderr
        no_noise(unknown)


async def test_deliveries_list_and_retry(tmp_path):
    async with hub_with(tmp_path) as ex, Receiver(default=410) as receiver:
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "failed"))
        settings = ex.hub.settings
        out = lienthong(settings, "deliveries", "list", "--state", "failed", "--agency", code,
                        "--json")  # fmt: skip
        (item,) = json.loads(out.stdout)
        assert item["package_id"] == package_id and "HTTP 410" in item["last_error"]
        table = lienthong(settings, "deliveries", "list", "--state", "failed")
        assert item["id"] in table.stdout and "1 deliveries" in table.stdout
        none = lienthong(settings, "deliveries", "list", "--state", "acknowledged", "--json")
        assert json.loads(none.stdout) == []
        receiver.default = 204
        retried = lienthong(settings, "deliveries", "retry", item["id"])
        assert f"{item['id']}: due again now" in retried.stdout
        await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        assert receiver.ids() == [item["id"]] * 2
        for args, expected in (
            (("retry", item["id"]), "error [push.not_retryable]"),
            (("retry", "nope"), "error [push.not_found]"),
            (("retry",), "error: give DELIVERY_ID or --agency ORGAN_ID"),
            (("list", "--state", "lost"), "invalid choice"),
            (("list", "--limit", "0"), "error [request.invalid_parameter]"),
        ):
            bad = lienthong(settings, "deliveries", *args, check=False)
            assert bad.returncode != 0 and expected in bad.stderr, bad.stderr
            no_noise(bad)
        by_agency = lienthong(settings, "deliveries", "retry", "--agency", code)
        assert "0 deliveries will be attempted again" in by_agency.stdout


def test_demo_push_delivers_to_the_pushed_recipient_in_well_under_a_second(tmp_path):
    import asyncio
    import re

    from exchange.store import database as db
    from tests.conftest import cleanup_broker, make_settings

    settings = make_settings(tmp_path)
    try:
        proc = lienthong(settings, "demo", "--push")
        out = proc.stdout
        assert "every step checked out" in out, out
        (pushed,) = re.findall(r"(\d+) ms \(push\)", out)
        assert int(pushed) < 1000, out
        assert "takes its documents by push" in out
    finally:
        codes = ["000.00.00.G22", "000.00.00.H49", "000.00.10.H49", "000.05.10.H49"]
        asyncio.run(cleanup_broker(settings, codes))
        asyncio.run(db.drop_schema(settings))
