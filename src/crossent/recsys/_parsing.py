"""Vectorised parsing of delimited interaction files, with line-accurate error messages.

pyarrow reads the file in one vectorised pass; only when that fails (or yields a missing or
non-finite value) does :func:`locate_bad_line` scan line by line, to name the first bad line
and column in a :class:`~crossent.errors.DataFileError`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crossent.errors import DataFileError
from crossent.recsys.data import Interactions, contiguous_ids

#: How a column is parsed: "int" / "float" (typed, checked), "id" (text), "time" (inferred).
Kind = Literal["int", "float", "id", "time"]

_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "id": pa.string()}


def split_fields(text_lines: Iterator[str], delimiter: str) -> Iterator[list[str]]:
    """Fields of each line: CSV quoting rules for one-character delimiters, else a plain split."""
    if len(delimiter) == 1:
        yield from csv.reader(text_lines, delimiter=delimiter)
    else:
        for line in text_lines:
            yield line.rstrip("\r\n").split(delimiter)


def _field_problem(value: str, kind: Kind) -> str | None:
    text = value.strip()
    if text == "" or text.lower() in ("nan", "na", "null", "n/a", "none"):
        return f"missing value {value!r}"
    if kind == "int":
        try:
            int(text)
        except ValueError:
            return f"{value!r} is not an integer"
    elif kind == "float":
        try:
            number = float(text)
        except ValueError:
            return f"{value!r} is not a number"
        if not np.isfinite(number):
            return f"{value!r} is not a finite number"
    return None


def locate_bad_line(
    path: Path, delimiter: str, skip: int, names: list[str], kinds: dict[str, Kind]
) -> DataFileError | None:
    """Scan ``path`` line by line and describe its first malformed line (slow path)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        lines = (line for line in handle)
        line_number = 0
        for line_number, fields in enumerate(split_fields(lines, delimiter), start=1):
            if line_number <= skip or not fields or fields == [""]:
                continue
            if len(fields) != len(names):
                return DataFileError(
                    str(path),
                    line_number,
                    f"expected {len(names)} fields separated by {delimiter!r}, got {len(fields)}",
                )
            for name, value in zip(names, fields, strict=True):
                problem = _field_problem(value, kinds[name]) if name in kinds else None
                if problem is not None:
                    return DataFileError(str(path), line_number, problem, column=name)
    return None


def read_delimited(
    path: Path,
    *,
    delimiter: str,
    names: list[str],
    skip: int,
    kinds: dict[str, Kind],
) -> pa.Table:
    """Read the ``kinds`` columns of a delimited text file with pyarrow; bad lines raise."""
    if len(delimiter) == 1:
        source: str | io.BytesIO = str(path)
        parse_delimiter = delimiter
    else:  # pyarrow takes one-byte delimiters; "::" -> "\t" keeps line numbers unchanged
        source = io.BytesIO(path.read_bytes().replace(delimiter.encode(), b"\t"))
        parse_delimiter = "\t"
    column_types = {name: _ARROW_TYPES[kind] for name, kind in kinds.items() if kind != "time"}
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip),
            parse_options=pacsv.ParseOptions(delimiter=parse_delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, include_columns=list(kinds)
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        located = locate_bad_line(path, delimiter, skip, names, kinds)
        raise located or DataFileError(str(path), None, str(error)) from None
    for name, kind in kinds.items():
        column = table.column(name)
        bad = column.null_count > 0
        if kind == "float" and not bad:
            bad = not bool(np.isfinite(column.to_numpy()).all())
        if bad:
            located = locate_bad_line(path, delimiter, skip, names, kinds)
            raise located or DataFileError(str(path), None, "missing value", column=name)
    return table


def _arrow_ids(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous ids (ascending original id) of an id column, without a Python loop."""
    if pa.types.is_integer(column.type):
        return contiguous_ids(column.to_numpy())
    encoded = pc.dictionary_encode(column).combine_chunks()
    values = encoded.dictionary.to_numpy(zero_copy_only=False)
    if values.dtype == object:
        values = values.astype(str)
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[encoded.indices.to_numpy()], values[order]


def _timestamps(path: Path, name: str, column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):  # -> float seconds since 1970 (UTC), any unit
        per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[column.type.unit]
        return column.cast(pa.int64()).to_numpy() / per_second
    if pa.types.is_date(column.type):
        return column.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.int64) * 86400
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy()
    raise DataFileError(
        str(path), None, f"timestamps must be numbers or dates, got {column.type}", column=name
    )


def build_interactions(path: Path, table: pa.Table, columns: dict[str, str | None]) -> Interactions:
    """Interactions from a table whose ``columns[role]`` names hold each role's values."""
    user, user_ids = _arrow_ids(table.column(columns["user"]))
    item, item_ids = _arrow_ids(table.column(columns["item"]))
    time_name = columns.get("timestamp")
    if time_name is None:  # no time column: row order is time order
        timestamp = np.arange(table.num_rows, dtype=np.int64)
    else:
        timestamp = _timestamps(path, time_name, table.column(time_name))
    extras: dict[str, np.ndarray | None] = {}
    for role in ("rating", "watch_time"):
        name = columns.get(role)
        extras[role] = None if name is None else table.column(name).to_numpy()
    return Interactions(
        user=user,
        item=item,
        timestamp=timestamp,
        rating=extras["rating"],
        watch_time=extras["watch_time"],
        user_ids=user_ids,
        item_ids=item_ids,
    )
