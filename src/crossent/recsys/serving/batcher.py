"""Micro-batching: requests that arrive together share one model call, on worker threads.

A web server answers many small questions at once; the recommender answers a batch of them
for little more than the price of one (one encoder pass, one catalogue sweep). The
:class:`Batcher` sits between the two: each request :meth:`~Batcher.submit`\\ s its job and
awaits its answer; a single collector task gathers the jobs waiting at that moment, waits up
to ``max_wait_ms`` for more (unless ``max_batch`` are there), and hands them to ``work`` on a
worker thread, so the event loop keeps accepting and answering while the model runs. After a
batch, the short wait lets the requests its answers set free join the next batch rather than
trail it in one of their own. Under load batches grow by themselves, and an idle server adds at
most ``max_wait_ms`` to a request.

With ``workers`` above 1, that many batches may run at once, and what is waiting is shared
evenly among the free workers (each batch at most ``max_batch``): the model's large batched
operations release Python's lock, so two batches of 16 run side by side on two cores where
one batch of 32 would keep one core busy and leave the other idle. ``work`` must then be safe
to call from several threads at once. One request alone is no faster for it: a model call on
one window is mostly Python between small operations, which holds the lock.

The queue is bounded: with ``queue_limit`` jobs already waiting, :meth:`~Batcher.submit`
raises :class:`Overloaded` at once, and the server answers 503 instead of stalling.
``max_batch=1, max_wait_ms=0`` turns batching off (one model call per request, ``workers`` of
them at once).

Example::

    batcher = Batcher(lambda jobs: [job * 2 for job in jobs], max_batch=32)
    await batcher.start()
    assert await batcher.submit(21) == 42
    await batcher.stop()
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from crossent._validation.numbers import check_int, check_number

Job = TypeVar("Job")
Answer = TypeVar("Answer")


class Overloaded(Exception):
    """The queue is full: the caller should answer 503 and let the client retry later."""


class ShuttingDown(Exception):
    """The batcher stopped before the job ran."""


class Batcher(Generic[Job, Answer]):
    """Gathers concurrent jobs into batches for ``work`` (see the module docstring).

    Args:
        work: answers a batch, ``work(jobs)[i]`` for ``jobs[i]``; it runs on a worker
            thread, at most ``workers`` calls at once.
        max_batch: most jobs handed to one ``work`` call.
        max_wait_ms: longest a job waits for companions before its batch starts.
        queue_limit: most jobs waiting (not counting the batches being worked on).
        workers: most ``work`` calls running at once (worker threads).
    """

    def __init__(
        self,
        work: Callable[[Sequence[Job]], Sequence[Answer]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        queue_limit: int = 256,
        workers: int = 1,
    ) -> None:
        self.work = work
        self.max_batch = check_int(max_batch, "max_batch", low=1)
        self.max_wait = check_number(max_wait_ms, "max_wait_ms", low=0, high=1000) / 1000
        self.queue_limit = check_int(queue_limit, "queue_limit", low=1)
        self.workers = check_int(workers, "workers", low=1, high=64)
        self._waiting: deque[tuple[Job, asyncio.Future[Answer]]] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._free: asyncio.Semaphore | None = None
        self._busy = 0  # batches on the workers
        self._running: set[asyncio.Task[None]] = set()
        #: batches and jobs worked so far (for /readyz and the tests)
        self.batches = 0
        self.jobs = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def waiting(self) -> int:
        """Jobs in the queue, not yet handed to ``work``."""
        return len(self._waiting)

    @property
    def full(self) -> bool:
        """``queue_limit`` jobs are waiting: :meth:`submit` would raise :class:`Overloaded`."""
        return len(self._waiting) >= self.queue_limit

    async def start(self) -> None:
        """Start the collector task and the worker threads (in the running event loop)."""
        self._arrived = asyncio.Event()
        self._free = asyncio.Semaphore(self.workers)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="crossent-batcher")
        self._task = asyncio.create_task(self._collect(), name="crossent-batcher")

    async def stop(self) -> None:
        """Stop collecting; the batches on the workers finish and answer, jobs still queued
        fail with :class:`ShuttingDown`."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while self._waiting:
            _, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(ShuttingDown("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, job: Job) -> Answer:
        """``job``'s answer, once its batch has run.

        Raises:
            Overloaded: ``queue_limit`` jobs are already waiting (nothing was queued).
            ShuttingDown: the batcher is not running.
        """
        if not self.running or self._arrived is None:
            raise ShuttingDown("the server is not running")
        if self.full:
            raise Overloaded(f"{len(self._waiting)} requests already queued")
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        self._arrived.set()
        return await future

    async def _gather(self) -> None:
        """Wait up to max_wait for companions: the clients the last batch answered send their
        next requests within it, and a batch costs less per job the larger it is."""
        loop = asyncio.get_running_loop()
        assert self._arrived is not None
        deadline = loop.time() + self.max_wait
        while len(self._waiting) < self.max_batch and loop.time() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except asyncio.TimeoutError:  # Python 3.10: not the builtin TimeoutError
                break

    async def _collect(self) -> None:
        assert self._arrived is not None and self._free is not None
        gathered = False  # what waits had its wait (jobs left over from a shared-out batch)
        while True:
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            # with every worker busy, the batch that ends sets clients free: wait for them too
            must_gather = not gathered or self._free.locked()
            await self._free.acquire()
            if must_gather:
                await self._gather()
            # an equal share for each free worker (this one included), at most max_batch
            share = min(self.max_batch, -(-len(self._waiting) // (self.workers - self._busy)))
            batch = [self._waiting.popleft() for _ in range(min(share, self.waiting))]
            batch = [entry for entry in batch if not entry[1].done()]  # skip cancelled
            gathered = bool(self._waiting)
            if not batch:
                self._free.release()
                continue
            self._busy += 1
            task = asyncio.create_task(self._answer(batch), name="crossent-batch")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _answer(self, batch: list[tuple[Job, asyncio.Future[Answer]]]) -> None:
        """Run one batch on a worker and hand each job its answer (or the batch's error)."""
        assert self._free is not None
        try:
            answers = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.work, [job for job, _ in batch]
            )
        except Exception as error:  # the batch's requests each get the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            self._busy -= 1
            self._free.release()
        self.batches += 1
        self.jobs += len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
