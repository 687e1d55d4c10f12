"""The demo's exchange through the real API, for tests: one document from a sender to several
recipients, each fetching, acknowledging and answering with statuses 01 and 03."""

from __future__ import annotations

import asyncio
import time

from schemas import build_document, build_status


async def _wait_for(client, package_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(i["id"] == package_id for i in (await client.inbox())["items"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{package_id} never reached the inbox")


async def run_exchange(exchange, sender: str, recipients: list[str]) -> dict:
    """Send, deliver, fetch, ack and answer 01 and 03; returns the submission's answer."""
    clients = {code: await exchange.client(code) for code in [sender, *recipients]}
    sent = await clients[sender].submit(
        build_document(
            sender=sender,
            recipients=recipients,
            code_number=str(int(time.time() * 1000) % 10**9),
            code_notation="VPCP-KSTT",
            subject="V/v triển khai liên thông văn bản điện tử bốn cấp",
            attachments=[("cong-van.txt", "text/plain", "Công văn.\n".encode())],
        )
    )
    for code in recipients:
        client = clients[code]
        await _wait_for(client, sent["id"])
        await client.fetch(sent["id"])
        await client.ack(sent["id"])
        for status, text in (("01", "Đã đến"), ("03", "Tiếp nhận")):
            await client.submit(
                build_status(
                    sender=code,
                    response_for_organ_id=sender,
                    response_for_document_id=sent["document_id"],
                    status_code=status,
                    description=text,
                    staff="Văn thư",
                )
            )
    return sent
