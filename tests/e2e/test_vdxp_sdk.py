"""VNPT's own SDKVXP jar, unmodified, driving the hub: a DMS's full cycle through ``/vdxp``.

The jar is not in the repository (it is VNPT's). Give its path in ``LIENTHONG_SDKVXP_JAR``, or
put it at ``var/sdkvxp/SDKVXP-2.0.0.jar`` (Bkav's public ``QuangChuIT/edoc-integrator`` ships it
in ``edoc-service/lib/``). Its dependencies are Debian's: ``apt-get install default-jdk-headless
libhttpclient-java libhttpmime-java libgoogle-gson-java libcommons-codec-java
libcommons-logging-java libguava-java``. Without either, the test is skipped and says why.
SDKVXP 2.0.0 has no countReceive*, downloadEdoc, getAgenciesListQD20 (2.0.1 added them): they
run when the jar has them (``LIENTHONG_SDKVXP_JAR`` may name several jars, ``:``-separated),
and the SDK-faithful client of tests/integration/test_vdxp.py covers them always.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from exchange.store.vdxp import PostgresVdxpSystems
from exchange.vdxp_credentials import issue_vdxp_credentials
from schemas import build_document, build_status

MINISTRY = "000.00.00.G05"
PROVINCE = "000.00.00.H31"
_DEPENDENCIES = ("httpclient", "httpcore", "httpmime", "gson", "commons-codec", "commons-logging")
_NUMBERS = itertools.count(88)
_DRIVER = Path(__file__).parent / "sdkvxp" / "DmsDriver.java"


def _jars() -> list[str]:
    """The SDK jars to test with: ``LIENTHONG_SDKVXP_JAR`` (several separated by ``:``)."""
    return os.environ.get("LIENTHONG_SDKVXP_JAR", "var/sdkvxp/SDKVXP-2.0.0.jar").split(os.pathsep)


def _classpath(given: str) -> tuple[Path, list[str]]:
    jar = Path(given)
    if not jar.is_file():
        pytest.skip(f"VNPT's SDKVXP jar not found at {jar} (set LIENTHONG_SDKVXP_JAR)")
    if not shutil.which("javac") or not shutil.which("java"):
        pytest.skip("no JDK (java, javac) on this machine")
    jars = [str(jar.resolve())]
    for name in (*_DEPENDENCIES, "guava"):
        found = Path(f"/usr/share/java/{name}.jar")
        if not found.is_file():
            pytest.skip(f"/usr/share/java/{name}.jar missing: apt-get install the libraries")
        jars.append(str(found))
    return jar, jars


@pytest.fixture(scope="module", params=_jars(), ids=lambda jar: Path(jar).name)
def driver(request, tmp_path_factory) -> list[str]:
    """The compiled driver's java command line (without its arguments), for each SDK jar."""
    _, jars = _classpath(request.param)
    out = tmp_path_factory.mktemp("sdkvxp-driver")
    proc = subprocess.run(
        ["javac", "-d", str(out), "-cp", ":".join(jars), str(_DRIVER)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return ["java", "-cp", ":".join([str(out), *jars]), "DmsDriver"]


class Dms:
    """One DMS process on the SDK: one command in, one result out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def run(self, command: str, headers: dict | None = None, argument: str = "") -> dict:
        line = "\t".join([command, json.dumps(headers or {}), argument]) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        while True:
            out = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            assert out, "the DMS process ended"
            if out.startswith(b"@@ "):
                return json.loads(out[3:])

    async def close(self) -> None:
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 30)


async def start_dms(driver, exchange, organ: str, tmp: Path, secret: str | None = None) -> Dms:
    """A DMS on ``organ``'s new credentials, or claiming its systemid with ``secret``."""
    if secret is None:
        store = PostgresVdxpSystems(exchange.hub.pool)
        secret = (await issue_vdxp_credentials(store, exchange.hub.secrets, [organ])).secret
    proc = await asyncio.create_subprocess_exec(
        *driver,
        f"{exchange.url}/vdxp",
        organ,
        secret,
        str(tmp),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return Dms(proc)


async def listed(dms: Dms, doc_id: str, messagetype: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = await dms.run("received", {"servicetype": "eDoc", "messagetype": messagetype})
        assert (answer["status"], answer["errorCode"]) == ("OK", "0"), answer
        for item in answer["items"]:
            if item["id"] == doc_id:
                return item
        await asyncio.sleep(0.2)
    raise AssertionError(f"{doc_id} never listed")


def _ok(answer: dict) -> dict:
    assert not answer["null"] and (answer["status"], answer["errorCode"]) == ("OK", "0"), answer
    return answer


@pytest.fixture(scope="module")
async def registered(exchange):
    await exchange.register((MINISTRY, "Bộ Tài chính"), (PROVINCE, "UBND tỉnh Hà Giang"))


async def optional_operations(province: Dms, ministry: Dms, doc_id: str, package, tmp) -> None:
    """The 2.0.1 operations, when the jar has them."""
    header = {"servicetype": "eDoc", "messagetype": "edoc"}
    counted = await province.run("optional", header, "countReceiveEdoc")
    if counted.get("missing"):
        return
    assert _ok(counted)["count"] >= 1
    assert _ok(await province.run("optional", header, "countReceiveStatus"))["count"] >= 0
    qd20 = _ok(await ministry.run("optional", {}, "getAgenciesListQD20"))
    assert PROVINCE in qd20["codes"]
    folder = tmp / "download"
    header = {"docId": doc_id, "filePath": str(folder)}
    got = await province.run("optional", header, "downloadEdoc")
    assert got["status"] == "SUCCESS", got  # the SDK's own word for a saved body
    assert Path(got["filePath"]).read_bytes() == package


async def test_the_sdk_runs_the_full_cycle(driver, exchange, registered, tmp_path):
    ministry = await start_dms(driver, exchange, MINISTRY, tmp_path / "m")
    province = await start_dms(driver, exchange, PROVINCE, tmp_path / "p")
    intruder = await start_dms(driver, exchange, PROVINCE, tmp_path / "x", secret="wrong")
    try:
        agencies = _ok(await ministry.run("agencies"))
        assert {MINISTRY, PROVINCE} <= set(agencies["codes"])
        _ok(await ministry.run("sync"))

        package = build_document(
            sender=MINISTRY,
            recipients=[PROVINCE],
            code_number=str(next(_NUMBERS)),  # one new document per jar
            code_notation="BTC-NSNN",
            subject="Về việc giao dự toán ngân sách năm 2027",
            attachments=[("qd.pdf", "application/pdf", b"%PDF-1.4 du toan")],
        )
        path = tmp_path / "outgoing.edxml"
        path.write_bytes(package)
        header = {"from": MINISTRY, "servicetype": "eDoc", "messagetype": "edoc"}
        sent = _ok(await ministry.run("send", header, str(path)))
        doc_id = sent["docId"]

        item = await listed(province, doc_id, "edoc")
        assert (item["from"], item["to"]) == (MINISTRY, PROVINCE)
        await optional_operations(province, ministry, doc_id, package, tmp_path)
        got = _ok(await province.run("get", {"filePath": str(tmp_path / "in"), "docId": doc_id}))
        assert Path(got["filePath"]).read_bytes() == package
        _ok(await province.run("update", {"status": "done", "docid": doc_id}))
        again = await province.run("received", {"servicetype": "eDoc", "messagetype": "edoc"})
        assert doc_id not in [i["id"] for i in _ok(again)["items"]]

        document_id = re.search(r"DocumentId>([^<]+)<", package.decode())[1]
        status = build_status(
            sender=PROVINCE,
            response_for_organ_id=MINISTRY,
            response_for_document_id=document_id,
            status_code="03",
            description="Đã tiếp nhận",
        )
        path.write_bytes(status)
        header = {"from": PROVINCE, "servicetype": "eDoc", "messagetype": "status"}
        back = _ok(await province.run("send", header, str(path)))
        await listed(ministry, back["docId"], "status")
        got = _ok(
            await ministry.run("get", {"filePath": str(tmp_path / "st"), "docId": back["docId"]})
        )
        assert Path(got["filePath"]).read_bytes() == status
        _ok(await ministry.run("update", {"status": "done", "docid": back["docId"]}))

        sent_list = _ok(await ministry.run("sent"))["items"]
        assert {"senderDocId": doc_id, "toCode": PROVINCE, "receiveStatus": "done"} in sent_list

        # refusals reach the DMS as FAIL with the code, never as a result full of nulls
        path.write_bytes(b"<edXML")
        bad = await ministry.run("send", {"from": MINISTRY, "messagetype": "edoc"}, str(path))
        assert (bad["null"], bad["status"], bad["errorCode"]) == (False, "FAIL", "301"), bad
        missing = await ministry.run("get", {"filePath": str(tmp_path), "docId": "nothing"})
        assert (missing["status"], missing["errorCode"]) == ("FAIL", "601"), missing
        refused = await intruder.run("agencies")
        assert (refused["null"], refused["status"], refused["errorCode"]) == (False, "FAIL", "111")
        deleted = await ministry.run("delete", {"AgencyCode": MINISTRY})
        assert (deleted["status"], deleted["errorCode"]) == ("FAIL", "610"), deleted
        body = json.dumps({"id": "1", "name": "Bộ Tài chính", "pcode": MINISTRY, "code": MINISTRY})
        _ok(await ministry.run("register", {}, body))
    finally:
        for dms in (ministry, province, intruder):
            await dms.close()
