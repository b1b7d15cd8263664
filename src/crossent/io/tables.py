"""Checked columns of a whole :class:`~crossent.io.reader.Table`: numbers, integers, ids.

Each function returns the column as NumPy (or trimmed text for ids) or raises a
:class:`~crossent.errors.DataFileError` at the first bad row, naming its file, line and
column, with the project's wording: ``missing value``, ``value 'x' is not a number``,
``value '1.5' is not an integer``, ``value 'inf' is not finite``. Missing values follow
:mod:`crossent.io.values`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from crossent.errors import DataFileError
from crossent.io.reader import Table
from crossent.io.values import float_column, missing_mask, trimmed_text


def _fail(table: Table, row: int, message: str, column: str | None = None) -> DataFileError:
    line = int(table.lines[row])
    if table.row_word == "row":
        return DataFileError(str(table.path), None, f"row {line}: {message}", column)
    return DataFileError(str(table.path), line, message, column)


def check_lines(table: Table) -> None:
    """Raise at the first line that could not be parsed at all (wrong number of fields)."""
    if table.problems:
        first = min(table.problems, key=lambda problem: problem.line)
        raise DataFileError(str(table.path), first.line, first.message, first.column)


def _raw_text(table: Table, name: str, row: int) -> str:
    return str(table.columns[name].combine_chunks()[row].as_py()).strip()


def numbers(
    table: Table, name: str, *, integer: bool = False, finite: bool = True
) -> NDArray[np.float64] | NDArray[np.int64]:
    """Column ``name`` as float64 (int64 with ``integer``), every value checked."""
    array = table.columns[name].combine_chunks()
    if integer and pa.types.is_integer(array.type) and array.null_count == 0:
        return np.asarray(array, dtype=np.int64)
    column = float_column(array)
    values = column.values
    bad = column.missing | column.not_number
    if finite:
        bad |= column.parsed & ~np.isfinite(values)
    if integer:
        with np.errstate(invalid="ignore"):
            bad |= column.parsed & (values != np.round(values))
    if bad.any():
        row = int(np.argmax(bad))
        if column.missing[row]:
            raise _fail(table, row, "missing value", name)
        text = _raw_text(table, name, row)
        if column.not_number[row]:
            kind = "an integer" if integer else "a number"
            raise _fail(table, row, f"value {text!r} is not {kind}", name)
        if not np.isfinite(values[row]):
            raise _fail(table, row, f"value {text!r} is not finite", name)
        raise _fail(table, row, f"value {text!r} is not an integer", name)
    return values.astype(np.int64) if integer else values


def ids(table: Table, name: str) -> pa.Array:
    """Column ``name`` as an id column (integers as they are, else trimmed text), no missing."""
    array = table.columns[name].combine_chunks()
    if pa.types.is_integer(array.type):
        if array.null_count:
            raise _fail(table, int(np.argmax(np.asarray(array.is_null()))), "missing value", name)
        return array
    text = trimmed_text(array)
    missing = missing_mask(text)
    if missing.any():
        raise _fail(table, int(np.argmax(missing)), "missing value", name)
    return text
