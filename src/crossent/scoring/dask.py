"""Score predictions on a Dask cluster with the streaming accumulators, merged in a fixed order.

The unit of work is one :class:`~crossent.scoring.files.FileScorer` per file (``--dask``,
:func:`score_sources`) or per partition (:func:`score`), fed by the same reader in the same
blocks as in a single process. The workers score the units in parallel, in any order; the
client takes their scorers in the units' order and merges them left to right
(:func:`~crossent.scoring.files.merge_in_order`), never in a tree. So the run performs the
same float operations, in the same order, as the single-process run of the same units:

- ``crossent score FILES --dask ADDRESS`` equals ``crossent score FILES`` bit for bit (every
  number, segments included), since ``crossent score`` also scores one file at a time and
  merges in that order;
- ``score(ddf)`` on a cluster equals ``score(ddf)`` on Dask's single-process scheduler
  (``dask.config.set(scheduler="synchronous")``) bit for bit: the same partitions, scored the
  same way, merged in partition order. Another partitioning of the same rows (or one big file)
  adds the floats in other groups and can differ in the last few digits (the rounding of the
  sums); counts never differ.

"Bit for bit" holds when the workers and the client run the same NumPy and PyArrow builds on
the same kind of CPU (a ``LocalCluster`` always does); NumPy may pick other SIMD code for
``log`` or ``exp`` on another CPU, which can move a row's last bit. Example::

    import dask.dataframe as dd
    from distributed import Client
    import crossent.scoring.dask

    client = Client("tcp://10.0.0.5:8786")  # the scheduler's address, or Client(LocalCluster())
    ddf = dd.read_parquet("s3://bucket/preds/")
    result = crossent.scoring.dask.score(ddf, target="label", prob="prob", by=["country"])
    result.log_loss, result.segments[0].normalized_entropy

A scorer is about 1 MiB of sums (the AUC histogram; 64 KiB more per segment). Needs the
``dask`` extra: ``pip install 'crossent[dask]'``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from crossent import io
from crossent.errors import CrossentError
from crossent.io.blocks import RowBatch, single_chunk
from crossent.scoring.columns import Columns, guess_columns
from crossent.scoring.files import FileScorer, ScoreResult, merge_in_order, score_file
from crossent.units import Base

ROWS_PER_BATCH = 1 << 19
#: Most worker processes of ``--dask local``.
LOCAL_WORKERS = 4
#: Tasks computed at once on a local (not ``distributed``) scheduler.
IN_FLIGHT = 32


def _require_dask() -> Any:
    try:
        import dask
    except ImportError:  # pragma: no cover - depends on the environment
        raise CrossentError(
            "Dask scoring needs the dask extra: pip install 'crossent[dask]'"
        ) from None
    return dask


def score_partition(
    frame: Any, index: int, columns: Columns, settings: dict[str, Any]
) -> FileScorer:
    """A scorer fed with one pandas partition; rows are named ``partition INDEX row N``."""
    scorer = FileScorer(columns, **settings)
    wanted = [*columns.all, *(c for c in settings.get("by", ()) if c not in columns.all)]
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        raise CrossentError(
            f"no column {missing[0]!r}; the data has columns {', '.join(map(str, frame.columns))}"
        )
    table = pa.Table.from_pandas(frame[wanted], preserve_index=False)
    for start in range(0, max(table.num_rows, 1), ROWS_PER_BATCH):
        part = table.slice(start, ROWS_PER_BATCH)
        lines = np.arange(start + 1, start + part.num_rows + 1, dtype=np.int64)
        columns_of = {name: single_chunk(part.column(name)) for name in wanted}
        scorer.add_batch(RowBatch(f"partition {index}", lines, columns_of, row_word="row"))
    return scorer


def _scorers_in_order(dask: Any, tasks: list[Any]) -> Generator[FileScorer, None, None]:
    """The tasks' scorers, computed in parallel on the current scheduler, yielded in order.

    On a ``distributed`` cluster every task is submitted at once and each result fetched, and
    released, in turn; the local schedulers compute :data:`IN_FLIGHT` tasks at a time. Either
    way the caller holds one scorer besides its total, and a task's error is raised in the
    order a single-process run would meet it.
    """
    if dask.config.get("scheduler", None) == "dask.distributed":
        from distributed import default_client

        client = default_client()
        futures = client.compute(tasks)
        try:
            for position, future in enumerate(futures):
                yield future.result()
                futures[position] = None  # released: its worker may drop the scorer
        finally:
            client.cancel([future for future in futures if future is not None])
        return
    for start in range(0, len(tasks), IN_FLIGHT):
        yield from dask.compute(*tasks[start : start + IN_FLIGHT])


def _merged(dask: Any, tasks: list[Any]) -> FileScorer:
    with closing(_scorers_in_order(dask, tasks)) as scorers:
        return merge_in_order(scorers)


def score(
    ddf: Any,
    *,
    target: str | None = None,
    prob: str | None = None,
    probs: Sequence[str] = (),
    logits: Sequence[str] = (),
    weight: str | None = None,
    labels: Sequence[str] | None = None,
    positive: str | None = None,
    by: Sequence[str] = (),
    bins: int = 15,
    skip_invalid: bool = False,
    base: Base = "nats",
) -> ScoreResult:
    """Score a ``dask.dataframe`` of predictions: the numbers of ``crossent score``.

    Columns not given are guessed as ``crossent score`` does. Runs on the current Dask
    scheduler (a ``distributed.Client`` if one is active). Each partition is scored on its
    own and the scorers merged in partition order, so the result equals this call on the
    single-process scheduler bit for bit (see the module docstring).
    """
    dask = _require_dask()
    columns, _ = guess_columns(
        [str(c) for c in ddf.columns],
        target=target,
        prob=prob,
        probs=probs,
        logits=logits,
        weight=weight,
    )
    settings: dict[str, Any] = {
        "labels": labels,
        "positive": positive,
        "by": tuple(by),
        "bins": bins,
        "skip_invalid": skip_invalid,
    }
    FileScorer(columns, **settings)  # bad settings fail here, before any task runs
    tasks = [
        dask.delayed(score_partition)(part, index, columns, settings)
        for index, part in enumerate(ddf.to_delayed())
    ]
    return _merged(dask, tasks).result(base)


def score_sources(
    sources: Sequence[io.Source], columns: Columns, settings: dict[str, Any], base: Base
) -> ScoreResult:
    """Score files on the current Dask scheduler, one task per file (read by a worker).

    Equal bit for bit to :func:`crossent.scoring.files.score_file` on each file in turn merged
    by :func:`~crossent.scoring.files.merge_in_order`, which is what ``crossent score`` does.
    """
    dask = _require_dask()
    tasks = [dask.delayed(score_file)(source, columns, settings) for source in sources]
    return _merged(dask, tasks).result(base)


@contextmanager
def connect(scheduler: str) -> Iterator[Any]:
    """A ``distributed.Client`` for the ``with`` block, closed after it.

    ``local`` starts a cluster on this machine (one single-threaded worker process per core,
    at most :data:`LOCAL_WORKERS`, on the 127.0.0.1 loopback) and shuts it down after the
    block; anything else is a scheduler address (``tcp://10.0.0.5:8786``).
    """
    _require_dask()
    from distributed import Client, LocalCluster

    if scheduler != "local":
        with Client(scheduler) as client:
            yield client
        return
    workers = max(1, min(os.cpu_count() or 1, LOCAL_WORKERS))
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port: no clash with a running dashboard
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
