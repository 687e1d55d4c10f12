"""``lienthong demo``: a four-level exchange through the hub's real HTTP API.

A ministry-level office sends a document down to a province, a district-level unit and a commune;
each recipient fetches it, checks its digest, acknowledges it and answers with status packages
01 (arrived) and 03 (accepted), which travel back up to the sender. Then the trail is printed,
and the business flows follow (:mod:`exchange.demo_flows`).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from adapters.client import HubClient
from exchange.audit import verify_bundle
from exchange.auth import issue_credentials
from exchange.config import Settings
from exchange.demo_flows import demo_flows
from exchange.demo_push import PushReceiver
from exchange.demo_reorganisation import show_reorganisation
from exchange.http.console.accounts import add_demo_users
from exchange.http.serve import running_hub
from exchange.registry import Agency
from schemas import build_document, build_status

__all__ = ["DEMO_AGENCIES", "run_demo"]

DEMO_AGENCIES = (
    Agency("000.00.00.G22", "Văn phòng Chính phủ", None, "central"),
    Agency("000.00.00.H49", "UBND tỉnh Quảng Ninh", None, "province"),
    Agency("000.00.10.H49", "UBND thành phố Hạ Long", "000.00.00.H49", "district"),
    Agency("000.05.10.H49", "UBND phường Hồng Gai", "000.00.10.H49", "commune"),
)


async def _wait_inbox(
    client: HubClient, keep: Callable[[dict], bool], want: int, timeout: float = 30.0
) -> list[dict]:
    """The items of the whole inbox that ``keep`` accepts, once there are ``want`` of them (or
    the timeout passed): an inbox holding older items from earlier runs does not mislead."""
    deadline = time.monotonic() + timeout
    while True:
        items = [item async for item in client.inbox_items() if keep(item)]
        if len(items) >= want or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.05)


async def run_demo(
    settings: Settings,
    *,
    keep_serving: bool = False,
    push: bool = False,
    federated: bool = False,
) -> int:
    """Run the demo exchange; returns a process exit code (0 when every step checked out).
    With ``push`` the commune takes its documents by push (exchange/demo_push.py);
    ``federated``: three federated hubs instead (:mod:`exchange.federation.demo`)."""
    if federated:
        from exchange.federation.demo import run_federated_demo

        return await run_federated_demo(settings, keep_serving=keep_serving)
    console = Console()
    ministry, province, district, commune = DEMO_AGENCIES
    async with running_hub(settings) as (hub, url):
        console.print(f"[bold]lienthong hub[/] on {url} (schema {settings.database_schema!r})")
        console.print(
            "Demo settings: ledger heads and receipts are signed with a self-signed development "
            "key under var/; no trust anchors are configured, so package signatures are not "
            "verified (see README: Configuration)."
        )
        await hub.registry.upsert(list(DEMO_AGENCIES))
        registry = Table("level", "organ id", "name", "routing key", title="Registered agencies")
        for agency in DEMO_AGENCIES:
            registry.add_row(agency.level, agency.code, agency.name, agency.routing_key)
        console.print(registry)

        receiver = PushReceiver(commune.code) if push else None
        if receiver is not None:
            await receiver.start(hub)
            console.print(f"{commune.name} takes its documents by push, at {receiver.url}.")
        clients = {}
        for agency in DEMO_AGENCIES:
            creds = await issue_credentials(hub.credentials, agency.code)
            clients[agency.code] = HubClient(url, creds.client_id, creds.client_secret)
        try:
            ok = await _exchange(
                console, clients, ministry, [province, district, commune], hub.key.cert, receiver
            )
            ok &= await show_reorganisation(console, hub, clients, ministry.code)
        finally:
            for client in clients.values():
                await client.close()
            if receiver is not None:
                await receiver.stop()
        if keep_serving:
            logins = Table("user", "role", "agency", "password", title="Web console users")
            for login in await add_demo_users(hub.stores.console, province.code):
                logins.add_row(*login)
            console.print(logins)
            console.print(f"Console: {url}/console (sign in with a user above)")
            console.print(f"The hub keeps serving on {url}; Ctrl-C to stop.")
            await asyncio.Event().wait()
    return 0 if ok else 1


async def _check_evidence(console: Console, client: HubClient, package_id: str, hub_cert) -> bool:
    """Download the evidence bundle and check it offline, as an auditor would."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "evidence.asice"
        headers = {"Authorization": f"Bearer {await client.token()}"}
        async with client.session.get(
            f"{client.base_url}/v1/packages/{package_id}/evidence", headers=headers
        ) as resp:
            bundle.write_bytes(await resp.read())
        checks = await verify_bundle(bundle, [hub_cert])
    failed = [c for c in checks if not c.ok]
    console.print(
        "Evidence bundle: "
        f"{len(checks) - len(failed)} of {len(checks)} offline checks passed"
        + (f"; failed: {', '.join(c.item for c in failed)}" if failed else "")
        + " (lienthong audit verify)."
    )
    return not failed


