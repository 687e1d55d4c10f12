"""Client input that used to reach PostgreSQL, UTF-8 encoders or zlib as is and came back as a
500: each is now a 400 (or 413, 414, 415, 431) with its own code, over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import aiohttp
import pytest

from exchange.auth import issue_credentials, issue_token
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db
from schemas import build_document
from tests.conftest import make_settings
from tests.support.http import assert_error

SENDER = "000.00.00.G05"
JSON = "application/json"
RECIPIENT = "000.00.00.H35"


@pytest.fixture(scope="module")
async def tokens(exchange):
    await exchange.register((SENDER, "Bộ Y tế"), (RECIPIENT, "UBND tỉnh C"))
    return {"sender": await exchange.token(SENDER)}


def auth(tokens) -> dict:
    return {"Authorization": f"Bearer {tokens['sender']}"}


async def get_json(exchange, path: str, headers=None):
    async with exchange.session.get(exchange.url + path, headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("parent=%00", "parent"),
        ("level=%00", "level"),
        ("parent=%ED%A0%80", "parent"),  # a lone surrogate, as CESU-8
        ("parent=%FF", "parent"),
        ("under=%ED%A0%80", "under"),
        ("parent=" + "A" * 300, "parent"),
        ("level=galaxy", "level"),
    ],
    ids=["nul-parent", "nul-level", "surrogate", "not-utf8", "surrogate-under", "long", "level"],
)
async def test_agency_parameters_are_checked_text(exchange, tokens, query, field):
    status, body = await get_json(exchange, f"/v1/agencies?{query}", auth(tokens))
    error = assert_error(status, body, 400, "request.invalid_parameter")
    assert error["field"] == field


async def test_every_route_checks_its_query(exchange, tokens):
    status, body = await get_json(exchange, "/v1/inbox?limit=5&note=%FF", auth(tokens))
    assert_error(status, body, 400, "request.invalid_parameter")


async def post_token(exchange, body: bytes, ctype: str, **headers):
    async with exchange.session.post(
        f"{exchange.url}/v1/token", data=body, headers={"Content-Type": ctype, **headers}
    ) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("body", "ctype", "field"),
    [
        (b'{"client_id": "a\\u0000", "client_secret": "x"}', "application/json", "client_id"),
        (b'{"client_id": "\\ud800", "client_secret": "x"}', "application/json", "client_id"),
        (b'{"client_id": "lt-1", "client_secret": "\\ud800"}', JSON, "client_secret"),
        (b'{"client_id": "lt-1", "client_secret": "x\\u0000"}', JSON, "client_secret"),
        (b"client_id=a%00&client_secret=b", "application/x-www-form-urlencoded", "client_id"),
        (b"client_id=%ED%A0%80&client_secret=b", "application/x-www-form-urlencoded", "body"),
        (
            b"client_id=" + b"a" * 2000 + b"&client_secret=b",
            "application/x-www-form-urlencoded",
            "client_id",
        ),
    ],
    ids=[
        "json-nul",
        "json-surrogate",
        "secret-surrogate",
        "secret-nul",
        "form-nul",
        "form-surrogate",
        "form-long",
    ],
)
async def test_token_fields_are_checked_text(exchange, tokens, body, ctype, field):
    status, got = await post_token(exchange, body, ctype)
    error = assert_error(status, got, 400, "request.invalid_parameter")
    assert error["field"] == field


async def test_token_odd_bodies_are_refused_not_500(exchange, tokens):
    status, got = await post_token(exchange, b"x", "multipart/form-data; boundary=zz")
    assert_error(status, got, 415, "request.unsupported_media_type")
    status, got = await post_token(exchange, b"\xff\xfe", "application/json")
    assert_error(status, got, 400, "request.invalid_json")


async def test_non_utf8_bearer_token_is_401(exchange, tokens):
    reader, writer = await asyncio.open_connection(*exchange.url[7:].split(":"))
    writer.write(b"GET /v1/inbox HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"auth.invalid_token"' in answer


def doc(number: str) -> bytes:
    return build_document(
        sender=SENDER,
        recipients=[RECIPIENT],
        code_number=number,
        code_notation="BYT",
        subject="Nén",
        attachments=[("a.pdf", "application/pdf", b"%PDF-1.4")],
    )


async def post_package(exchange, tokens, body: bytes, encoding: str):
    headers = {**auth(tokens), "Content-Type": "application/xml", "Content-Encoding": encoding}
    async with exchange.session.post(
        f"{exchange.url}/v1/packages", data=body, headers=headers
    ) as r:
        return r.status, await r.json()


def deflated(data: bytes, raw: bool = False) -> bytes:
    z = zlib.compressobj(wbits=-15 if raw else 15)
    return z.compress(data) + z.flush()


CORRUPT = [
    ("gzip", b"certainly not gzip"),
    ("deflate", b"certainly not deflate"),
    ("gzip", gzip.compress(b"client_id=a&client_secret=b")[:-12]),  # truncated
    ("gzip", gzip.compress(b"client_id=a&client_secret=b") + b"trailing"),
]


@pytest.mark.parametrize(("encoding", "body"), CORRUPT, ids=["gzip", "deflate", "cut", "tail"])
async def test_bodies_that_do_not_decode(exchange, tokens, encoding, body):
    status, got = await post_token(
        exchange, body, "application/x-www-form-urlencoded", **{"Content-Encoding": encoding}
    )
    assert_error(status, got, 400, "body.bad_encoding")
    status, got = await post_package(exchange, tokens, body, encoding)
    assert_error(status, got, 400, "body.bad_encoding")
    assert list((exchange.hub.blobs.tmp_dir).iterdir()) == []


@pytest.mark.parametrize("encoding", ["br", "compress", "gzip, gzip", "x-unknown"])
async def test_unknown_content_encodings_are_415(exchange, tokens, encoding):
    status, got = await post_package(exchange, tokens, doc("31"), encoding)
    assert_error(status, got, 415, "request.unsupported_encoding")


async def test_compressed_packages_are_stored_decoded(exchange, tokens):
    import hashlib

    for number, encoding, pack in (
        ("32", "gzip", gzip.compress),
        ("33", "deflate", deflated),
        ("34", "deflate", lambda d: deflated(d, raw=True)),
    ):
        plain = doc(number)
        status, got = await post_package(exchange, tokens, pack(plain), encoding)
        assert status == 202, got
        assert got["digest"] == hashlib.sha256(plain).hexdigest()


async def test_gzip_bomb_stops_at_the_decoded_limit(tmp_path):
    settings = make_settings(tmp_path, max_body_bytes=64 * 1024)
    async with (
        aiohttp.ClientSession() as session,
        running_hub(settings, consume=False) as (hub, url),
    ):
        await hub.registry.upsert([Agency(SENDER, "Bộ", None, "central")])
        creds = await issue_credentials(hub.credentials, SENDER)
        token, _ = await issue_token(hub.credentials, creds.client_id, creds.client_secret, 60)
        bomb = gzip.compress(b"<edXML>" + b" " * (64 * 1024**2))  # 64 MiB in ~64 KiB
        assert len(bomb) < 100 * 1024
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/xml",
            "Content-Encoding": "gzip",
        }
        async with session.post(f"{url}/v1/packages", data=bomb, headers=headers) as r:
            assert_error(r.status, await r.json(), 413, "body.too_large")
        assert list(hub.blobs.tmp_dir.iterdir()) == []
    await db.drop_schema(settings)


async def raw_exchange(url: str, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*url[7:].split(":"))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def json_refusal(answer: bytes, status: int, code: str) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:300]
    assert b"application/json" in head and b"Server: lienthong\r\n" in head + b"\r\n"
    import json

    from exchange.http.errors import ERROR_CODES

    assert json.loads(body)["error"]["code"] == code and ERROR_CODES[code][0] == status


async def test_over_long_heads_are_json_refusals(exchange):
    answer = await raw_exchange(
        exchange.url, b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    json_refusal(answer, 414, "request.uri_too_long")
    answer = await raw_exchange(
        exchange.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    )
    json_refusal(answer, 431, "request.header_too_large")
    answer = await raw_exchange(
        exchange.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 200 + b"\r\n"
    )
    json_refusal(answer, 431, "request.header_too_large")
    # A normal request on a fresh connection is unaffected.
    answer = await raw_exchange(
        exchange.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
