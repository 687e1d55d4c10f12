"""``lienthong demo --federated``: three hubs (national, provinces H49 and H41) on this machine.

Each hub has its own database schema, its own RabbitMQ virtual host and its own development hub
certificate; the national hub holds the directory and is linked to both provinces by RabbitMQ
federation. A commune in H49 sends a document to a district in H41 (two hops: H49 → national →
H41) and to a ministry served by the national hub; each recipient fetches it, checks its digest,
acknowledges it and answers with statuses 01 and 03, which travel back. The demo prints the hops,
what the sender's trail learnt from the other hubs, and the heads the hubs witnessed of each
other. Everything it made (schemas, virtual hosts) is removed at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import tempfile
import time
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table

from adapters.client import HubClient
from exchange.auth import issue_credentials
from exchange.config import Settings
from exchange.federation.sandbox import HubSpec, RunningHub, federated_hubs
from exchange.registry import Agency
from schemas import build_document, build_status

__all__ = ["FEDERATED_HUBS", "run_federated_demo"]

MINISTRY = Agency("000.00.00.G22", "Văn phòng Chính phủ", None, "central")
COMMUNE = Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune")
DISTRICT = Agency("000.00.10.H41", "UBND thành phố Nha Trang", "000.00.00.H41", "district")
FEDERATED_HUBS = [
    HubSpec("national", ("#",), (MINISTRY,)),
    HubSpec(
        "H49",
        ("H49.#",),
        (
            Agency("000.00.00.H49", "UBND tỉnh Quảng Ninh", None, "province"),
            Agency("000.00.10.H49", "UBND thành phố Hạ Long", "000.00.00.H49", "district"),
            COMMUNE,
        ),
    ),
    HubSpec(
        "H41",
        ("H41.#",),
        (Agency("000.00.00.H41", "UBND tỉnh Khánh Hòa", None, "province"), DISTRICT),
    ),
]
LINKS = [("national", "H49"), ("national", "H41")]


async def _wait(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def run_federated_demo(settings: Settings, *, keep_serving: bool = False) -> int:
    """Run the three-hub exchange; returns a process exit code (0 when every step checked out)."""
    console = Console()
    tag = f"lt-demo-{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="lienthong-federated-") as tmp:
        folder = Path(tmp)
        console.print("[bold]Starting three federated hubs[/] (national, H49, H41)…")
        async with federated_hubs(settings, tag, FEDERATED_HUBS, LINKS, folder) as hubs:
            hubs_table = Table("hub", "API (mutual TLS)", "virtual host", "schema", "takes keys")
            for running in hubs.values():
                hubs_table.add_row(
                    running.spec.hub_id,
                    running.url,
                    running.settings.amqp_url.rsplit("/", 1)[1],
                    running.settings.database_schema,
                    ", ".join(running.spec.bindings),
                )
            console.print(hubs_table)
            context = ssl.create_default_context(cafile=str(folder / "pki" / "hub-ca.pem"))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
                ok = await _exchange(console, hubs, s)
            ok &= await _witnesses(console, hubs)
            verdict = "[green]every step checked out[/]" if ok else "[red]something went wrong[/]"
            console.print(f"Federated demo finished: {verdict}.")
            if keep_serving:
                console.print("The hubs keep serving; Ctrl-C to stop (their data is removed).")
                await asyncio.Event().wait()
    return 0 if ok else 1


async def _client(running: RunningHub, agency: Agency, session) -> HubClient:
    creds = await issue_credentials(running.hub.credentials, agency.code)
    return HubClient(running.url, creds.client_id, creds.client_secret, session=session)


async def _exchange(console: Console, hubs: dict[str, RunningHub], session) -> bool:
    commune = await _client(hubs["H49"], COMMUNE, session)
    recipients = {
        DISTRICT.code: (hubs["H41"], await _client(hubs["H41"], DISTRICT, session)),
        MINISTRY.code: (hubs["national"], await _client(hubs["national"], MINISTRY, session)),
    }
    package = build_document(
        sender=COMMUNE.code,
        recipients=list(recipients),
        code_number=str(int(time.time())),
        code_notation="UBND-VP",
        subject="V/v báo cáo liên thông văn bản giữa các tỉnh",
        attachments=[("bao-cao.txt", "text/plain", "Báo cáo liên thông.\n".encode())],
    )
    started = time.perf_counter()
    sent = await commune.submit(package)
    console.print(
        f"\n[bold]{COMMUNE.name}[/] (hub H49) sent [cyan]{sent['document_id']}[/] to "
        f"{DISTRICT.name} (hub H41) and {MINISTRY.name} (national hub)"
    )
    table = Table("recipient", "its hub", "in the inbox after", "bytes identical", "hops")
    ok = True
    for code, (running, client) in recipients.items():
        items = await _wait(lambda c=client: _items(c))
        if not items:
            table.add_row(code, running.spec.hub_id, "[red]never[/]", "-", "-")
            ok = False
            continue
        arrived = time.perf_counter() - started
        item = items[0]
        data = await client.fetch(item["id"])
        identical = hashlib.sha256(data).hexdigest() == sent["digest"]
        ok &= identical
        await client.ack(item["id"])
        trail = await client.trail(item["id"])
        hops = next(e["detail"]["hops"] for e in trail["events"] if e["event"] == "arrived")
        path = " → ".join([*(h["hub"] for h in hops), running.spec.hub_id])
        for status, text in (("01", "Đã đến"), ("03", "Tiếp nhận, vào sổ")):
            await client.submit(
                build_status(
                    sender=code,
                    response_for_organ_id=COMMUNE.code,
                    response_for_document_id=sent["document_id"],
                    status_code=status,
                    description=text,
                )
            )
        table.add_row(
            code,
            running.spec.hub_id,
            f"{arrived * 1000:.0f} ms",
            "yes" if identical else "NO",
            path,
        )
    console.print(table)

    statuses = await _wait(lambda: _items(commune, 4))
    back = Table("from", "status", title=f"Statuses back at {COMMUNE.name} (hub H49)")
    for item in statuses or []:
        back.add_row(item["sender"], item["status_code"])
        await commune.ack(item["id"])
    console.print(back)
    ok &= len(statuses or []) == 4

    async def learnt():
        trail = await commune.trail(sent["id"])
        remote = [e for e in trail["events"] if e["event"] == "remote"]
        kinds = {(e["detail"]["hub"], e["detail"]["kind"]) for e in remote}
        want = {("H41", "acknowledged"), ("national", "acknowledged"), ("H41", "accepted")}
        return remote if want <= kinds else None

    remote = await _wait(learnt) or []
    ok &= bool(remote)
    seen = Table("at (there)", "hub", "what", "agency", "via", title="What the sender's hub learnt")
    for e in remote:
        d = e["detail"]
        what = d["kind"] + (" (signed receipt)" if d.get("receipt") else "")
        seen.add_row(
            str(d.get("at", ""))[11:23], d["hub"], what, e["organ_id"] or "", d["from_hub"]
        )
    console.print(seen)
    for client in (commune, *(c for _, c in recipients.values())):
        await client.close()
    return ok


async def _items(client: HubClient, want: int = 1) -> list | None:
    items = (await client.inbox())["items"]
    return items if len(items) >= want else None


async def _witnesses(console: Console, hubs: dict[str, RunningHub]) -> bool:
    for running in hubs.values():
        await running.hub.ledger.sign_head()
    table = Table("witness", "peer", "tree size", "root hash", "outcome", title="Witnessed heads")
    ok = True
    for running in hubs.values():
        outcome = await running.hub.federation.witness.witness_all()
        for peer, result in outcome.items():
            ok &= result.startswith("witnessed")
            rows = await running.hub.federation.store.witnesses(peer, 1)
            size, root = (
                (rows[0]["tree_size"], rows[0]["root_hash"].hex()[:16] + "…")
                if rows
                else ("-", "-")
            )
            table.add_row(running.spec.hub_id, peer, str(size), root, result)
    console.print(table)
    return ok
