"""Micro-batching: requests that arrive together share one model call, on one worker thread.

A web server answers many small questions at once; the recommender answers a batch of them
for little more than the price of one (one encoder pass, one catalogue sweep). The
:class:`Batcher` sits between the two: each request :meth:`~Batcher.submit`\\ s its job and
awaits its answer; a single collector task gathers the jobs waiting at that moment, waits up
to ``max_wait_ms`` for more (unless ``max_batch`` are there), and hands at most ``max_batch``
of them to ``work`` on a single worker thread (so the event loop keeps accepting and answering
while the model runs, and the model never runs twice at once). While a batch runs, the next one
gathers; the short wait after it lets the requests its answers set free join the next batch
rather than trail it in one of their own. Under load batches grow by themselves, and an idle
server adds at most ``max_wait_ms`` to a request.

The queue is bounded: with ``queue_limit`` jobs already waiting, :meth:`~Batcher.submit`
raises :class:`Overloaded` at once, and the server answers 503 instead of stalling.
``max_batch=1, max_wait_ms=0`` turns batching off (one model call per request).

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
        work: answers a batch, ``work(jobs)[i]`` for ``jobs[i]``; it runs on the worker
            thread, never two calls at once.
        max_batch: most jobs handed to one ``work`` call.
        max_wait_ms: longest a job waits for companions before its batch starts.
        queue_limit: most jobs waiting (not counting the batch being worked on).
    """

    def __init__(
        self,
        work: Callable[[Sequence[Job]], Sequence[Answer]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        queue_limit: int = 256,
    ) -> None:
        self.work = work
        self.max_batch = check_int(max_batch, "max_batch", low=1)
        self.max_wait = check_number(max_wait_ms, "max_wait_ms", low=0, high=1000) / 1000
        self.queue_limit = check_int(queue_limit, "queue_limit", low=1)
        self._waiting: deque[tuple[Job, asyncio.Future[Answer]]] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
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
        """Start the collector task and the worker thread (in the running event loop)."""
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="crossent-batcher")
        self._task = asyncio.create_task(self._collect(), name="crossent-batcher")

    async def stop(self) -> None:
        """Stop collecting; jobs still queued fail with :class:`ShuttingDown`."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
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

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._arrived is not None
        while True:
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            # wait up to max_wait for companions: the clients the last batch answered send
            # their next requests within it, and a batch costs less per job the larger it is
            deadline = loop.time() + self.max_wait
            while len(self._waiting) < self.max_batch and loop.time() < deadline:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
                except asyncio.TimeoutError:  # Python 3.10: not the builtin TimeoutError
                    break
            batch = [self._waiting.popleft() for _ in range(min(self.max_batch, self.waiting))]
            batch = [entry for entry in batch if not entry[1].done()]  # skip cancelled
            if not batch:
                continue
            try:
                answers = await loop.run_in_executor(
                    self._executor, self.work, [job for job, _ in batch]
                )
            except asyncio.CancelledError:  # stopped mid-batch: its requests are told so
                for _, future in batch:
                    if not future.done():
                        future.set_exception(ShuttingDown("the server is shutting down"))
                raise
            except Exception as error:  # the batch's requests each get the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            self.jobs += len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