async def _exchange(
    console: Console, clients: dict, sender: Agency, recipients: list, hub_cert, receiver=None
) -> bool:
    number = str(int(time.time()))
    attachment = "Công văn về việc triển khai liên thông văn bản điện tử.\n".encode()
    package = build_document(
        sender=sender.code,
        recipients=[r.code for r in recipients],
        code_number=number,
        code_notation="VPCP-KSTT",
        subject="V/v triển khai liên thông văn bản điện tử bốn cấp",
        priority=1,
        attachments=[("cong-van.txt", "text/plain", attachment)],
    )
    for client in clients.values():
        await client.token()  # logged in beforehand: the times below are the documents' own
    started = time.perf_counter()
    sent = await clients[sender.code].submit(package)
    console.print(
        f"\n[bold]{sender.name}[/] sent document [cyan]{sent['document_id']}[/] "
        f"({len(package)} bytes, sha256 {sent['digest'][:16]}…) to {len(recipients)} recipients"
    )
    results = Table("recipient", "level", "in the inbox after", "bytes identical", "statuses sent")
    all_ok = True

    async def arrival(agency: Agency) -> float | None:
        if receiver is not None and agency.code == receiver.organ_id:
            return await receiver.arrival(sent["id"], started)
        if not await _wait_inbox(clients[agency.code], lambda i: i["id"] == sent["id"], 1):
            return None
        return time.perf_counter() - started

    arrivals = await asyncio.gather(*(arrival(a) for a in recipients))
    for agency, arrived in zip(recipients, arrivals, strict=True):
        client = clients[agency.code]
        if arrived is None:
            results.add_row(agency.name, agency.level, "[red]never[/]", "-", "-")
            all_ok = False
            continue
        data = await client.fetch(sent["id"])
        identical = hashlib.sha256(data).hexdigest() == sent["digest"]
        all_ok &= identical
        await client.ack(sent["id"])
        for code, text in (("01", "Đã đến"), ("03", "Tiếp nhận, vào sổ văn bản đến")):
            await client.submit(
                build_status(
                    sender=agency.code,
                    response_for_organ_id=sender.code,
                    response_for_document_id=sent["document_id"],
                    status_code=code,
                    description=text,
                    staff="Văn thư",
                )
            )
        results.add_row(
            agency.name,
            agency.level,
            f"{arrived * 1000:.0f} ms"
            + (" (push)" if receiver is not None and agency.code == receiver.organ_id else ""),
            "yes" if identical else "NO",
            "01, 03",
        )
    console.print(results)

    statuses = await _wait_inbox(
        clients[sender.code],
        lambda i: i.get("response_for") == sent["document_id"],
        2 * len(recipients),
    )
    back = Table("from", "status", "about", title=f"Statuses back at {sender.name}")
    for item in statuses:
        back.add_row(item["sender"], item["status_code"], item["response_for"])
        await clients[sender.code].ack(item["id"])
    console.print(back)
    all_ok &= len(statuses) == 2 * len(recipients)

    claims = sent["receipt"]["claims"]
    console.print(
        f"The hub's signed receipt: digest {claims['digest'][:16]}…, received "
        f"{claims['received_at']}, ledger leaf {claims['ledger']['leaf_index']}."
    )
    trail = await clients[sender.code].trail(sent["id"])
    table = Table("time", "event", "agency", "detail", title=f"Trail of package {sent['id']}")
    for event in trail["events"]:
        detail = event["detail"].get("status_code") or event["detail"].get("routing_key") or ""
        table.add_row(event["at"][11:23], event["event"], event["organ_id"] or "", str(detail))
    console.print(table)
    all_ok &= await _check_evidence(console, clients[sender.code], sent["id"], hub_cert)
    if receiver is not None:
        await receiver.stop()  # the business flows below are shown by pull
    all_ok &= await demo_flows(console, clients, sender, recipients, sent["document_id"])
    verdict = "[green]every step checked out[/]" if all_ok else "[red]something went wrong[/]"
    console.print(f"Demo finished: {verdict}.")
    return all_ok
