"""Score predictions on a Dask cluster with the streaming accumulators, merged exactly.

Each partition (or file) is scored by a :class:`~crossent.metrics.files.FileScorer` on a worker;
the scorers, about 1 MiB of sums each (the AUC histogram; 64 KiB more per segment), are merged
in a tree (:meth:`FileScorer.merge`) and the
metrics computed once at the end. Sums merge exactly, so the result equals a single-process run
on the same rows up to the order of floating-point additions (a relative 1e-15, far below any
digit reported); counts, histograms and segments are identical. Example::

    import dask.dataframe as dd
    from distributed import Client
    import crossent.metrics.dask

    client = Client("tcp://10.0.0.5:8786")  # the scheduler's address, or Client(LocalCluster())
    ddf = dd.read_parquet("s3://bucket/preds/")
    result = crossent.metrics.dask.score(ddf, target="label", prob="prob", by=["country"])
    result.log_loss, result.segments[0].normalized_entropy

Needs the ``dask`` extra: ``pip install 'crossent[dask]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from crossent import io
from crossent.errors import CrossentError
from crossent.io.blocks import RowBatch, single_chunk
from crossent.metrics.file_columns import Columns, guess_columns
from crossent.metrics.files import FileScorer, ScoreResult
from crossent.units import Base

ROWS_PER_BATCH = 1 << 19


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


def score_source(source: io.Source, columns: Columns, settings: dict[str, Any]) -> FileScorer:
    """A scorer fed with one file (read on the worker: files must be visible there)."""
    scorer = FileScorer(columns, **settings)
    scorer.add_file(source.path, partition=source.partition)
    return scorer


def merge_all(scorers: Sequence[FileScorer]) -> FileScorer:
    """One scorer holding every scorer's sums."""
    first, *rest = scorers
    for other in rest:
        first.merge(other)
    return first


def _tree_merge(dask: Any, parts: list[Any], fan_in: int = 8) -> Any:
    while len(parts) > 1:
        parts = [
            dask.delayed(merge_all)(parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)
        ]
    return parts[0]


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
    scheduler (a ``distributed.Client`` if one is active).
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
    parts = [
        dask.delayed(score_partition)(part, index, columns, settings)
        for index, part in enumerate(ddf.to_delayed())
    ]
    return _tree_merge(dask, parts).compute().result(base)


def score_sources(
    sources: Sequence[io.Source], columns: Columns, settings: dict[str, Any], base: Base
) -> ScoreResult:
    """Score files on the current Dask scheduler, one task per file."""
    dask = _require_dask()
    parts = [dask.delayed(score_source)(source, columns, settings) for source in sources]
    return _tree_merge(dask, parts).compute().result(base)


def connect(scheduler: str) -> Any:
    """A ``distributed.Client``: ``local`` starts a cluster on this machine, else an address."""
    _require_dask()
    from distributed import Client, LocalCluster

    if scheduler == "local":
        return Client(LocalCluster(processes=True, host="127.0.0.1"))
    return Client(scheduler)
