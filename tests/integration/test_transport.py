"""Transport security over real TLS: TLS 1.2+ only, client certificates bound to an agency,
security headers on every response, rate-limited head signing, a token for /metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import subprocess
import sys

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exchange.auth import issue_credentials, issue_token
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.cli import env_for
from tests.support.http import assert_error

AGENCY = "000.00.00.G11"
OTHER = "000.00.00.H41"


def _cert(subject: str, key, issuer=None, issuer_key=None, *, ca=False, server=False):
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(folder, name: str, cert, key=None):
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (folder / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return folder / f"{name}.pem"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A throw-away CA, the hub's server certificate and two DMS client certificates."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("lienthong test CA", ca_key, ca=True)
    _write(folder, "ca", ca)
    for name, server in (("server", True), ("dms", False), ("stranger", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder, name, _cert(name, key, ca, ca_key, server=server), key)
    return folder


@pytest.fixture(scope="module")
async def tls_hub(certs, tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("tlshub"),
        tls_cert=str(certs / "server.pem"),
        tls_key=str(certs / "server.key"),
        tls_client_ca=str(certs / "ca.pem"),
        metrics_token="metrics-secret-for-tests",
        head_signs_per_window=2,
    )
    async with running_hub(settings, consume=False) as (hub, url):
        await hub.registry.upsert(
            [Agency(AGENCY, "Bộ", None, "central"), Agency(OTHER, "UBND", None, "province")],
        )
        yield settings, hub, url
    await db.drop_schema(settings)


def client_context(certs, name: str | None = None, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if name:
        context.load_cert_chain(certs / f"{name}.pem", certs / f"{name}.key")
    for attribute, value in versions.items():
        setattr(context, attribute, value)
    return context


async def call(url, context, path="/healthz", method="GET", token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(ssl=context, force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, url + path, headers=headers) as r,
    ):
        return r.status, await r.read(), r.headers


async def token_for(hub, organ_id: str) -> str:
    creds = await issue_credentials(hub.credentials, organ_id)
    return (await issue_token(hub.credentials, creds.client_id, creds.client_secret, 600))[0]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
async def test_https_with_tls_12_and_13_but_not_11(tls_hub, certs):
    _, _, url = tls_hub
    assert url.startswith("https://")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = client_context(certs, minimum_version=version, maximum_version=version)
        status, _, _ = await call(url, context)
        assert status == 200
    old = client_context(certs)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
    old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(aiohttp.ClientConnectorError) as refused:
        await call(url, old)
    assert isinstance(refused.value.os_error, ssl.SSLError | ConnectionResetError)


async def test_registered_client_certificate_is_the_agency(tls_hub, certs):
    settings, hub, url = tls_hub
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "exchange.cli",
            "agency",
            "client-cert",
            AGENCY,
            "--cert",
            str(certs / "dms.pem"),
        ],
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sha256" in proc.stdout
    dms = client_context(certs, "dms")
    status, body, _ = await call(url, dms, "/v1/inbox")
    assert status == 200, body
    status, body, _ = await call(url, dms, "/v1/inbox", token=await token_for(hub, AGENCY))
    assert status == 200, body
    # Another agency's token on this agency's connection: refused.
    import json

    status, body, _ = await call(url, dms, "/v1/inbox", token=await token_for(hub, OTHER))
    assert_error(status, json.loads(body), 401, "auth.certificate_mismatch")
    # A certificate from the CA that no agency registered proves nothing by itself.
    stranger = client_context(certs, "stranger")
    status, body, _ = await call(url, stranger, "/v1/inbox")
    assert_error(status, json.loads(body), 401, "auth.missing")
    status, body, _ = await call(url, stranger, "/v1/inbox", token=await token_for(hub, OTHER))
    assert status == 200
    # The agency is now bound to its certificate: its token alone (stolen, say) is refused.
    # (the per-process cache may remember "not bound" for up to 10 seconds)
    plain = client_context(certs)
    token = await token_for(hub, AGENCY)
    for _ in range(150):
        status, body, _ = await call(url, plain, "/v1/inbox", token=token)
        if status == 401:
            break
        await asyncio.sleep(0.1)
    assert_error(status, json.loads(body), 401, "auth.certificate_required")


async def test_every_response_has_the_security_headers(tls_hub, certs):
    _, hub, url = tls_hub
    context = client_context(certs)
    token = await token_for(hub, AGENCY)
    for method, path in (
        ("GET", "/healthz"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/nope"),
        ("PATCH", "/v1/token"),
        ("GET", "/v1/inbox"),
    ):
        status, _, headers = await call(url, context, path, method, token=token)
        assert headers["X-Content-Type-Options"] == "nosniff", (path, status)
        assert headers["Server"] == "lienthong", (path, status)


async def test_signing_heads_on_demand_is_rate_limited(tls_hub, certs):
    import json

    _, hub, url = tls_hub
    context = client_context(certs)
    token = await token_for(hub, OTHER)
    for _ in range(2):
        status, body, _ = await call(url, context, "/v1/ledger/heads", "POST", token)
        assert status in (200, 404), body
    status, body, headers = await call(url, context, "/v1/ledger/heads", "POST", token)
    assert_error(status, json.loads(body), 429, "request.rate_limited")
    assert int(headers["Retry-After"]) >= 1
    # Per caller: another agency still may (AGENCY on its bound certificate).
    other = await token_for(hub, AGENCY)
    dms = client_context(certs, "dms")
    status, _, _ = await call(url, dms, "/v1/ledger/heads", "POST", other)
    assert status in (200, 404)


async def test_metrics_need_their_token_when_one_is_set(tls_hub, certs):
    import json

    _, _, url = tls_hub
    context = client_context(certs)
    status, body, _ = await call(url, context, "/metrics")
    assert_error(status, json.loads(body), 401, "auth.missing")
    status, body, _ = await call(url, context, "/metrics", token="wrong")
    assert_error(status, json.loads(body), 401, "auth.invalid_token")
    status, body, _ = await call(url, context, "/metrics", token="metrics-secret-for-tests")
    assert status == 200 and b"lienthong_requests_refused_total" in body
