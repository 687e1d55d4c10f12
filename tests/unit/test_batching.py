"""Group commit: concurrent callers share writes, a lone one waits for nobody; a failed write,
a wrong answer and a cancelled writer reach every caller of the batch; a cancelled caller
stops nobody else."""

from __future__ import annotations

import asyncio

import pytest

from exchange.batching import GroupCommit


class Recorder:
    def __init__(self, fail_on: object = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.release = asyncio.Event()
        self.release.set()

    async def write(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail_on in items:
            raise RuntimeError("refused")
        return [i * 10 for i in items]


async def test_concurrent_callers_share_one_write_per_round():
    recorder = Recorder()
    group = GroupCommit(recorder.write)
    recorder.release.clear()
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)  # the first write starts with item 1 alone
    rest = [asyncio.ensure_future(group.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [i * 10 for i in range(2, 12)]
    assert recorder.batches == [[1], list(range(2, 12))]


async def test_a_lone_caller_is_written_at_once_and_batches_are_capped():
    recorder = Recorder()
    group = GroupCommit(recorder.write, max_batch=3)
    assert await group.submit(7) == 70
    outcomes = await asyncio.gather(*(group.submit(i) for i in range(8)))
    assert outcomes == [i * 10 for i in range(8)]
    assert all(len(batch) <= 3 for batch in recorder.batches)
    assert sorted(i for batch in recorder.batches[1:] for i in batch) == list(range(8))


async def test_a_failed_write_fails_its_batch_only():
    recorder = Recorder(fail_on=3)
    group = GroupCommit(recorder.write)
    recorder.release.clear()
    lone = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)
    doomed = [asyncio.ensure_future(group.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await lone == 10
    for future in doomed:
        with pytest.raises(RuntimeError, match="refused"):
            await future
    assert await group.submit(4) == 40  # the group goes on after a failure


async def test_a_cancelled_caller_does_not_stop_the_others():
    recorder = Recorder()
    group = GroupCommit(recorder.write)
    recorder.release.clear()
    gone = asyncio.ensure_future(group.submit(1))
    stays = asyncio.ensure_future(group.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.release.set()
    assert await stays == 20
    assert recorder.batches == [[1, 2]]  # the cancelled caller's item was written all the same


async def test_a_write_with_the_wrong_number_of_outcomes_fails_its_callers():
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    group = GroupCommit(short)
    outcomes = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes), outcomes


async def test_a_cancelled_writer_cancels_every_waiting_caller():
    recorder = Recorder()
    group = GroupCommit(recorder.write)
    recorder.release.clear()
    waiting = [asyncio.ensure_future(group.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the writer is inside write([0, 1, 2])
    assert recorder.batches == [[0, 1, 2]]
    group._writer.cancel()  # what stopping the hub does to the task
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    recorder.release.set()
    assert await group.submit(9) == 90  # a new writer starts for the next caller
