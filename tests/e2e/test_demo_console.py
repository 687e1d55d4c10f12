"""``lienthong demo --keep-serving`` prints a console URL and demo logins; signing in with one
shows the demo's document and its KPIs, which match the SQL recomputation."""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import time

import pytest

from exchange.store import database as db
from tests.conftest import cleanup_broker, make_settings
from tests.support.cli import cli_args, env_for
from tests.support.console import signed_in
from tests.support.kpi_oracle import oracle

DEMO_CODES = ["000.00.00.G22", "000.00.00.H49", "000.00.10.H49", "000.05.10.H49"]


@pytest.fixture
async def settings(tmp_path):
    s = make_settings(tmp_path)
    yield s
    await cleanup_broker(s, DEMO_CODES)
    await db.drop_schema(s)


def _read_until_console(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    out, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out += line
        if "Ctrl-C to stop" in line:
            return out
    raise AssertionError(f"the demo never said it keeps serving:\n{out}")


async def test_keep_serving_prints_a_console_login_that_works(settings):
    env = env_for(settings, LIENTHONG_PORT="0", COLUMNS="200")
    proc = subprocess.Popen(
        cli_args("demo", "--keep-serving"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        out = _read_until_console(proc)
        assert "every step checked out" in out
        url = re.search(r"Console: (http://127\.0\.0\.1:\d+)/console", out).group(1)
        login = re.search(r"demo-vanhanh\s*│\s*operator\s*│\s*│\s*(\S+)", out)
        assert login, out
        async with await signed_in(url, "demo-vanhanh", login.group(1)) as session:
            async with session.get(f"{url}/console/sent") as r:
                html = await r.text()
            assert r.status == 200 and "VPCP-KSTT" in html
            async with session.get(f"{url}/console/dashboard") as r:
                html = await r.text()
            assert html.count("<svg") == 4
            sent = re.search(r'data-figure="documents_sent".*?class="big">([^<]+)<', html, re.S)
            on_time = re.search(
                r'data-figure="on_time_03".*?class="small">(\d+) / (\d+)<', html, re.S
            )
            pool = await db.connect(settings, min_size=1, max_size=1)
            try:
                today = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).date()
                start = dt.datetime.combine(
                    today.replace(day=1), dt.time(), dt.timezone(dt.timedelta(hours=7))
                )
                end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), start.tzinfo)
                expected = await oracle(pool, start, end, dt.datetime.now(dt.UTC), {"03": 1})
            finally:
                await pool.close()
            assert int(sent.group(1)) == expected["documents_sent"][0] >= 1
            assert (int(on_time.group(1)), int(on_time.group(2))) == expected["on_time_03"][:2]
            assert expected["on_time_03"][1] >= 3  # the first document's three recipients
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
