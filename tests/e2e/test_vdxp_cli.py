"""``lienthong agency vdxp-credentials`` and ``agency revoke`` for VDXP systemids, as an
operator runs them; then the hub, in another process, checks the DMS's signatures with them."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time

import aiohttp
import pytest

from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.cli import cli_args, env_for, lienthong, no_noise
from tests.support.vdxp import SdkClient

REGISTRY = "code,name\n000.00.00.H51,UBND tỉnh Quảng Ngãi\n000.00.05.H51,UBND huyện Sơn Tịnh\n"


@pytest.fixture
async def settings(tmp_path):
    s = make_settings(tmp_path)
    yield s
    await db.drop_schema(s)


async def test_issue_use_and_revoke_vdxp_credentials(settings, tmp_path):
    registry = tmp_path / "agencies.csv"
    registry.write_text(REGISTRY, encoding="utf-8")
    lienthong(settings, "registry", "import", str(registry))
    out = lienthong(settings, "agency", "vdxp-credentials", "H51", "--also", "05.H51", "--json")
    creds = json.loads(out.stdout)
    assert set(creds) == {"systemid", "secret", "endpoint"}
    assert creds["systemid"] == "000.00.00.H51" and creds["endpoint"].endswith("/vdxp")
    assert creds["secret"].replace("-", "").replace("_", "").isalnum()
    human = lienthong(settings, "agency", "vdxp-credentials", "H51", "--system-id", "qn-dms")
    assert "systemid: qn-dms" in human.stdout and "000.00.05.H51" not in human.stdout
    unknown = lienthong(settings, "agency", "vdxp-credentials", "000.00.00.H99", check=False)
    assert unknown.returncode != 0 and "000.00.00.H99" in unknown.stderr
    no_noise(unknown)

    port = _free_port()
    hub = subprocess.Popen(
        cli_args("serve", "--no-workers", "--port", str(port)),
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _ready(session, url)
            dms = SdkClient(session, f"{url}/vdxp", creds["systemid"], creds["secret"])
            answer = await dms.call("getAgenciesList")
            assert answer["ErrorCode"] == "0", answer
            assert "000.00.05.H51" in {a["code"] for a in answer["data"]}
            revoked = lienthong(settings, "agency", "revoke", creds["systemid"])
            assert "revoked" in revoked.stdout
            assert (await dms.call("getAgenciesList"))["ErrorCode"] == "111"
    finally:
        hub.terminate()
        _, err = hub.communicate(timeout=30)
    assert creds["secret"] not in err  # never logged
    again = lienthong(settings, "agency", "revoke", creds["systemid"], check=False)
    assert again.returncode == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _ready(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the hub never became ready")
