"""Receivers that misbehave at the HTTP level: redirects, garbage, a connection closed without
an answer, a 2xx whose body never ends, an error body that never ends, absurd Retry-After
values, TLS that does not verify. None may stall the pusher, crash it or be taken for a 2xx."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.test_faults import until
from tests.integration.test_push import hub_with, push_row, pushed_agency, send, state_is
from tests.support.receivers import Receiver


@contextlib.asynccontextmanager
async def raw_server(answer: bytes, *, then_hang: bool = False, close: bool = True):
    """A TCP server that reads the request head and writes ``answer`` (exact bytes); with
    ``then_hang`` a body follows that never ends (chunked if ``answer`` says so)."""
    chunked = b"chunked" in answer
    piece = b"x" * 65536
    if chunked:
        piece = b"10000\r\n" + piece + b"\r\n"
    seen: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(time.monotonic())
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            while then_hang:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
        if close:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", seen
    finally:
        server.close()


@pytest.fixture(scope="module")
async def ex(tmp_path_factory):
    async with hub_with(tmp_path_factory.mktemp("misbehaving")) as exchange:
        yield exchange


async def test_a_redirect_is_not_followed_and_fails_with_its_reason(ex):
    async with Receiver() as target, raw_server(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + target.url.encode()
        + b"\r\nContent-Length: 0\r\n\r\n"
    ) as (url, seen):  # fmt: skip
        code, _ = await pushed_agency(ex, url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "failed"))
        row = await push_row(ex, package_id, code)
        assert "HTTP 307: redirects are not followed" in row["last_error"]
        assert target.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage that is not HTTP\r\n\r\n",
        b"",  # the connection closed without an answer
        b"HTTP/1.1 20",  # a status line cut short
    ],
)
async def test_no_proper_answer_is_retried_never_taken_for_a_2xx(ex, answer):
    async with raw_server(answer) as (url, seen):
        code, _ = await pushed_agency(ex, url)
        package_id, _ = await send(ex, [code])
        await until(lambda: _attempts(ex, package_id, code, 2))
        row = await push_row(ex, package_id, code)
        assert row["state"] in ("waiting_for_retry", "in_progress") and row["last_error"]


async def test_a_2xx_whose_body_never_ends_is_taken_at_once(ex):
    async with raw_server(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", then_hang=True, close=False
    ) as (url, _):
        code, _ = await pushed_agency(ex, url)
        package_id, _ = await send(ex, [code])
        took = await until(lambda: state_is(ex, package_id, code, "acknowledged"))
        assert took < 5


async def test_an_error_body_that_never_ends_does_not_hold_the_attempt(ex):
    async with raw_server(
        b"HTTP/1.1 500 Oops\r\nContent-Length: 999999999\r\n\r\n", then_hang=True, close=False
    ) as (url, _):
        code, _ = await pushed_agency(ex, url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "waiting_for_retry"))
        row = await push_row(ex, package_id, code)
        assert row["last_error"].startswith("HTTP 500: xxxx") and len(row["last_error"]) < 300


@pytest.mark.parametrize(
    "value, least, most",
    [
        ("0", 0.9, 3.0),
        ("-5", 0.3, 3.0),
        ("soon", 0.3, 3.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.9, 3.0),
    ],
)
async def test_odd_retry_after_values_neither_hammer_nor_stall(ex, value, least, most):
    async with Receiver() as receiver:
        receiver.answers = [(429, {"Retry-After": value})]
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "acknowledged"), timeout=10)
        first, second = receiver.requests
        assert least <= second.at - first.at <= most


async def test_a_retry_after_beyond_the_ttl_fails_the_push(ex):
    async with Receiver() as receiver:
        receiver.answers = [(503, {"Retry-After": "999999"})]
        code, _ = await pushed_agency(ex, receiver.url)
        package_id, _ = await send(ex, [code])
        await until(lambda: state_is(ex, package_id, code, "failed"))
        row = await push_row(ex, package_id, code)
        assert "HTTP 503" in row["last_error"] and "gave up" in row["last_error"]


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "receiver.pem", tmp_path / "receiver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


async def test_tls_is_verified_and_an_extra_ca_can_be_trusted(tmp_path):
    from aiohttp import web

    cert_path, context = _self_signed(tmp_path)
    got: list[bytes] = []

    async def take(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}/hook"
    try:
        async with hub_with(tmp_path / "plain") as ex:  # the system's CAs only: refused
            code, _ = await pushed_agency(ex, url)
            package_id, _ = await send(ex, [code])
            await until(lambda: state_is(ex, package_id, code, "waiting_for_retry"))
            row = await push_row(ex, package_id, code)
            assert row["last_error"].startswith("TLS:") and got == []
        async with hub_with(tmp_path / "ca", push_ca_file=str(cert_path)) as ex:
            code, _ = await pushed_agency(ex, url)
            package_id, body = await send(ex, [code])
            await until(lambda: state_is(ex, package_id, code, "acknowledged"))
            assert got == [body]
    finally:
        await runner.cleanup()


async def _attempts(ex, package_id: str, code: str, n: int) -> bool:
    row = await push_row(ex, package_id, code)
    return row is not None and row["attempts"] >= n
