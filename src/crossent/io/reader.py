"""Read prediction files (CSV, TSV, Parquet, JSONL) in batches, remembering where each row was.

:func:`read_batches` yields :class:`RowBatch` objects of at most about ``block_bytes`` of input,
so memory stays fixed however big the file is. Every row carries its position in the file, so
errors can say ``preds.csv line 4012, column 'prob'``:

- CSV / TSV / JSONL: the 1-based line number in the file (the CSV header is line 1). The file
  is cut into blocks at line ends and each block is parsed by pyarrow (multi-threaded), which
  keeps line numbers exact: blank lines are skipped (and counted), and a line with the wrong
  number of fields becomes a :class:`RowProblem` at its line. Quoted values spanning several
  lines are not supported (prediction files have none); such a file fails with its line.
- Parquet: the 1-based row number (a Parquet file has no lines), read with ``iter_batches``.

Numeric columns are parsed as float64 directly; only a block that holds a value that is not
a number is re-parsed as text, so that the bad values can be named (:func:`float_column`).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from numpy.typing import NDArray

from crossent.errors import CrossentError, DataFileError

FileFormat = Literal["csv", "tsv", "parquet", "jsonl"]

_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
DEFAULT_BLOCK_BYTES = 4 << 20
# a decimal number, optionally signed, with exponent; or inf / infinity / nan in any case
_NUMBER = r"^\s*[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)\s*$"


@dataclass(frozen=True)
class RowProblem:
    """One bad row: where it is and what is wrong with it."""

    line: int
    message: str
    column: str | None = None


@dataclass
class RowBatch:
    """A block of rows from one file.

    Attributes:
        path: the file.
        lines: (n,) 1-based line number (row number for Parquet) of each row in ``columns``.
        columns: the requested columns as pyarrow arrays (float64 where it parsed, else text).
        problems: rows of this block that could not be parsed at all (wrong field count,
            broken JSON); they are not in ``columns``.
        bytes_done: file offset reached after this block (for progress bars).
        blank_lines: blank lines skipped in this block.
    """

    path: Path
    lines: NDArray[np.int64]
    columns: dict[str, pa.Array]
    problems: list[RowProblem] = field(default_factory=list)
    bytes_done: int = 0
    blank_lines: int = 0

    def __len__(self) -> int:
        return int(self.lines.shape[0])

    @property
    def row_word(self) -> str:
        """How positions are named in messages: ``"line"`` or, for Parquet, ``"row"``."""
        return "row" if file_format(self.path) == "parquet" else "line"


def file_format(path: str | Path) -> FileFormat:
    """The format of ``path`` from its suffix (.csv, .tsv/.tab, .parquet/.pq, .jsonl/.ndjson)."""
    suffix = Path(path).suffix.lower()
    found = _SUFFIXES.get(suffix)
    if found is None:
        raise CrossentError(
            f"{path}: unknown file type {suffix or '(no suffix)'!r}; expected .csv, .tsv, "
            ".parquet or .jsonl"
        )
    return found


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise CrossentError(f"{path}: no such file")


def read_columns(path: str | Path) -> list[str]:
    """Column names of a file (CSV/TSV header, Parquet schema, keys of the first JSONL record)."""
    file = Path(path)
    _check_exists(file)
    kind = file_format(file)
    if kind == "parquet":
        return list(pq.ParquetFile(file).schema_arrow.names)
    with file.open("rb") as handle:
        if kind == "jsonl":
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    try:
                        record = json.loads(raw)
                    except json.JSONDecodeError as error:
                        raise DataFileError(
                            str(file), number, f"not valid JSON ({error.msg})"
                        ) from None
                    if not isinstance(record, dict):
                        raise DataFileError(str(file), number, "expected a JSON object per line")
                    return list(record)
            raise CrossentError(f"{file}: the file is empty")
        header = handle.readline()
    if not header.strip():
        raise DataFileError(str(file), 1, "the header line is empty; expected column names")
    table = pa_csv.read_csv(
        io.BytesIO(header),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
        parse_options=pa_csv.ParseOptions(delimiter="\t" if kind == "tsv" else ","),
        convert_options=pa_csv.ConvertOptions(column_types={}, strings_can_be_null=False),
    )
    return [str(value[0]).strip() for value in table.columns]


def _check_columns(path: Path, wanted: Sequence[str], available: Sequence[str]) -> None:
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
) -> Iterator[RowBatch]:
    """Yield the ``columns`` of ``path`` in blocks of about ``block_bytes`` of input.

    ``float_columns`` are parsed as float64 (falling back to text for a block that holds a
    non-number, see :func:`float_column`); other columns keep their natural type (text for
    CSV/TSV).

    Raises:
        CrossentError: unknown file type, missing file, a requested column not in the file.
    """
    file = Path(path)
    available = read_columns(file)
    _check_columns(file, columns, available)
    kind = file_format(file)
    if kind == "parquet":
        yield from _parquet_batches(file, columns, block_bytes)
    else:
        yield from _text_batches(file, kind, available, columns, float_columns, block_bytes)


def _parquet_batches(path: Path, columns: Sequence[str], block_bytes: int) -> Iterator[RowBatch]:
    parquet = pq.ParquetFile(path)
    total_rows = max(parquet.metadata.num_rows, 1)
    size = path.stat().st_size
    rows_per_batch = max(1024, block_bytes // (8 * max(len(columns), 1)))
    done = 0
    for record_batch in parquet.iter_batches(batch_size=rows_per_batch, columns=list(columns)):
        n = record_batch.num_rows
        lines = np.arange(done + 1, done + n + 1, dtype=np.int64)
        done += n
        yield RowBatch(
            path,
            lines,
            {name: record_batch.column(name) for name in columns},
            bytes_done=int(size * done / total_rows),
        )


def _blocks(
    path: Path, block_bytes: int, skip_first_line: bool
) -> Iterator[tuple[bytes, int, int]]:
    """(block of whole lines, line number of its first line, file offset after it)."""
    with path.open("rb") as handle:
        line = 1
        if skip_first_line:
            handle.readline()
            line = 2
        offset = handle.tell()
        remainder = b""
        while True:
            chunk = handle.read(block_bytes)
            data = remainder + chunk
            if not data:
                return
            if chunk:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a block: read on
                    remainder = data
                    continue
                block, remainder = data[:cut], data[cut:]
            else:
                block, remainder = data, b""
            offset += len(block)
            yield block, line, offset
            line += block.count(b"\n") + (0 if block.endswith(b"\n") else 1)


def _line_starts(block: bytes) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Start offset of each line in ``block`` and whether the line is blank."""
    raw = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    if block and not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    stripped_ends = ends.copy()
    has_cr = (ends > starts) & (raw[np.minimum(np.maximum(ends - 1, 0), len(raw) - 1)] == 13)
    stripped_ends[has_cr] -= 1
    return starts, stripped_ends == starts


