"""One background task per component, started and stopped the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["BackgroundLoop"]


class BackgroundLoop:
    """Runs the subclass's ``_run()`` coroutine as a named task between start() and stop()."""

    task_name = "background"
    _task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError
