"""The batcher: concurrent jobs share calls, each gets its own answer, the queue is bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from crossent.errors import CrossentError
from crossent.recsys.serving.batcher import Batcher, Overloaded, ShuttingDown


class Recorder:
    """``work`` that doubles each job and records the batches it was given."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate
        self.threads: set[str] = set()

    def __call__(self, jobs: Sequence[int]) -> list[int]:
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(jobs))
        if any(job < 0 for job in jobs):
            raise RuntimeError("negative job")
        return [2 * job for job in jobs]


async def _run(batcher: Batcher, jobs: list[int]) -> list[int]:
    await batcher.start()
    try:
        return await asyncio.gather(*[batcher.submit(job) for job in jobs])
    finally:
        await batcher.stop()


def test_concurrent_jobs_share_one_call_and_keep_their_answers():
    work = Recorder()
    answers = asyncio.run(_run(Batcher(work, max_batch=64, max_wait_ms=50), list(range(10))))
    assert answers == [2 * job for job in range(10)]
    assert work.batches == [list(range(10))]
    assert len(work.threads) == 1 and next(iter(work.threads)).startswith("crossent-batcher")


def test_max_batch_bounds_every_call():
    work = Recorder()
    answers = asyncio.run(_run(Batcher(work, max_batch=4, max_wait_ms=50), list(range(10))))
    assert answers == [2 * job for job in range(10)]
    assert [len(batch) for batch in work.batches] == [4, 4, 2]
    assert [job for batch in work.batches for job in batch] == list(range(10))  # in order


def test_batching_off_calls_work_once_per_job():
    work = Recorder()
    asyncio.run(_run(Batcher(work, max_batch=1, max_wait_ms=0), list(range(5))))
    assert work.batches == [[0], [1], [2], [3], [4]]


def test_a_lone_job_waits_at_most_max_wait():
    async def one() -> float:
        batcher = Batcher(Recorder(), max_batch=64, max_wait_ms=30)
        await batcher.start()
        start = time.perf_counter()
        assert await batcher.submit(1) == 2
        elapsed = time.perf_counter() - start
        await batcher.stop()
        return elapsed

    assert 0.03 <= asyncio.run(one()) < 5  # the wait, then at once (loose: a shared machine)


def test_after_a_batch_the_next_waits_for_the_requests_its_answers_set_free():
    """A job that waited through the last batch still waits up to max_wait for companions:
    the client the last batch answered sends its next request within it."""
    gate = threading.Event()
    work = Recorder(gate)

    async def run() -> None:
        batcher = Batcher(work, max_batch=8, max_wait_ms=300)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(0))
        while not work.threads:  # the batch [0] is on the worker, held by the gate
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.35)  # job 1 has now waited longer than max_wait
        gate.set()
        await first  # the answer sets its client free, and its next request comes at once
        assert await asyncio.gather(second, batcher.submit(2)) == [2, 4]
        await batcher.stop()

    asyncio.run(run())
    assert work.batches == [[0], [1, 2]]


def test_a_full_queue_refuses_at_once_and_every_accepted_job_is_answered():
    gate = threading.Event()
    work = Recorder(gate)

    async def flood() -> tuple[list[int], int]:
        batcher = Batcher(work, max_batch=2, max_wait_ms=0, queue_limit=3)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(0))
        while not work.threads:  # the first batch is on the worker, held by the gate
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batcher.submit(job)) for job in (1, 2, 3)]
        await asyncio.sleep(0)
        refused = 0
        for job in (4, 5):
            with pytest.raises(Overloaded):
                await batcher.submit(job)
            refused += 1
        gate.set()
        answers = await asyncio.gather(first, *queued)
        await batcher.stop()
        return answers, refused

    answers, refused = asyncio.run(flood())
    assert answers == [0, 2, 4, 6] and refused == 2


def test_a_failing_batch_fails_its_jobs_and_the_batcher_goes_on():
    async def run() -> tuple[list[object], int]:
        batcher = Batcher(Recorder(), max_batch=8, max_wait_ms=20)
        await batcher.start()
        failed = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
        after = await batcher.submit(5)
        await batcher.stop()
        return failed, after

    failed, after = asyncio.run(run())
    assert all(isinstance(result, RuntimeError) for result in failed)
    assert after == 10


def test_stopped_batcher_refuses_with_shutting_down():
    async def run() -> None:
        batcher = Batcher(Recorder())
        with pytest.raises(ShuttingDown):
            await batcher.submit(1)
        await batcher.start()
        await batcher.stop()
        with pytest.raises(ShuttingDown):
            await batcher.submit(1)

    asyncio.run(run())


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"max_batch": 0}, "max_batch"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"max_wait_ms": 5000}, "max_wait_ms"),
        ({"queue_limit": 0}, "queue_limit"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_limits_are_named(options, words):
    with pytest.raises(CrossentError, match=words):
        Batcher(Recorder(), **options)


def test_with_two_workers_two_batches_run_at_once_sharing_what_waits():
    """Ten jobs waiting and two free workers: two batches of five, on the workers together
    (each call waits at a barrier that only two calls at once can pass)."""
    barrier = threading.Barrier(2, timeout=10)
    seen: list[list[int]] = []

    def work(jobs: Sequence[int]) -> list[int]:
        barrier.wait()  # raises BrokenBarrierError if the other batch is not running too
        seen.append(list(jobs))
        return [2 * job for job in jobs]

    answers = asyncio.run(
        _run(Batcher(work, max_batch=64, max_wait_ms=50, workers=2), list(range(10)))
    )
    assert answers == [2 * job for job in range(10)]
    assert sorted(seen) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_one_worker_never_runs_two_batches_at_once():
    active, most = [0], [0]
    lock = threading.Lock()

    def work(jobs: Sequence[int]) -> list[int]:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return list(jobs)

    asyncio.run(_run(Batcher(work, max_batch=2, max_wait_ms=0, workers=1), list(range(12))))
    assert most[0] == 1


def test_stop_lets_the_batches_on_the_workers_answer():
    gate = threading.Event()
    work = Recorder(gate)

    async def run() -> list[int]:
        batcher = Batcher(work, max_batch=8, max_wait_ms=0, workers=2)
        await batcher.start()
        jobs = [asyncio.ensure_future(batcher.submit(job)) for job in (1, 2)]
        while not work.threads:  # the batch is on a worker, held by the gate
            await asyncio.sleep(0.001)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.05)
        gate.set()
        await stopping
        return await asyncio.gather(*jobs)

    assert asyncio.run(run()) == [2, 4]
