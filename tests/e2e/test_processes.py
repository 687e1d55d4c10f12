"""`lienthong serve` as the operating system sees it: its processes die with it, SIGTERM ends
it within a bounded time, Ctrl-C is quiet, and a killed upload leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.cli import env_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marked(mark: str) -> list[int]:
    """Every process whose environment carries ``mark`` (the hub and all it started)."""
    found = []
    needle = f"LIENTHONG_TEST_MARK={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


class Served:
    """A `lienthong serve` process group started as an operator would."""

    def __init__(self, settings, processes: int, **env: str) -> None:
        self.mark = uuid.uuid4().hex
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = (
            env_for(settings)
            | env
            | {
                "LIENTHONG_TEST_MARK": self.mark,
                "LIENTHONG_CPU_WORKERS": "2",
            }
        )
        command = [sys.executable, "-m", "exchange.cli", "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, "--processes", str(processes)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as in a terminal
        )
        self.processes = processes
        self.err_lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.err_lines.append(line)

    @property
    def err(self) -> str:
        """Everything written to stderr (waits for the end when the process has exited)."""
        if self.proc.poll() is not None:
            self._reader.join(10)
        return "".join(self.err_lines)

    def log_messages(self) -> list[str]:
        return [json.loads(line)["msg"] for line in self.err_lines if line.startswith("{")]

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(self.err)
                every_process = self.log_messages().count("broker ready") >= self.processes
                try:
                    async with session.get(f"{self.url}/readyz") as r:
                        if r.status == 200 and every_process:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("the hub never became ready")

    def gone_within(self, seconds: float) -> list[int]:
        """Processes of ours still alive after ``seconds`` (empty when all are gone)."""
        deadline = time.monotonic() + seconds
        while (left := marked(self.mark)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def finish(self) -> None:
        for pid in marked(self.mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
async def settings(tmp_path):
    s = make_settings(tmp_path)
    yield s
    await db.drop_schema(s)


async def test_sigkill_leaves_no_process_behind(settings):
    served = Served(settings, processes=2)
    try:
        await served.wait_ready()
        # Two hubs, each with its pool's forkserver and two workers (and resource trackers).
        assert len(marked(served.mark)) >= 6, marked(served.mark)
        os.kill(served.proc.pid, signal.SIGKILL)
        assert served.gone_within(10) == []
    finally:
        served.finish()


async def test_sigterm_stops_within_bounds_every_time(settings):
    for _ in range(3):
        served = Served(settings, processes=2)
        try:
            await served.wait_ready()
            started = time.monotonic()
            served.proc.send_signal(signal.SIGTERM)
            served.proc.wait(timeout=settings.shutdown_timeout_seconds + 15)
            took = time.monotonic() - started
            assert served.proc.returncode == 0, served.err
            assert took < settings.shutdown_timeout_seconds + 5, took
            assert served.err  # all of it read
            messages = served.log_messages()
            assert messages.count("stopping") == 2 and messages.count("stopped") == 2, messages
            assert served.gone_within(10) == []
        finally:
            served.finish()


async def test_ctrl_c_is_quiet(settings):
    served = Served(settings, processes=2)
    try:
        await served.wait_ready()
        os.killpg(served.proc.pid, signal.SIGINT)  # what a terminal sends the whole group
        served.proc.wait(timeout=settings.shutdown_timeout_seconds + 15)
        err = served.err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert served.proc.returncode in (0, 130)
        assert served.gone_within(10) == []
    finally:
        served.finish()


async def test_a_killed_upload_leaves_no_temporary_file(settings):
    tmp = Path(settings.blob_dir) / "tmp"
    served = Served(settings, processes=1)
    try:
        await served.wait_ready()
        # A real upload, cut short by the hub's death: headers and half of the body.
        from exchange.auth import issue_credentials, issue_token
        from exchange.registry import Agency
        from exchange.store import PostgresCredentials, PostgresRegistry

        pool = await db.connect(settings, min_size=1, max_size=1)
        try:
            await PostgresRegistry(pool).upsert([Agency("000.00.00.G01", "Bộ", None, "central")])
            creds = await issue_credentials(PostgresCredentials(pool), "000.00.00.G01")
            token, _ = await issue_token(
                PostgresCredentials(pool), creds.client_id, creds.client_secret, 600
            )
        finally:
            await pool.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(
            (
                "POST /v1/packages HTTP/1.1\r\nHost: hub\r\nContent-Type: application/xml\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\n"
            ).encode()
            + b"<" * 300_000
        )
        await writer.drain()
        deadline = time.monotonic() + 10
        while not list(tmp.glob("in-*")) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert list(tmp.glob("in-*")), "the upload never reached a temporary file"
        os.kill(served.proc.pid, signal.SIGKILL)
        assert served.gone_within(10) == []
        writer.close()
        assert list(tmp.glob("in-*"))  # left behind by the killed process
    finally:
        served.finish()
    again = Served(settings, processes=1)
    try:
        await again.wait_ready()
        assert list(tmp.glob("in-*")) == []
    finally:
        again.finish()


async def test_metrics_sum_every_process(settings):
    """Whichever process answers the scrape, the counters are those of all of them."""
    served = Served(settings, processes=2)
    try:
        await served.wait_ready()
        async with aiohttp.ClientSession() as session:
            for _ in range(20):  # new connections: the kernel spreads them over both
                async with session.get(
                    f"{served.url}/v1/inbox", headers={"Connection": "close"}
                ) as r:
                    assert r.status == 401
            totals = set()
            for _ in range(10):
                async with session.get(
                    f"{served.url}/metrics", headers={"Connection": "close"}
                ) as r:
                    text = await r.text()
                line = next(
                    x
                    for x in text.splitlines()
                    if x.startswith('lienthong_requests_refused_total{code="auth.missing"}')
                )
                totals.add(float(line.split()[-1]))
        assert totals == {20.0}, totals
    finally:
        served.finish()
