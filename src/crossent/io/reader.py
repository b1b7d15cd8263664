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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from crossent.errors import CrossentError
from crossent.io.blocks import RowBatch, RowProblem, TextLayout, line_blocks, text_batch
from crossent.io.formats import (
    delimiter,
    file_format,
    iter_lines,
    open_text,
    read_columns,
    require_file,
)

DEFAULT_BLOCK_BYTES = 4 << 20


def check_columns(path: Path | str, wanted: Sequence[str], available: Sequence[str]) -> None:
    """Raise naming the first of ``wanted`` that is not in ``available``."""
    missing = [name for name in wanted if name not in available]
    if missing:
        raise CrossentError(
            f"{path}: no column {missing[0]!r}; the file has columns {', '.join(available)}"
        )


@dataclass(frozen=True)
class TextOptions:
    """How to read a delimited text file whose name does not say (``u.data``, ``.inter``).

    ``separator``: the field separator (any length); ``names``: the column names, for files
    without a header line, or to rename the header's; ``header``: whether line 1 is a header.
    """

    separator: str
    names: Sequence[str] | None = None
    header: bool = True


def read_batches(
    path: str | Path,
    columns: Sequence[str],
    *,
    float_columns: Sequence[str] = (),
    types: Mapping[str, pa.DataType] | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    constants: Mapping[str, object] | None = None,
    text: TextOptions | None = None,
) -> Iterator[RowBatch]:
    """Yield the ``columns`` of ``path`` in blocks of about ``block_bytes`` of input.

    ``float_columns`` are parsed as float64 and ``types`` as given (falling back to text for a
    block that holds a value of another type); other columns keep their natural type (text
    for CSV/TSV). ``text`` reads a delimited file of any name (see :class:`TextOptions`).
    ``constants`` are columns that are not in the file but have one value for all of it (Hive
    partition keys, see :mod:`crossent.io.dataset`); they are added to every batch.

    Raises:
        CrossentError: unknown file type, missing file, a requested column not in the file.
    """
    file = require_file(path)
    constants = dict(constants or {})
    kind = "csv" if text is not None else file_format(file)
    available = columns_of(file, text)
    in_file = [name for name in columns if name not in constants or name in available]
    check_columns(file, in_file, [*available, *constants])
    typed = {name: pa.float64() for name in float_columns} | dict(types or {})
    if kind == "parquet":
        batches = _parquet_batches(file, in_file, block_bytes)
    else:
        separator = text.separator if text is not None else delimiter(kind)
        typed_here = {name: value for name, value in typed.items() if name in in_file}
        layout = TextLayout(file, kind, available, in_file, typed_here, separator)
        header = text.header if text is not None else kind != "jsonl"
        batches = _text_batches(layout, block_bytes, header)
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


def columns_of(file: Path, text: TextOptions | None = None) -> list[str]:
    """The column names of ``file``; with ``text``, as :class:`TextOptions` say."""
    if text is None:
        return read_columns(file)
    if text.names is not None:
        return list(text.names)
    stream, raw = open_text(file)
    with raw, stream:
        header = next(iter_lines(stream), b"").decode("utf-8", errors="replace")
    return [name.strip().strip('"') for name in header.rstrip("\r\n").split(text.separator)]


def _text_batches(layout: TextLayout, block_bytes: int, header: bool) -> Iterator[RowBatch]:
    """Blocks read (and decompressed) on one thread, parsed on another, used on the caller's.

    pyarrow releases the GIL while it decompresses and parses, so the three stages overlap;
    at most one block is being read, one parsed and one used at a time.
    """
    blocks = line_blocks(layout.path, block_bytes, skip_first_line=header)
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as parser:
        next_block = reader.submit(next, blocks, None)
        parsing: Future[RowBatch] | None = None
        while True:
            item = next_block.result()
            upcoming = None
            if item is not None:
                next_block = reader.submit(next, blocks, None)
                upcoming = parser.submit(text_batch, layout, *item)
            if parsing is not None:
                yield parsing.result()
            if upcoming is None:
                return
            parsing = upcoming


@dataclass
class Table:
    """A whole file: the columns, the line (or row) of each row, and the unparsable lines."""

    path: Path
    columns: dict[str, pa.ChunkedArray]
    lines: NDArray[np.int64]
    problems: list[RowProblem]
    row_word: str = "line"


def read_table(
    path: str | Path,
    columns: Sequence[str],
    *,
    float_columns: Sequence[str] = (),
    types: Mapping[str, pa.DataType] | None = None,
    text: TextOptions | None = None,
) -> Table:
    """All rows of ``columns`` at once, for files that fit in memory (interaction logs, lab
    data sets): the same reader, rules and line numbers as :func:`read_batches`.

    A column whose type differs between blocks (numbers in one, text in another) is text.
    """
    parts: dict[str, list[pa.Array]] = {name: [] for name in columns}
    lines, problems, row_word = [], [], "line"
    for batch in read_batches(path, columns, float_columns=float_columns, types=types, text=text):
        for name in columns:
            parts[name].append(batch.columns[name])
        lines.append(batch.lines)
        problems += batch.problems
        row_word = batch.row_word
    joined = {}
    for name, arrays in parts.items():
        kinds = {array.type for array in arrays}
        if len(kinds) > 1:
            arrays = [array.cast(pa.string()) for array in arrays]
        joined[name] = pa.chunked_array(arrays, type=arrays[0].type if arrays else pa.string())
    found = np.concatenate(lines) if lines else np.zeros(0, dtype=np.int64)
    return Table(Path(path), joined, found, problems, row_word)
