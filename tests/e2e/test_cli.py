"""The ``lienthong`` command as an operator runs it: separate processes, real services."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from adapters.client import HubClient
from exchange.store import database as db
from schemas import build_document
from tests.conftest import cleanup_broker, make_settings
from tests.support.cli import env_for, lienthong


@pytest.fixture
async def settings(tmp_path):
    s = make_settings(tmp_path)
    yield s
    await db.drop_schema(s)


REGISTRY_CSV = """code,name,parent,level,valid_from,valid_to,successor
000.00.00.H49,UBND tỉnh Quảng Ninh,,province,,,
000.00.10.H49,UBND thành phố Hạ Long,,,,,
05.10.H49,UBND phường Hồng Gai,,commune,2020-01-01,,
000.00.00.H33,UBND tỉnh cũ,,province,,2025-06-30,000.00.00.H49
"""


async def test_registry_import_csv_json_and_agencies_endpoint(settings, tmp_path):
    csv_file = tmp_path / "agencies.csv"
    csv_file.write_text(REGISTRY_CSV, encoding="utf-8")
    out = lienthong(settings, "registry", "import", str(csv_file)).stdout
    assert "4 new, 0 updated" in out
    json_file = tmp_path / "agencies.json"
    json_file.write_text(
        json.dumps(
            {
                "agencies": [
                    {"code": "G22", "name": "Văn phòng Chính phủ"},
                    {"code": "000.00.10.H49", "name": "TP Hạ Long (đổi tên)"},
                ]
            }
        ),
        encoding="utf-8",
    )
    out = lienthong(settings, "registry", "import", str(json_file)).stdout
    assert "1 new, 1 updated" in out
    listing = json.loads(lienthong(settings, "registry", "list", "--json").stdout)
    by_code = {a["code"]: a for a in listing}
    assert by_code["000.05.10.H49"]["parent"] == "000.00.10.H49"
    assert by_code["000.00.10.H49"]["level"] == "district"
    assert by_code["000.00.10.H49"]["name"] == "TP Hạ Long (đổi tên)"
    assert by_code["000.00.00.G22"]["level"] == "central"
    assert by_code["000.00.00.H33"]["successor"] == "000.00.00.H49"

    creds = json.loads(
        lienthong(settings, "agency", "credentials", "28.22.h17", check=False).stdout or "{}"
    )
    assert creds == {}  # not registered: refused
    creds = json.loads(lienthong(settings, "agency", "credentials", "H49", "--json").stdout)
    assert creds["organ_id"] == "000.00.00.H49" and len(creds["client_secret"]) >= 40
    stored = await _stored_secret_hashes(settings)
    assert creds["client_secret"] not in " ".join(stored)

    from exchange.http.serve import running_hub

    async with (
        running_hub(settings) as (_, url),
        HubClient(url, creds["client_id"], creds["client_secret"]) as client,
    ):
        everything = await client.agencies()
        assert len(everything) == 5
        province = await client.agencies(under="000.00.00.H49")
        assert [a["code"] for a in province] == ["000.00.00.H49", "000.00.10.H49", "000.05.10.H49"]
        children = await client.agencies(parent="000.00.10.H49")
        assert [a["code"] for a in children] == ["000.05.10.H49"]
    await cleanup_broker(settings, list(by_code))


async def _stored_secret_hashes(settings) -> list[str]:
    pool = await db.connect(settings, min_size=1, max_size=1)
    try:
        return [r[0] for r in await pool.fetch("SELECT secret_hash FROM credentials")]
    finally:
        await pool.close()


async def test_registry_reimport_keeps_columns_the_file_does_not_have(settings, tmp_path):
    """A retired code stays retired when a later file (a name list, say) lacks valid_to and
    successor; --replace is the explicit way to overwrite every column."""
    first = tmp_path / "full.csv"
    first.write_text(
        "code,name,valid_to,successor,verify_policy\n"
        "000.00.00.H49,UBND tỉnh Quảng Ninh,,,\n"
        "000.00.00.H33,UBND tỉnh cũ,2025-06-30,000.00.00.H49,report-only\n",
        encoding="utf-8",
    )
    lienthong(settings, "registry", "import", str(first))
    names = tmp_path / "names.json"
    names.write_text(
        json.dumps([{"code": "H33", "name": "UBND tỉnh cũ (tên mới)"}]), encoding="utf-8"
    )
    out = lienthong(settings, "registry", "import", str(names)).stdout
    assert "0 new, 1 updated" in out
    listing = {
        a["code"]: a for a in json.loads(lienthong(settings, "registry", "list", "--json").stdout)
    }
    old = listing["000.00.00.H33"]
    assert old["name"] == "UBND tỉnh cũ (tên mới)"
    assert (old["valid_to"], old["successor"], old["verify_policy"]) == (
        "2025-06-30",
        "000.00.00.H49",
        "report-only",
    )
    # A column that is present but empty clears the value; --replace clears absent ones too.
    cleared = tmp_path / "cleared.csv"
    cleared.write_text("code,name,verify_policy\n000.00.00.H33,UBND tỉnh cũ,\n", encoding="utf-8")
    lienthong(settings, "registry", "import", str(cleared))
    listing = {
        a["code"]: a for a in json.loads(lienthong(settings, "registry", "list", "--json").stdout)
    }
    assert listing["000.00.00.H33"]["verify_policy"] is None
    assert listing["000.00.00.H33"]["successor"] == "000.00.00.H49"
    out = lienthong(settings, "registry", "import", "--replace", str(names)).stdout
    assert "replaced" in out
    listing = {
        a["code"]: a for a in json.loads(lienthong(settings, "registry", "list", "--json").stdout)
    }
    assert listing["000.00.00.H33"]["successor"] is None


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("code,name\nnot-a-code,X\n", ".csv", "line 2"),
        ("code,name\n000.00.00.H49,\n", ".csv", "name is required"),
        ("code,name,level\n000.00.00.H49,X,planet\n", ".csv", "level 'planet'"),
        ("name\nX\n", ".csv", "'code' column"),
        ("{not json", ".json", "not valid JSON"),
        ('[{"code": "H49", "name": "X", "colour": "red"}]', ".json", "unknown columns colour"),
        ("code,name\nH49,A\n000.00.00.H49,B\n", ".csv", "appears twice"),
        ("code,name,level,valid_from\n10.H49,X,district,2025-07-01\n", ".csv", "district level"),
    ],
)
def test_registry_import_refuses_bad_files_and_changes_nothing(
    settings, tmp_path, content, suffix, message
):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content, encoding="utf-8")
    proc = lienthong(settings, "registry", "import", str(path), check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_as_a_process_exchanges_and_stops_cleanly(settings, tmp_path):
    """`lienthong serve` started like an operator would, two processes sharing the port; an
    agency registered while it runs."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange.cli", "serve", "--port", str(port), "--processes", "2"],
        env=env_for(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    codes = ["000.00.00.G05", "000.00.07.H49"]
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"{url}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(proc.stderr.read() if proc.poll() is not None else "no start")
            csv_file = tmp_path / "a.csv"
            csv_file.write_text("code,name\nG05,Bộ Y tế\n07.H49,Sở Y tế Quảng Ninh\n")
            lienthong(settings, "registry", "import", str(csv_file))
            sender = json.loads(
                lienthong(settings, "agency", "credentials", "G05", "--json").stdout
            )
            receiver = json.loads(
                lienthong(settings, "agency", "credentials", "000.00.07.H49", "--json").stdout
            )
            async with (
                HubClient(url, sender["client_id"], sender["client_secret"]) as a,
                HubClient(url, receiver["client_id"], receiver["client_secret"]) as b,
            ):
                packages = [
                    build_document(
                        sender="G05",
                        recipients=["000.00.07.H49"],
                        code_number=str(n),
                        code_notation="BYT",
                        subject="Khẩn",
                    )
                    for n in range(12)
                ]
                sent = await asyncio.gather(*(a.submit(p) for p in packages))
                wanted = {s["id"] for s in sent}
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if wanted <= {i["id"] for i in (await b.inbox(limit=100))["items"]}:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("not all delivered")
                assert await b.fetch(sent[0]["id"]) == packages[0]
                leaves = {s["receipt"]["claims"]["ledger"]["leaf_index"] for s in sent}
                assert len(leaves) == len(sent)  # one ledger, whichever process answered
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        await cleanup_broker(settings, codes)
    assert proc.returncode == 0, err
    assert "listening on" in out
    for line in err.splitlines():  # logs are JSON lines and never carry secrets
        assert line.startswith("{"), line
        entry = json.loads(line)
        assert sender["client_secret"] not in line and "access_token" not in entry


def test_demo_runs_the_four_levels(settings):
    proc = lienthong(settings, "demo")
    out = proc.stdout
    for level in ("central", "province", "district", "commune"):
        assert level in out
    assert "Demo finished: every step checked out" in out
    assert "Reorganisation: every step checked out" in out
    assert out.count("acknowledged") >= 3
    from exchange import demo_reorganisation as reorg

    new_codes = [a.code for a in (*reorg.OLD_PROVINCES, *reorg.NEW_UNITS)]
    asyncio.run(
        cleanup_broker(
            settings,
            ["000.00.00.G22", "000.00.00.H49", "000.00.10.H49", "000.05.10.H49", *new_codes],
        )
    )


def test_help_documents_every_command():
    for args in (
        [],
        ["serve"],
        ["demo"],
        ["db"],
        ["registry", "import"],
        ["registry", "list"],
        ["registry", "show"],
        ["registry", "structure"],
        ["registry", "reorganise"],
        ["agency", "credentials"],
        ["agency", "revoke"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "exchange.cli", *args, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0 and "usage: lienthong" in proc.stdout