def _text_batches(
    path: Path,
    kind: FileFormat,
    available: Sequence[str],
    columns: Sequence[str],
    float_columns: Sequence[str],
    block_bytes: int,
) -> Iterator[RowBatch]:
    def make(item: tuple[bytes, int, int]) -> RowBatch:
        return _text_batch(path, kind, available, columns, float_columns, *item)

    # parse the next block on a worker thread while the caller works on this one (pyarrow
    # releases the GIL); at most two parsed blocks are alive at a time
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[RowBatch] | None = None
        for item in _blocks(path, block_bytes, skip_first_line=kind != "jsonl"):
            upcoming = pool.submit(make, item)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()


def _text_batch(
    path: Path,
    kind: FileFormat,
    available: Sequence[str],
    columns: Sequence[str],
    float_columns: Sequence[str],
    block: bytes,
    first_line: int,
    offset: int,
) -> RowBatch:
    n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    line_numbers = first_line + np.arange(n_lines, dtype=np.int64)
    if b"\n\n" in block or b"\n\r\n" in block or block.startswith((b"\n", b"\r\n")):
        starts, blank = _line_starts(block)
    else:  # no blank line: line starts are only needed to locate a malformed row
        starts, blank = None, np.zeros(n_lines, dtype=bool)
    if kind == "jsonl":
        parsed, problems = _parse_json_block(block, columns, float_columns, line_numbers)
    else:
        parsed, problems = _parse_csv_block(
            path, block, kind, available, columns, float_columns, starts, line_numbers, blank
        )
    bad_lines = {problem.line for problem in problems}
    keep = ~blank
    if bad_lines:
        keep &= ~np.isin(line_numbers, np.fromiter(bad_lines, dtype=np.int64))
    lines = line_numbers[keep]
    if parsed.num_rows != lines.shape[0]:
        raise DataFileError(
            str(path),
            int(line_numbers[0]),
            f"could not match parsed rows to lines in this block ({parsed.num_rows} rows, "
            f"{lines.shape[0]} lines); are there quoted values spanning several lines?",
        )
    return RowBatch(
        path,
        lines,
        {name: _single_chunk(parsed.column(name)) for name in columns},
        problems,
        bytes_done=offset,
        blank_lines=int(blank.sum()),
    )


def _single_chunk(array: Any) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array


