"""Group commit: many callers' small writes in one statement, with no wait added when idle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class GroupCommit(Generic[Item, Outcome]):
    """Runs ``write`` on everything submitted while its previous call ran.

    The first caller starts a write at once; the callers that arrive meanwhile share the next
    one. Under load one statement serves many requests; a lone request waits for nobody.
    ``write`` returns one outcome per item, in order; if it raises, every caller of that batch
    gets the exception (nothing of the batch is assumed written).
    """

    def __init__(
        self, write: Callable[[list[Item]], Awaitable[list[Outcome]]], max_batch: int = 500
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._writer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Outcome:
        """Write ``item`` with the next batch and return its outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    outcomes = await self._write([item for item, _ in batch])
                    answers = list(zip(batch, outcomes, strict=True))  # one outcome per item
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 (handed to every caller of the batch)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), outcome in answers:
                    if not future.done():
                        future.set_result(outcome)
        except asyncio.CancelledError:  # the hub stops: nobody waits forever
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._writer = None
