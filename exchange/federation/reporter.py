"""Notes back towards the sender's hub, from the events this hub records.

For every package that arrived from a peer, the reporter turns this hub's events into notes:
``arrived`` becomes ``accepted`` (with this hub's signed receipt and the recipients it took),
the ``delivered``, ``fetched`` and ``acknowledged`` of the agencies it serves itself become
notes of the same name, and ``remote`` events (notes from hubs further on) are passed back
unchanged. Each goes on ``out`` with the routing key of the package's sender, so it travels
the way hand-overs came, hop by hop. The events are read in ledger order after a cursor that
moves only once the notes are confirmed: at least once, and the receiver records each note once.
"""

from __future__ import annotations

import asyncio
import logging

from exchange.errors import HubError
from exchange.federation.link import Link
from exchange.federation.messages import Note
from exchange.receipts import Receipts
from exchange.store.federation import PostgresFederation
from exchange.tasks import BackgroundLoop, log_failure
from schemas import OrganId

__all__ = ["Reporter"]

log = logging.getLogger("lienthong.federation")
_KINDS = ("arrived", "delivered", "fetched", "acknowledged", "remote")


class Reporter(BackgroundLoop):
    """Publishes notes about arrived packages; one pass every ``interval`` seconds at most."""

    task_name = "federation-reporter"

    def __init__(
        self,
        hub_id: str,
        store: PostgresFederation,
        link: Link,
        receipts: Receipts,
        interval: float = 0.3,
    ) -> None:
        self.hub_id = hub_id
        self.store = store
        self.link = link
        self.receipts = receipts
        self.interval = interval
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            try:
                while await self.report_once():
                    pass
            except asyncio.CancelledError:
                raise
            except HubError as exc:  # a receipt not signed yet: the next pass sends it
                log.debug("federation notes wait", extra={"code": exc.code})
            except Exception as exc:
                log_failure(log, "federation notes could not be sent; retrying", exc)
            await asyncio.sleep(self.interval)

    async def report_once(self, limit: int = 200) -> int:
        """Send the notes of the next events; returns how many events were read."""
        if not self.link.ready:
            return 0
        rows = await self.store.reportable(_KINDS, limit)
        if not rows:
            return 0
        notes = []
        for row in rows:
            note = await self._note(row)
            if note is not None:
                notes.append((note, OrganId.parse(row["sender"]).routing_key, row["id"]))
        await asyncio.gather(
            *(
                self.link.publish(n.to_bytes(), key, f"note:{event_id}", mandatory=False)
                for n, key, event_id in notes
            )
        )
        await self.store.advance(rows[-1]["ledger_index"])
        return len(rows)

    async def _note(self, row) -> Note | None:
        at = row["at"].isoformat()
        if row["event"] == "arrived":
            package = await self.store.package_by_digest(row["digest"])
            receipt = await self.receipts.issue(package["id"]) if package else None
            recipients = await self.store.recipients(package["id"]) if package else []
            return Note(
                row["digest"],
                "accepted",
                self.hub_id,
                self.hub_id,
                "",
                at,
                {"receipt": receipt, "recipients": recipients},
            )
        if row["event"] == "remote":
            detail = dict(row["detail"])
            kind, hub = detail.pop("kind"), detail.pop("hub")
            detail.pop("from_hub", None)
            original_at = detail.pop("at", at)
            return Note(
                row["digest"], kind, hub, self.hub_id, row["organ_id"] or "", original_at, detail
            )
        if row["served_elsewhere"]:
            return None  # a copy handed on: the hub further on reports its recipient
        return Note(row["digest"], row["event"], self.hub_id, self.hub_id, row["organ_id"], at)
