"""``lienthong document show`` as an operator runs it: a separate process over the hub's
database, after a recall went through the real API."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.http.serve import running_hub
from exchange.registry import Agency
from exchange.store import database as db
from schemas import build_document
from tests.conftest import cleanup_broker, make_settings
from tests.support.cli import env_for, lienthong

SENDER, FETCHES, NEVER = "000.00.00.G22", "000.00.00.H49", "000.00.10.H49"


@pytest.fixture
async def settings(tmp_path):
    s = make_settings(tmp_path)
    yield s
    await cleanup_broker(s, [SENDER, FETCHES, NEVER])
    await db.drop_schema(s)


async def _recalled_document(settings) -> str:
    """A document to two recipients, fetched by one, then recalled; its DocumentId."""
    async with running_hub(settings) as (hub, url):
        await hub.registry.upsert(
            [
                Agency(SENDER, "Văn phòng Chính phủ", None, "central"),
                Agency(FETCHES, "UBND tỉnh Quảng Ninh", None, "province"),
                Agency(NEVER, "UBND thành phố Hạ Long", FETCHES, "district"),
            ]
        )
        clients = {}
        for code in (SENDER, FETCHES, NEVER):
            await hub.broker.ensure_agency(code)
            creds = await issue_credentials(hub.credentials, code)
            clients[code] = HubClient(url, creds.client_id, creds.client_secret)
        try:
            sent = await clients[SENDER].submit(
                build_document(
                    sender=SENDER,
                    recipients=[FETCHES, NEVER],
                    code_number="77",
                    code_notation="VPCP-TH",
                    subject="V/v thử thu hồi",
                )
            )
            deadline = time.monotonic() + 15
            while not any(i["id"] == sent["id"] for i in (await clients[FETCHES].inbox())["items"]):
                assert time.monotonic() < deadline, "never delivered"
                await asyncio.sleep(0.05)
            await clients[FETCHES].fetch(sent["id"])
            await clients[SENDER].recall(SENDER, sent["document_id"], [FETCHES, NEVER])
        finally:
            for client in clients.values():
                await client.close()
    return sent["document_id"]


async def test_document_show_prints_each_copy_and_its_disposition(settings):
    document_id = await _recalled_document(settings)
    wide = env_for(settings, COLUMNS="200")  # rich fits the table to the terminal
    shown = await asyncio.to_thread(lienthong, settings, "document", "show", document_id, env=wide)
    out = shown.stdout
    assert "revocation" in out and "recall_requested" in out and "recalled" in out
    assert FETCHES in out and NEVER in out
    listed = json.loads(
        (
            await asyncio.to_thread(lienthong, settings, "document", "show", document_id, "--json")
        ).stdout
    )
    first = listed["packages"][0]
    assert {r["organ_id"]: r["disposition"] for r in first["recipients"]} == {
        FETCHES: "recall_requested",
        NEVER: "recalled",
    }
    # A recipient's view holds only its own copy.
    theirs = await asyncio.to_thread(
        lienthong, settings, "document", "show", document_id, "--as", NEVER, "--json"
    )
    assert {r["organ_id"] for r in json.loads(theirs.stdout)["packages"][0]["recipients"]} == {
        NEVER
    }
    missing = await asyncio.to_thread(
        lienthong, settings, "document", "show", f"{SENDER},2020/01/01,1/NONE", check=False
    )
    assert missing.returncode == 1 and "no document" in missing.stdout
    bad = await asyncio.to_thread(
        lienthong, settings, "document", "show", "x", "--as", "not an organ", check=False
    )
    assert bad.returncode == 1 and "not an organ" in bad.stderr and "not valid" in bad.stderr
    assert "Traceback" not in bad.stderr + missing.stderr
