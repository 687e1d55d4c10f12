"""The process pool that parses and verifies packages off the event loop.

Its workers never outlive the hub: each one watches the hub's process (a pidfd on Linux) and
exits the moment the hub is gone, even after a SIGKILL that gave the hub no chance to clean up.
They ignore Ctrl-C (SIGINT goes to the whole process group): the hub decides when they stop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = ["CpuPool", "exit_with_parent", "process_running"]

log = logging.getLogger("lienthong.workers")


def exit_with_parent(parent: int) -> None:
    """Exit this process at once when process ``parent`` ends (a daemon thread watches it)."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(parent)
        except (AttributeError, OSError):  # no pidfd (old kernel): poll instead
            while process_running(parent):
                time.sleep(1.0)
        else:
            select.select([fd], [], [])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def process_running(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _init_worker(parent: int, warm: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)
    if warm is not None:
        warm()


class CpuPool:
    """``workers`` processes (forkserver: a clean start, nothing of the hub's state copied)."""

    def __init__(self, workers: int, warm: Callable[[], None] | None = None) -> None:
        self.workers = workers
        self._warm = warm
        self._executor: ProcessPoolExecutor | None = None
        self._replacing = asyncio.Lock()

    async def start(self) -> None:
        """Start the processes and wait until each one has warmed up."""
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
            initargs=(os.getpid(), self._warm),
        )
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, _noop) for _ in range(self.workers))
        )

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker. A pool broken by a dying worker is replaced once, by the
        first job to notice, and every job it broke runs again on the new pool (the job that
        killed it then gets the error it deserves)."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            await self._replace(executor)
            return await loop.run_in_executor(self._executor, fn, *args)

    async def _replace(self, broken: ProcessPoolExecutor | None) -> None:
        async with self._replacing:
            if self._executor is not broken:
                return  # another job replaced it already
            log.error("a worker process died; starting a new pool")
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            await self.start()

    def shutdown(self) -> None:
        """Stop the workers without waiting for them."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the workers and wait (at most ``timeout``) until they are gone."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.wait_for(
                asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True), timeout
            )
        except TimeoutError:
            log.warning("worker processes did not stop in time; they end with the hub")


def _noop() -> None:
    """A first job per worker: returns once the initializer (and its warm-up) has run."""
