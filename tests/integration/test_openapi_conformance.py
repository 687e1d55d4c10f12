"""The served OpenAPI document is what the hub does: statuses, bounds, headers, codes. Checked by
hand where it was found wrong, then by schemathesis against a real hub."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from exchange.http.errors import ERROR_CODES
from tests.support.http import assert_error

AGENCY = "000.00.00.G13"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,unsupported_method,"
    "allow_header_conformance"
)


RECIPIENT = "000.00.00.H43"


@pytest.fixture(scope="module")
async def token(exchange):
    await exchange.register((AGENCY, "Bộ Công Thương"), (RECIPIENT, "UBND tỉnh D"))
    return await exchange.token(AGENCY)


async def a_package(exchange, token) -> str:
    """One real package, so the routes under /v1/packages/{id} answer with real data."""
    from schemas import build_document

    body = build_document(
        sender=AGENCY,
        recipients=[RECIPIENT],
        code_number="41",
        code_notation="BCT",
        subject="Thử",
        attachments=[("a.pdf", "application/pdf", b"%PDF-1.4")],
    )
    async with exchange.session.post(
        f"{exchange.url}/v1/packages",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
    ) as r:
        assert r.status in (200, 202)
        return (await r.json())["id"]


async def test_405_names_the_allowed_methods(exchange):
    async with exchange.session.patch(f"{exchange.url}/v1/token") as r:
        assert_error(r.status, await r.json(), 405, "http.method_not_allowed")
        assert r.headers["Allow"] == "POST"


async def test_oversized_token_body_is_body_too_large(exchange):
    async with exchange.session.post(
        f"{exchange.url}/v1/token",
        data=b"client_id=" + b"a" * (2 * 1024**2),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as r:
        assert_error(r.status, await r.json(), 413, "body.too_large")


async def test_integer_bounds_are_the_handlers_bounds(exchange, token):
    """Every documented integer parameter: one past each bound is a 400 naming it, the bound
    itself is not."""
    async with exchange.session.get(f"{exchange.url}/v1/openapi.json") as r:
        document = await r.json()
    headers = {"Authorization": f"Bearer {token}"}
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            required = {  # a required text parameter gets any value, an integer its minimum
                p["name"]: p["schema"].get("minimum", "x") for p in params if p.get("required")
            }
            for param in params:
                schema = param["schema"]
                if schema.get("type") != "integer":
                    continue
                assert "minimum" in schema and "maximum" in schema, (path, param["name"])
                for value, refused in (
                    (schema["minimum"] - 1, True),
                    (schema["maximum"] + 1, True),
                    (schema["minimum"], False),
                ):
                    query = {**{k: str(v) for k, v in required.items()}, param["name"]: str(value)}
                    async with exchange.session.request(
                        method.upper(), exchange.url + path, params=query, headers=headers
                    ) as r:
                        body = await r.json()
                    is_refused = r.status == 400 and body["error"].get("field") == param["name"]
                    assert is_refused == refused, (path, param["name"], value, r.status, body)
                checked += 1
    assert checked >= 10


async def test_agencies_documents_its_422(exchange, token):
    async with exchange.session.get(f"{exchange.url}/v1/openapi.json") as r:
        document = await r.json()
    assert "422" in document["paths"]["/v1/agencies"]["get"]["responses"]
    async with exchange.session.get(
        f"{exchange.url}/v1/agencies?under=not-an-organ-id",
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert_error(r.status, await r.json(), 422, "organ_id.invalid")


CLI_ONLY = {"agency.unknown", "certificate.invalid", "certificate.taken"}


def test_every_code_in_the_source_is_listed():
    source = "\n".join(p.read_text() for p in Path("exchange").rglob("*.py"))
    found = set(re.findall(r'(?:HubError|too_many)\(\s*"([a-z_]+\.[a-z_.]+|internal)"', source))
    found |= set(re.findall(r'"(request\.[a-z_]+|http\.[a-z_]+)"', source))
    assert len(found) > 20
    assert found - CLI_ONLY - set(ERROR_CODES) == set()
    assert ERROR_CODES["service.unavailable"][0] == 503
    assert ERROR_CODES["body.too_large"][0] == 413


async def test_schemathesis_finds_nothing(exchange, token, tmp_path):
    """Property-based requests from the served document; every response must be documented,
    match its schema and content type, never be a 5xx; wrong methods get 405 with Allow."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.id" = "{await a_package(exchange, token)}"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{exchange.url}/v1/openapi.json",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        "25",
        "--seed",
        "20261201",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-12000:]


def test_the_document_describes_exactly_the_router():
    """Every route is documented, and nothing is documented that is not served."""
    from exchange.http import lgsp, vdxp
    from exchange.http.openapi import openapi_document
    from exchange.http.v1 import ROUTES

    document = openapi_document(500)
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = (*ROUTES, *vdxp.ROUTES, *lgsp.ROUTES)
    assert documented == {(method, path) for method, path, _ in served}
