"""Delimited interaction files through :mod:`crossent.io`, checked column by column.

:func:`read_delimited` reads the file with the project's one reader (pyarrow, in blocks,
keeping line numbers, one rule for missing values) and checks each column by its
:data:`Kind`; the first bad value raises a :class:`~crossent.errors.DataFileError` naming
file, line and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossent import io
from crossent.errors import DataFileError
from crossent.io import tables
from crossent.recsys.data.interactions import Interactions, contiguous_ids

#: How a column is parsed: "int" / "float" (typed, checked), "token" (an id kept as text),
#: "id" (integers when every value is one, else text), "time" (numbers, or dates /
#: date-times as pyarrow infers them).
Kind = Literal["int", "float", "token", "id", "time"]

_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "token": pa.string()}


def read_delimited(
    path: Path,
    *,
    delimiter: str,
    names: list[str] | None,
    skip: int,
    kinds: dict[str, Kind],
) -> pa.Table:
    """The ``kinds`` columns of a delimited text file, checked; bad lines raise.

    ``names``: the column names (None: from the header line); ``skip``: 1 when the first
    line is a header.
    """
    text = io.TextOptions(delimiter, names=names, header=skip > 0)
    types = {name: _ARROW_TYPES[kind] for name, kind in kinds.items() if kind in _ARROW_TYPES}
    table = io.read_table(path, list(kinds), types=types, text=text)
    tables.check_lines(table)
    checked: dict[str, pa.Array] = {}
    for name, kind in kinds.items():
        if kind == "int":
            checked[name] = pa.array(tables.numbers(table, name, integer=True))
        elif kind == "float":
            checked[name] = pa.array(tables.numbers(table, name))
        elif kind in ("id", "token"):
            checked[name] = tables.ids(table, name)
        else:
            checked[name] = _time_column(table, name)
    return pa.table(checked)


def _time_column(table: io.Table, name: str) -> pa.Array:
    array = table.columns[name].combine_chunks()
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        if array.null_count:
            raise DataFileError(
                str(table.path),
                int(table.lines[int(np.argmax(np.asarray(array.is_null())))]),
                "missing value",
                name,
            )
        return array
    if pa.types.is_integer(array.type) and array.null_count == 0:
        return array
    return pa.array(tables.numbers(table, name))


def _arrow_ids(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous ids (ascending original id) of an id column, without a Python loop."""
    if pa.types.is_integer(column.type):
        return contiguous_ids(np.asarray(column))
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    values = encoded.dictionary.to_numpy(zero_copy_only=False)
    if values.dtype == object:
        values = values.astype(str)
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[encoded.indices.to_numpy()], values[order]


def _timestamps(path: Path, name: str, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(column.type):  # -> float seconds since 1970 (UTC), any unit
        per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[column.type.unit]
        return np.asarray(column.cast(pa.int64())) / per_second
    if pa.types.is_date(column.type):
        return np.asarray(column.cast(pa.date32()).cast(pa.int32())).astype(np.int64) * 86400
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.asarray(column)
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
        extras[role] = None if name is None else np.asarray(table.column(name))
    return Interactions(
        user=user,
        item=item,
        timestamp=timestamp,
        rating=extras["rating"],
        watch_time=extras["watch_time"],
        user_ids=user_ids,
        item_ids=item_ids,
    )