def _parse_csv_block(
    path: Path,
    block: bytes,
    kind: FileFormat,
    available: Sequence[str],
    columns: Sequence[str],
    float_columns: Sequence[str],
    starts: NDArray[np.int64] | None,
    line_numbers: NDArray[np.int64],
    blank: NDArray[np.bool_],
) -> tuple[pa.Table, list[RowProblem]]:
    invalid_texts: list[str] = []

    def on_invalid_row(row: Any) -> str:
        invalid_texts.append(row.text)
        return "skip"

    def parse(types: dict[str, pa.DataType]) -> pa.Table:
        return pa_csv.read_csv(
            io.BytesIO(block),
            read_options=pa_csv.ReadOptions(column_names=list(available)),
            parse_options=pa_csv.ParseOptions(
                delimiter="\t" if kind == "tsv" else ",",
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(columns), column_types=types, strings_can_be_null=True
            ),
        )

    float_types = {name: pa.float64() for name in float_columns}
    try:
        table = parse(float_types)
    except pa.ArrowInvalid:
        invalid_texts.clear()
        try:
            table = parse({name: pa.string() for name in float_columns})
        except pa.ArrowInvalid as error:
            raise DataFileError(str(path), int(line_numbers[0]), str(error)) from None
    problems: list[RowProblem] = []
    if invalid_texts:
        # locate each skipped row's line by its text, in order
        if starts is None:
            starts, _ = _line_starts(block)
        ends = np.append(starts[1:] - 1, len(block))
        candidates = iter(
            (int(number), block[start:end].rstrip(b"\r\n").decode(errors="replace"))
            for number, start, end, is_blank in zip(line_numbers, starts, ends, blank, strict=True)
            if not is_blank
        )
        delimiter = "\t" if kind == "tsv" else ","
        for text in invalid_texts:
            wanted = text.rstrip("\r\n")
            for number, line_text in candidates:
                if line_text == wanted:
                    fields = len(wanted.split(delimiter))
                    problems.append(
                        RowProblem(
                            number,
                            f"the line has {fields} fields, expected {len(available)}: {wanted!r}",
                        )
                    )
                    break
    return table, problems


def _parse_json_block(
    block: bytes,
    columns: Sequence[str],
    float_columns: Sequence[str],
    line_numbers: NDArray[np.int64],
) -> tuple[pa.Table, list[RowProblem]]:
    schema = pa.schema(
        [(name, pa.float64() if name in float_columns else pa.string()) for name in columns]
    )
    try:
        table = pa_json.read_json(
            io.BytesIO(block),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
        return table.select(list(columns)), []
    except pa.ArrowInvalid:
        pass
    # slow path for a block with a broken line: parse line by line to name it
    values: dict[str, list[Any]] = {name: [] for name in columns}
    problems: list[RowProblem] = []
    text = block.decode("utf-8", errors="replace")
    for number, raw in zip(line_numbers, text.split("\n"), strict=False):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            problems.append(RowProblem(int(number), f"not valid JSON ({error.msg})"))
            continue
        if not isinstance(record, dict):
            problems.append(RowProblem(int(number), "expected a JSON object"))
            continue
        for name in columns:
            value = record.get(name)
            values[name].append(None if value is None else str(value))
    table = pa.table({name: pa.array(values[name], type=pa.string()) for name in columns})
    return table, problems


@dataclass(frozen=True)
class FloatColumn:
    """A column as float64 with masks of the rows that were empty or not a number."""

    values: NDArray[np.float64]
    missing: NDArray[np.bool_]
    not_number: NDArray[np.bool_]


def _view(array: pa.Array, dtype: type[np.generic]) -> NDArray[Any]:
    """Zero-copy NumPy view of a null-free fixed-width pyarrow array.

    Reads the data buffer directly: ``Array.to_numpy`` would import pandas (about a second
    and 100 MB) on first use.
    """
    width = np.dtype(dtype).itemsize
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * width
    )


def _bool_mask(array: pa.Array) -> NDArray[np.bool_]:
    """A pyarrow boolean array (nulls as False) as NumPy (via uint8: booleans are bit-packed)."""
    return _view(array.fill_null(False).cast(pa.uint8()), np.uint8).view(np.bool_)


def float_column(array: pa.Array) -> FloatColumn:
    """``array`` as float64; nulls and non-numbers are flagged (their values are NaN)."""
    n = len(array)
    no_flags = np.zeros(n, dtype=bool)
    if array.null_count == 0:
        missing = no_flags
    else:
        missing = _bool_mask(array.is_null())
    kind = array.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        numbers = array.cast(pa.float64())
        if numbers.null_count:
            numbers = numbers.fill_null(np.nan)
        values = _view(numbers, np.float64)
        return FloatColumn(values, missing, no_flags)
    text = array.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(text)
    missing = missing | _bool_mask(pc.equal(trimmed, ""))
    numeric = pc.match_substring_regex(trimmed, _NUMBER, ignore_case=True).fill_null(False)
    not_number = ~_bool_mask(numeric) & ~missing
    cleaned = pc.if_else(numeric, trimmed, pa.scalar("nan"))
    values = _view(cleaned.cast(pa.float64()), np.float64)
    return FloatColumn(values, missing, not_number)


def text_values(array: pa.Array) -> NDArray[Any]:
    """``array`` as a NumPy array of Python strings (None for nulls), for label columns."""
    values = array.cast(pa.string()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=object)


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number the way :func:`float_column` reads it."""
    return re.match(_NUMBER, text, flags=re.IGNORECASE) is not None
