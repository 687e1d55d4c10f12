"""The worker pool: a worker's death breaks no job but the one that killed it."""

from __future__ import annotations

import asyncio
import os

from exchange.workers import CpuPool


def _die_once(marker: str) -> int:
    """Kill the worker the first time (the marker file does not exist yet), then answer."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return 42


def _answer(value: int) -> int:
    return value


async def test_innocent_jobs_survive_a_dying_worker(tmp_path):
    pool = CpuPool(2)
    await pool.start()
    try:
        marker = str(tmp_path / "died")
        results = await asyncio.gather(
            pool.run(_die_once, marker),
            *(pool.run(_answer, n) for n in range(6)),
            return_exceptions=True,
        )
        assert results == [42, 0, 1, 2, 3, 4, 5], results
        assert await pool.run(_answer, 7) == 7
    finally:
        await pool.close()
