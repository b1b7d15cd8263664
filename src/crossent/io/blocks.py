"""Cut a text file (CSV, TSV, JSONL; maybe compressed) into blocks of whole lines and parse them.

Each block is parsed by pyarrow, which keeps line numbers exact: blank lines are skipped (and
counted), and a line with the wrong number of fields becomes a :class:`RowProblem` at its line.
Quoted values spanning several lines are not supported (prediction files have none); such a
file fails with its line. Missing values follow :mod:`crossent.io.values`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
from numpy.typing import NDArray

from crossent.errors import DataFileError
from crossent.io.formats import FileFormat, open_text
from crossent.io.values import ARROW_NULL_VALUES


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
        path: the file (or, for data that is not a file, a name such as ``partition 3``).
        lines: (n,) 1-based line number (row number for Parquet) of each row in ``columns``.
        columns: the requested columns as pyarrow arrays (float64 where it parsed, else text).
        problems: rows of this block that could not be parsed at all (wrong field count,
            broken JSON); they are not in ``columns``.
        bytes_done: file offset reached after this block (for progress bars).
        blank_lines: blank lines skipped in this block.
        row_word: how positions are named in messages: ``"line"``, or ``"row"`` (Parquet).
        where: extra location put before the row in messages, e.g. ``row group 3``.
    """

    path: Path | str
    lines: NDArray[np.int64]
    columns: dict[str, pa.Array]
    problems: list[RowProblem] = field(default_factory=list)
    bytes_done: int = 0
    blank_lines: int = 0
    row_word: str = "line"
    where: str = ""

    def __len__(self) -> int:
        return int(self.lines.shape[0])


def line_blocks(
    path: Path, block_bytes: int, skip_first_line: bool
) -> Iterator[tuple[bytes, int, int]]:
    """(block of whole lines, line number of its first line, raw file offset after it)."""
    stream, raw = open_text(path)
    with raw, stream:
        line = 1
        remainder = b""
        if skip_first_line:
            while b"\n" not in remainder and (chunk := stream.read(block_bytes)):
                remainder += chunk
            remainder = remainder[remainder.find(b"\n") + 1 :] if b"\n" in remainder else b""
            line = 2
        while True:
            chunk = stream.read(block_bytes)
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
            yield block, line, raw.tell()
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


@dataclass(frozen=True)
class TextLayout:
    """What a block parser needs to know about the file.

    ``types`` are parsed as given (float64, int64, ...); a block where one does not parse is
    read again with those columns as text, so that the caller can name the bad value.
    ``separator`` may be several characters (MovieLens ``::``): it is replaced by a tab in each
    block before parsing, which keeps line numbers.
    """

    path: Path
    kind: FileFormat
    available: Sequence[str]
    columns: Sequence[str]
    types: Mapping[str, pa.DataType]
    separator: str


def text_batch(layout: TextLayout, block: bytes, first_line: int, offset: int) -> RowBatch:
    """Parse one block of whole lines into a :class:`RowBatch`."""
    n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    line_numbers = first_line + np.arange(n_lines, dtype=np.int64)
    if b"\n\n" in block or b"\n\r\n" in block or block.startswith((b"\n", b"\r\n")):
        starts, blank = _line_starts(block)
    else:  # no blank line: line starts are only needed to locate a malformed row
        starts, blank = None, np.zeros(n_lines, dtype=bool)
    if layout.kind == "jsonl":
        parsed, problems = _parse_json_block(layout, block, line_numbers)
    else:
        parsed, problems = _parse_csv_block(layout, block, starts, line_numbers, blank)
    bad_lines = {problem.line for problem in problems}
    keep = ~blank
    if bad_lines:
        keep &= ~np.isin(line_numbers, np.fromiter(bad_lines, dtype=np.int64))
    lines = line_numbers[keep]
    if parsed.num_rows != lines.shape[0]:
        raise DataFileError(
            str(layout.path),
            int(line_numbers[0]),
            f"could not match parsed rows to lines in this block ({parsed.num_rows} rows, "
            f"{lines.shape[0]} lines); are there quoted values spanning several lines?",
        )
    return RowBatch(
        layout.path,
        lines,
        {name: single_chunk(parsed.column(name)) for name in layout.columns},
        problems,
        bytes_done=offset,
        blank_lines=int(blank.sum()),
    )


def single_chunk(array: Any) -> pa.Array:
    """A ChunkedArray as one Array (no copy when it has one chunk)."""
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return array


def _parse_csv_block(
    layout: TextLayout,
    block: bytes,
    starts: NDArray[np.int64] | None,
    line_numbers: NDArray[np.int64],
    blank: NDArray[np.bool_],
) -> tuple[pa.Table, list[RowProblem]]:
    invalid_texts: list[str] = []

    def on_invalid_row(row: Any) -> str:
        invalid_texts.append(row.text)
        return "skip"

    separator = layout.separator
    if len(separator) > 1:
        block, separator = block.replace(separator.encode(), b"\t"), "\t"

    def parse(types: dict[str, pa.DataType]) -> pa.Table:
        return pa_csv.read_csv(
            io.BytesIO(block),
            read_options=pa_csv.ReadOptions(column_names=list(layout.available)),
            parse_options=pa_csv.ParseOptions(
                delimiter=separator,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(layout.columns),
                column_types=types,
                null_values=ARROW_NULL_VALUES,
                strings_can_be_null=False,
            ),
        )

    try:
        table = parse(dict(layout.types))
    except pa.ArrowInvalid:  # a value of the wrong type somewhere: text, so it can be named
        invalid_texts.clear()
        try:
            table = parse({name: pa.string() for name in layout.types})
        except pa.ArrowInvalid as error:
            raise DataFileError(str(layout.path), int(line_numbers[0]), str(error)) from None
    problems: list[RowProblem] = []
    if invalid_texts:
        if starts is None:
            starts, _ = _line_starts(block)
        problems = _locate_invalid(
            layout, separator, block, starts, line_numbers, blank, invalid_texts
        )
    return table, problems


def _locate_invalid(
    layout: TextLayout,
    separator: str,
    block: bytes,
    starts: NDArray[np.int64],
    line_numbers: NDArray[np.int64],
    blank: NDArray[np.bool_],
    invalid_texts: list[str],
) -> list[RowProblem]:
    """Each skipped row's line, found by its text, in order."""
    ends = np.append(starts[1:] - 1, len(block))
    candidates = iter(
        (int(number), block[start:end].rstrip(b"\r\n").decode(errors="replace"))
        for number, start, end, is_blank in zip(line_numbers, starts, ends, blank, strict=True)
        if not is_blank
    )
    problems = []
    expected = len(layout.available)
    for text in invalid_texts:
        wanted = text.rstrip("\r\n")
        for number, line_text in candidates:
            if line_text == wanted:
                fields = len(wanted.split(separator))
                message = f"the line has {fields} fields, expected {expected}: {wanted!r}"
                problems.append(RowProblem(number, message))
                break
    return problems


def _json_type(kind: pa.DataType) -> pa.DataType:
    """pyarrow's JSON reader cannot build dictionary columns: those are read as text."""
    return pa.string() if pa.types.is_dictionary(kind) else kind


def _parse_json_block(
    layout: TextLayout, block: bytes, line_numbers: NDArray[np.int64]
) -> tuple[pa.Table, list[RowProblem]]:
    columns = layout.columns
    schema = pa.schema(
        [(name, _json_type(layout.types.get(name, pa.string()))) for name in columns]
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
    # slow path for a block with a broken line or a non-number: line by line, to name it
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
