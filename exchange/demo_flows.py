"""The demo goes on with the business flows (:mod:`exchange.flows`): the sender updates the
document, then recalls the update; two recipients have fetched it, one accepts the recall (15)
and one refuses it (16); the third never fetched it, so its copy is recalled at once. Each
recipient's disposition is printed, as ``lienthong document show`` prints it."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console

from adapters.client import HubClient, HubClientError
from exchange.cli.document import document_table

__all__ = ["demo_flows"]


async def _arrived(client: HubClient, package_id: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async for item in client.inbox_items():
            if item["id"] == package_id:
                return True
        await asyncio.sleep(0.05)
    return False


async def demo_flows(console: Console, clients: dict, sender, recipients: list, doc: str) -> bool:
    """Update ``doc``, recall the update, answer; True when every copy ends where it should."""
    hub = clients[sender.code]
    accepts, refuses, absent = recipients[:3]
    codes = [r.code for r in recipients]
    number = str(int(time.time()) + 1)
    update = await hub.update(
        sender.code,
        doc,
        codes,
        code_number=number,
        code_notation="VPCP-KSTT",
        subject="V/v triển khai liên thông văn bản điện tử (cập nhật)",
    )
    console.print(
        f"\n[bold]{sender.name}[/] updated the document: [cyan]{update['document_id']}[/] "
        f"supersedes [cyan]{doc}[/] at {len(codes)} recipients."
    )
    for agency in (accepts, refuses):
        if await _arrived(clients[agency.code], update["id"]):
            await clients[agency.code].fetch(update["id"])
    recall = await hub.recall(sender.code, update["document_id"], codes, code_number=number)
    console.print(
        f"Then recalled the update; {absent.name} never fetched it, so its copy is recalled at "
        f"once. {accepts.name} agrees (15), {refuses.name} refuses (16)."
    )
    asked = await hub.dispositions(update["id"])
    console.print(
        "Right after the recall: "
        + ", ".join(f"{a.name} {asked[a.code]['disposition']}" for a in recipients)
        + "."
    )
    await clients[accepts.code].answer(accepts.code, sender.code, recall["document_id"], True)
    await clients[refuses.code].answer(refuses.code, sender.code, recall["document_id"], False)
    try:
        await clients[absent.code].fetch(update["id"])
        gone = False
    except HubClientError as exc:
        gone = exc.status == 410
    view = await hub.document(update["document_id"])
    console.print(document_table(view))
    got = await hub.dispositions(update["id"])
    wanted = {accepts.code: "recalled", refuses.code: "recall_refused", absent.code: "recalled"}
    original = await hub.dispositions((await hub.document(doc))["packages"][0]["id"])
    ok = (
        gone
        and [asked[a.code]["disposition"] for a in recipients]
        == ["recall_requested", "recall_requested", "recalled"]
        and {k: got[k]["disposition"] for k in wanted} == wanted
        and {c["disposition"] for c in original.values()} == {"superseded"}
    )
    console.print(
        "Dispositions: "
        + ", ".join(f"{a.name} {got[a.code]['disposition']}" for a in recipients)
        + f"; the first version is superseded at every recipient; {absent.name} is answered "
        + ("410 package.recalled." if gone else "[red]not 410[/].")
    )
    return ok
