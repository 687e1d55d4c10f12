"""Shared fixtures. Tests talk to the real PostgreSQL and RabbitMQ (never mocks): each module
gets its own database schema and broker prefix, removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.broker import Broker
from exchange.config import Settings, load_settings
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db

# Public field samples of edXML packages (see tests/fixtures/edxml-field/SOURCE.md).
FIXTURES = Path(__file__).parent / "fixtures" / "edxml-field"


def pytest_configure(config: pytest.Config) -> None:
    """Validate as the hub's workers and ``lienthong verify`` do: with the fast hex reader
    installed (from the start, so the whole run sees the same code whatever the test order)."""
    from signing import install_fast_paths

    install_fast_paths()


_KINDS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so ``pytest -m unit`` runs what needs no service."""
    root = Path(__file__).parent
    for item in items:
        kind = item.path.relative_to(root).parts[0]
        if kind not in _KINDS:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in tests/unit, tests/integration or tests/e2e"
            )
        item.add_marker(getattr(pytest.mark, kind))


def sample(name: str) -> bytes:
    """The bytes of a field sample from ``shared/fixtures/edxml-field``."""
    return (FIXTURES / name).read_bytes()


_PREFIXES: set[str] = set()  # broker prefixes this session made, removed at its end


def make_settings(tmp_path: Path, **changes: object) -> Settings:
    """Settings isolated by a unique schema, broker prefix and blob folder."""
    tag = secrets.token_hex(4)
    _PREFIXES.add(f"lttest.{tag}.")
    base = load_settings()
    return base.replace(
        database_url=os.environ.get(
            "LIENTHONG_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/lienthong_test"
        ),
        database_schema=f"t_{tag}",
        broker_prefix=f"lttest.{tag}",
        blob_dir=str(tmp_path / "blobs"),
        host="127.0.0.1",
        port=0,
        **changes,
    )


class Exchange:
    """A running hub with helpers to register agencies and open their clients."""

    def __init__(self, hub, url: str, session: aiohttp.ClientSession) -> None:
        self.hub = hub
        self.url = url
        self.session = session
        self.codes: list[str] = []

    async def register(self, *agencies: tuple[str, str]) -> None:
        """Register (code, name) pairs; parent and level come from the code."""
        from schemas import OrganId

        records = []
        for code, name in agencies:
            oid = OrganId.parse(code)
            parent = oid.parent
            records.append(
                Agency(str(oid), name, str(parent) if parent else None, oid.gov_level.value)
            )
        await self.hub.registry.upsert(records)
        for record in records:
            self.codes.append(record.code)
            await self.hub.broker.ensure_agency(record.code)

    async def client(self, organ_id: str) -> HubClient:
        creds = await issue_credentials(self.hub.credentials, organ_id)
        return HubClient(self.url, creds.client_id, creds.client_secret, session=self.session)

    async def token(self, organ_id: str) -> str:
        return await (await self.client(organ_id)).token()


@pytest.fixture(scope="module")
async def exchange(tmp_path_factory):
    """A hub on a random port with its own schema and broker names; cleaned up afterwards."""
    settings = make_settings(tmp_path_factory.mktemp("hub"))
    codes: list[str] = []
    try:
        async with aiohttp.ClientSession() as session, running_hub(settings) as (hub, url):
            ex = Exchange(hub, url, session)
            ex.codes = codes
            yield ex
    finally:
        await cleanup_broker(settings, codes)
        await db.drop_schema(settings)


async def cleanup_broker(settings: Settings, codes: list[str]) -> None:
    broker = Broker(settings)
    await broker.connect()
    try:
        await broker.delete_topology(codes)
    finally:
        await broker.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The test PKI (CAs, clerks, agencies, TSA, OCSP, CRL) served on 127.0.0.1."""
    from tests.support.pki import running_pki

    with running_pki(tmp_path_factory.mktemp("pki")) as served:
        yield served


@pytest.fixture(scope="session")
def hsm_token(pki, tmp_path_factory):
    """A SoftHSM2 token with the clerk's, the seal's and the hub's keys and certificates."""
    from tests.support.hsm import make_token

    names = ("clerk", "seal", "hub", "revoked")
    return make_token(tmp_path_factory.mktemp("hsm"), [pki.identity(n) for n in names])


@pytest.fixture(scope="module")
def trust(pki):
    """Trust in the test PKI: its root as anchor, its issuing CA as intermediate."""
    from signing import TrustSettings

    return TrustSettings(anchors=[pki.root_pem], intermediates=[pki.issuing_pem])


@pytest.fixture(scope="module")
def stamper(pki):
    """A pyHanko time-stamper on the test PKI's TSA."""
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(pki.tsa_url)


@pytest.fixture(scope="session", autouse=True)
def _remove_broker_leftovers():
    """At the end of the session, delete every queue and exchange of this session's prefixes
    (tests that stop a hub leave its queues): the shared broker does not fill up."""
    yield
    asyncio.run(_delete_prefixed(tuple(_PREFIXES)))


async def _delete_prefixed(prefixes: tuple[str, ...]) -> None:
    if not prefixes:
        return
    listed = {}
    for kind in ("queues", "exchanges"):
        proc = subprocess.run(
            ["rabbitmqctl", "-q", f"list_{kind}", "name"], capture_output=True, text=True
        )
        listed[kind] = [n for n in proc.stdout.split() if n.startswith(prefixes)]
    connection = await aio_pika.connect(load_settings().amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in listed["queues"]:
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
        for name in listed["exchanges"]:
            with contextlib.suppress(Exception):
                await channel.exchange_delete(name)
