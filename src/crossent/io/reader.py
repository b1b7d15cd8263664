"""Read data files in batches, in fixed memory, every row remembering where it was.

:func:`read_batches` yields :class:`~crossent.io.blocks.RowBatch` objects of at most about
``block_bytes`` of input, so memory stays fixed however big the file is. Every row carries its
position, so errors can say ``preds.csv line 4012, column 'prob'``:

- CSV / TSV / JSONL (optionally compressed): the 1-based line number in the file (the CSV
  header is line 1), see :mod:`crossent.io.blocks`;
- Parquet: the 1-based row number in the file (a Parquet file has no lines) and its row group,
  read with ``iter_batches``.

Numeric columns are parsed as float64 directly; only a block that holds a value that is not a
number is re-parsed as text, so that the bad values can be named
(:func:`crossent.io.values.float_column`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crossent.errors import CrossentError
from crossent.io.blocks import RowBatch, TextLayout, line_blocks, text_batch
from crossent.io.formats import file_format, read_columns, require_file

DEFAULT_BLOCK_BYTES = 4 << 20


def check_columns(path: Path | str, wanted: Sequence[str], available: Sequence[str]) -> None:
    """Raise naming the first of ``wanted`` that is not in ``available``."""
    missing = [name for name in wanted if name not in available]
    if missing:
        raise CrossentError(
            f"{path}: no column {missing[0]!r}; the file has columns {', '.join(available)}"
        )


def read_batches(
    path: str | Path,
    columns: Sequence[str],
    *,
    float_columns: Sequence[str] = (),
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    constants: Mapping[str, object] | None = None,
) -> Iterator[RowBatch]:
    """Yield the ``columns`` of ``path`` in blocks of about ``block_bytes`` of input.

    ``float_columns`` are parsed as float64 (falling back to text for a block that holds a
    non-number); other columns keep their natural type (text for CSV/TSV). ``constants`` are
    columns that are not in the file but have one value for all of it (Hive partition keys,
    see :mod:`crossent.io.dataset`); they are added to every batch.

    Raises:
        CrossentError: unknown file type, missing file, a requested column not in the file.
    """
    file = require_file(path)
    constants = dict(constants or {})
    available = read_columns(file)
    in_file = [name for name in columns if name not in constants or name in available]
    check_columns(file, in_file, [*available, *constants])
    kind = file_format(file)
    if kind == "parquet":
        batches = _parquet_batches(file, in_file, block_bytes)
    else:
        layout = TextLayout(
            file, kind, available, in_file, [c for c in float_columns if c in in_file]
        )
        batches = _text_batches(layout, block_bytes)
    for batch in batches:
        for name, value in constants.items():
            if name not in batch.columns and name in columns:
                batch.columns[name] = pa.array([value] * len(batch))
        yield batch


def _parquet_batches(path: Path, columns: Sequence[str], block_bytes: int) -> Iterator[RowBatch]:
    parquet = pq.ParquetFile(path)
    total_rows = max(parquet.metadata.num_rows, 1)
    size = path.stat().st_size
    rows_per_batch = max(1024, block_bytes // (8 * max(len(columns), 1)))
    done = 0
    for group in range(parquet.num_row_groups):
        for record_batch in parquet.iter_batches(
            batch_size=rows_per_batch, row_groups=[group], columns=list(columns)
        ):
            n = record_batch.num_rows
            lines = np.arange(done + 1, done + n + 1, dtype=np.int64)
            done += n
            yield RowBatch(
                path,
                lines,
                {name: record_batch.column(name) for name in columns},
                bytes_done=int(size * done / total_rows),
                row_word="row",
                where=f"row group {group}" if parquet.num_row_groups > 1 else "",
            )


def _text_batches(layout: TextLayout, block_bytes: int) -> Iterator[RowBatch]:
    blocks = line_blocks(layout.path, block_bytes, skip_first_line=layout.kind != "jsonl")

    def next_batch() -> RowBatch | None:
        item = next(blocks, None)
        return None if item is None else text_batch(layout, *item)

    # read, decompress and parse the next block on a worker thread while the caller works on
    # this one (pyarrow releases the GIL); at most two parsed blocks are alive at a time
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[RowBatch | None] = pool.submit(next_batch)
        while (batch := pending.result()) is not None:
            pending = pool.submit(next_batch)
            yield batch


def read_table(
    path: str | Path, columns: Sequence[str], *, float_columns: Sequence[str] = ()
) -> tuple[pa.Table, np.ndarray, list]:  # type: ignore[type-arg]
    """All rows of ``columns`` as one table, with each row's line and the unparsable lines.

    For files that fit in memory (interaction logs, lab data sets): the same reader, rules
    and line numbers as :func:`read_batches`.
    """
    tables, lines, problems = [], [], []
    for batch in read_batches(path, columns, float_columns=float_columns):
        tables.append(pa.table(batch.columns))
        lines.append(batch.lines)
        problems += batch.problems
    if not tables:
        empty = pa.table({name: pa.array([], pa.string()) for name in columns})
        return empty, np.zeros(0, dtype=np.int64), problems
    return pa.concat_tables(tables, promote_options="permissive"), np.concatenate(lines), problems
