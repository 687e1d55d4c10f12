"""Slow clients over real sockets: a head trickling in one byte at a time, a body that stalls or
crawls. Each is cut off within its limit with a JSON 408, and no temporary file is left."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from exchange.auth import issue_credentials, issue_token
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db
from tests.conftest import make_settings

SENDER = "000.00.00.G07"
HEADER_TIMEOUT = 1.0
BODY_IDLE = 1.0
BODY_TOTAL = 2.5
KEEPALIVE = 3.0


@pytest.fixture(scope="module")
async def slow_hub(tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("slow"),
        header_timeout_seconds=HEADER_TIMEOUT,
        body_idle_timeout_seconds=BODY_IDLE,
        body_timeout_seconds=BODY_TOTAL,
        keepalive_timeout_seconds=KEEPALIVE,
        body_min_rate_bytes_per_second=0,  # the deadlines alone, here
    )
    async with running_hub(settings, consume=False) as (hub, url):
        await hub.registry.upsert([Agency(SENDER, "Bộ", None, "central")])
        creds = await issue_credentials(hub.credentials, SENDER)
        token, _ = await issue_token(hub.credentials, creds.client_id, creds.client_secret, 600)
        yield hub, url, token
    await db.drop_schema(settings)


async def connect(url: str):
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """Send one byte every ``every`` seconds until the server closes the connection."""
    for byte in data:
        if writer.is_closing():
            return
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every)


async def answer_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), seconds)
    return data, time.monotonic() - start


def refusal(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    return status, json.loads(body[:length])


async def test_head_sent_one_byte_at_a_time_is_cut_off(slow_hub):
    _, url, _ = slow_hub
    reader, writer = await connect(url)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"z" * 100 + b"\r\n\r\n"
    sender = asyncio.create_task(trickle(writer, head, 0.05))
    answer, took = await answer_within(reader, HEADER_TIMEOUT + 3)
    sender.cancel()
    writer.close()
    status, body = refusal(answer)
    assert (status, body["error"]["code"]) == (408, "request.timeout")
    assert HEADER_TIMEOUT * 0.9 <= took <= HEADER_TIMEOUT + 1.5


async def test_deadline_counts_from_each_request_on_a_kept_alive_connection(slow_hub):
    """A fast first request, then a slow head: the second is cut off by its own deadline."""
    _, url, _ = slow_hub
    reader, writer = await connect(url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b'"alive"}'), 5)
    assert first.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(HEADER_TIMEOUT * 1.2)  # idle, but within keep-alive: no head yet
    sender = asyncio.create_task(trickle(writer, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", 0.2))
    answer, took = await answer_within(reader, HEADER_TIMEOUT + 3)
    sender.cancel()
    writer.close()
    assert refusal(answer)[0] == 408
    assert took <= HEADER_TIMEOUT + 1.5


async def test_idle_keep_alive_connection_is_closed(slow_hub):
    _, url, _ = slow_hub
    reader, writer = await connect(url)
    answer, took = await answer_within(reader, KEEPALIVE + 3)
    writer.close()
    assert answer == b"" and KEEPALIVE * 0.9 <= took <= KEEPALIVE + 1.5


def package_head(token: str, length: int) -> bytes:
    return (
        f"POST /v1/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/xml\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def test_stalled_body_is_408_and_its_temporary_file_goes(slow_hub):
    hub, url, token = slow_hub
    reader, writer = await connect(url)
    writer.write(package_head(token, 100_000) + b"<edXML>" + b" " * 1000)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"}}"), BODY_IDLE + 3)
    assert list(hub.blobs.tmp_dir.iterdir()) == []
    status, body = refusal(answer)
    assert (status, body["error"]["code"]) == (408, "request.timeout")
    rest, _ = await answer_within(reader, 12)  # then the connection closes
    writer.close()
    assert rest == b""


async def test_body_crawling_one_byte_at_a_time_hits_the_deadline(slow_hub):
    hub, url, token = slow_hub
    reader, writer = await connect(url)
    writer.write(package_head(token, 10_000))
    await writer.drain()
    start = time.monotonic()
    sender = asyncio.create_task(trickle(writer, b"<edXML>" + b" " * 9_993, BODY_IDLE / 4))
    answer = await asyncio.wait_for(reader.readuntil(b"}}"), BODY_TOTAL + 3)
    took = time.monotonic() - start
    assert list(hub.blobs.tmp_dir.iterdir()) == []
    sender.cancel()
    writer.close()
    assert refusal(answer)[0] == 408
    assert BODY_TOTAL * 0.9 <= took <= BODY_TOTAL + 1.5


async def test_a_body_slower_than_the_minimum_rate_is_cut_off_early(tmp_path):
    """One byte every half second is refused once the grace (body_idle) is over, long before
    the whole-body deadline."""
    settings = make_settings(
        tmp_path,
        body_idle_timeout_seconds=BODY_IDLE,
        body_timeout_seconds=60,
        body_min_rate_bytes_per_second=100,
    )
    async with running_hub(settings, consume=False) as (hub, url):
        await hub.registry.upsert([Agency(SENDER, "Bộ", None, "central")])
        creds = await issue_credentials(hub.credentials, SENDER)
        token, _ = await issue_token(hub.credentials, creds.client_id, creds.client_secret, 600)
        reader, writer = await connect(url)
        writer.write(package_head(token, 10_000))
        await writer.drain()
        start = time.monotonic()
        sender = asyncio.create_task(trickle(writer, b"<edXML>" + b" " * 9_993, 0.5))
        answer = await asyncio.wait_for(reader.readuntil(b"}}"), 30)
        took = time.monotonic() - start
        sender.cancel()
        writer.close()
        assert refusal(answer)[0] == 408
        assert BODY_IDLE <= took < 20, took
        assert list(hub.blobs.tmp_dir.iterdir()) == []
    await db.drop_schema(settings)


async def test_slow_token_body_is_408(slow_hub):
    _, url, _ = slow_hub
    reader, writer = await connect(url)
    writer.write(
        b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        b"\r\nContent-Length: 200\r\n\r\nclient_id="
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"}}"), BODY_IDLE + 3)
    writer.close()
    status, body = refusal(answer)
    assert (status, body["error"]["code"]) == (408, "request.timeout")
