"""One background task per component, started and stopped the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from exchange.store.database import unavailable

__all__ = ["BackgroundLoop", "log_failure"]


def log_failure(log: logging.Logger, message: str, exc: BaseException) -> None:
    """A dependency that is down is a warning without a traceback; anything else an error."""
    if unavailable(exc):
        log.warning(message, extra={"error": f"{type(exc).__name__}: {exc}"})
    else:
        log.error(message, exc_info=exc)


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
