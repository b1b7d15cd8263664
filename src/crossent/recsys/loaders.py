"""Read interaction logs from files into :class:`~crossent.recsys.data.Interactions`.

Formats: MovieLens ``u.data`` (100K: tab-separated, no header), ``ratings.dat`` (1M/10M: ``::``
separated), ``ratings.csv`` (latest / 20M / 25M: header ``userId,movieId,rating,timestamp``);
RecBole atomic ``.inter`` files (typed header ``user_id:token``); any CSV/TSV/Parquet file with
named columns. Parsing is vectorised (pyarrow), so MovieLens 25M loads in seconds; when a file
does not parse, a line-by-line scan finds the first bad line so the error names file, line and
column.
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
import pyarrow.parquet as pq

from crossent.errors import CrossentError, DataFileError
from crossent.recsys.data import Interactions, contiguous_ids

Kind = Literal["int", "float", "id", "time"]
Format = Literal["auto", "movielens", "recbole", "csv", "parquet"]

_ML_NAMES = ("user", "item", "rating", "timestamp")
_ML_KINDS: dict[str, Kind] = {"user": "int", "item": "int", "rating": "float", "timestamp": "int"}
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "id": pa.string()}

#: Column names tried, in order, when a generic table's columns are not given.
GUESSES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userId", "uid", "UserID"),
    "item": ("item", "item_id", "itemId", "movieId", "video", "video_id", "MovieID", "iid"),
    "timestamp": ("timestamp", "time", "ts", "Timestamp", "datetime"),
    "rating": ("rating", "Rating", "score"),
    "watch_time": ("watch_time", "watchTime", "duration", "play_time"),
}


def _split_fields(text_lines: Iterator[str], delimiter: str) -> Iterator[list[str]]:
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


def _locate_bad_line(
    path: Path, delimiter: str, skip: int, names: list[str], kinds: dict[str, Kind]
) -> DataFileError | None:
    """Scan ``path`` line by line and describe its first malformed line (slow path)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        lines = (line for line in handle)
        line_number = 0
        for line_number, fields in enumerate(_split_fields(lines, delimiter), start=1):
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


def _read_delimited(
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
        located = _locate_bad_line(path, delimiter, skip, names, kinds)
        raise located or DataFileError(str(path), None, str(error)) from None
    for name, kind in kinds.items():
        column = table.column(name)
        bad = column.null_count > 0
        if kind == "float" and not bad:
            bad = not bool(np.isfinite(column.to_numpy()).all())
        if bad:
            located = _locate_bad_line(path, delimiter, skip, names, kinds)
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


def _build(path: Path, table: pa.Table, columns: dict[str, str | None]) -> Interactions:
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


def _require_file(path: str | Path) -> Path:
    resolved = Path(path)
    if not resolved.exists():
        raise CrossentError(f"path {str(resolved)!r} does not exist")
    return resolved


def load_movielens(path: str | Path) -> Interactions:
    """Load MovieLens ratings: ``u.data``, ``ratings.dat`` or ``ratings.csv``.

    ``path`` is the ratings file or a MovieLens folder (``ratings.csv``, ``ratings.dat`` and
    ``u.data`` are looked for, in that order). The format is recognised by file name, else
    by content. Ratings are kept (see :func:`~crossent.recsys.data.implicit`).

    Raises:
        DataFileError: a malformed line (file, line number and column in the message).
        CrossentError: no ratings file, or a ``.csv`` without the MovieLens header.
    """
    resolved = _require_file(path)
    if resolved.is_dir():
        for name in ("ratings.csv", "ratings.dat", "u.data"):
            if (resolved / name).is_file():
                resolved = resolved / name
                break
        else:
            raise CrossentError(
                f"no MovieLens ratings file (ratings.csv, ratings.dat, u.data) in {str(path)!r}"
            )
    with open(resolved, encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    names = list(_ML_NAMES)
    if resolved.name.endswith(".dat") or "::" in first:
        table = _read_delimited(resolved, delimiter="::", names=names, skip=0, kinds=_ML_KINDS)
    elif resolved.suffix == ".csv" or ("," in first and "\t" not in first):
        header = [field.strip().strip('"') for field in first.strip().split(",")]
        if header != ["userId", "movieId", "rating", "timestamp"]:
            raise DataFileError(
                str(resolved),
                1,
                f"expected the MovieLens header userId,movieId,rating,timestamp, got "
                f"{first.strip()!r} (use load_table for other CSV files)",
            )
        table = _read_delimited(resolved, delimiter=",", names=names, skip=1, kinds=_ML_KINDS)
    else:  # u.data: tab-separated, no header
        table = _read_delimited(resolved, delimiter="\t", names=names, skip=0, kinds=_ML_KINDS)
    return _build(
        resolved,
        table,
        {"user": "user", "item": "item", "timestamp": "timestamp", "rating": "rating"},
    )


def load_recbole(
    path: str | Path,
    *,
    user: str = "user_id",
    item: str = "item_id",
    timestamp: str | None = "timestamp",
    rating: str | None = "rating",
    watch_time: str | None = None,
) -> Interactions:
    """Load a RecBole atomic ``.inter`` file (tab-separated, header ``name:type``).

    Header types: ``token`` (an id, kept as a string), ``float``; ``token_seq`` / ``float_seq``
    columns are ignored. ``timestamp`` and ``rating`` are used when present (``timestamp``
    absent: row order is time order); pass other names to map different fields.

    Raises:
        DataFileError: a malformed header or line (file, line and column named).
    """
    resolved = _require_file(path)
    with open(resolved, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    names, types = [], {}
    for position, field in enumerate(header):
        name, _, field_type = field.partition(":")
        if field_type not in ("token", "float", "token_seq", "float_seq"):
            raise DataFileError(
                str(resolved),
                1,
                f"header field {position + 1} {field!r} is not 'name:type' with type token, "
                "float, token_seq or float_seq",
            )
        names.append(name)
        types[name] = field_type
    wanted = {
        "user": user,
        "item": item,
        "timestamp": timestamp,
        "rating": rating,
        "watch_time": watch_time,
    }
    for role in ("user", "item", "watch_time"):
        required = wanted[role]
        if required is not None and required not in types:
            raise DataFileError(
                str(resolved), 1, f"no {role} column {required!r}; the header has {names}"
            )
    columns = {role: name if name in types else None for role, name in wanted.items()}
    kinds: dict[str, Kind] = {}
    for role, column in columns.items():
        if column is None:
            continue
        if role in ("user", "item"):
            kinds[column] = "id"
        elif types[column] != "float":
            raise DataFileError(
                str(resolved),
                1,
                f"{role} column {column!r} must be float, header says {types[column]}",
                column=column,
            )
        else:
            kinds[column] = "float"
    table = _read_delimited(resolved, delimiter="\t", names=names, skip=1, kinds=kinds)
    return _build(resolved, table, columns)


def _pick(role: str, given: str | None, available: list[str], required: bool) -> str | None:
    if given is not None:
        return given
    for candidate in GUESSES[role]:
        if candidate in available:
            return candidate
    if required:
        raise CrossentError(
            f"no {role} column given and none of {list(GUESSES[role])} is present; "
            f"columns are {available} (pass {role}=NAME)"
        )
    return None


def load_table(
    path: str | Path,
    *,
    user: str | None = None,
    item: str | None = None,
    timestamp: str | None = None,
    rating: str | None = None,
    watch_time: str | None = None,
    delimiter: str | None = None,
    parquet: bool | None = None,
) -> Interactions:
    """Load a CSV/TSV (with a header row) or Parquet file with named columns.

    Column names not given are guessed from :data:`GUESSES` (``user_id``, ``item_id``,
    ``timestamp``, ...); user and item are required, the rest optional (no timestamp: row order
    is time order). Ids may be integers or strings; timestamps numbers, or dates / date-times
    (converted to seconds since 1970, UTC).
    ``delimiter`` defaults to tab for ``.tsv`` and comma otherwise; ``parquet`` defaults to
    whether the name ends in ``.parquet`` / ``.pq``.

    Raises:
        CrossentError: a named column is missing (the message lists the file's columns).
        DataFileError: a malformed line or missing value (file, line or row, column named).
    """
    resolved = _require_file(path)
    if parquet is None:
        parquet = resolved.suffix.lower() in (".parquet", ".pq")
    delimiter = delimiter or ("\t" if resolved.suffix.lower() == ".tsv" else ",")
    if parquet:
        available = list(pq.read_schema(resolved).names)
    else:
        with open(resolved, encoding="utf-8", errors="replace", newline="") as handle:
            available = next(_split_fields(iter([handle.readline()]), delimiter), [])
    given = {
        "user": user,
        "item": item,
        "timestamp": timestamp,
        "rating": rating,
        "watch_time": watch_time,
    }
    columns: dict[str, str | None] = {}
    for role, name in given.items():
        picked = _pick(role, name, available, required=role in ("user", "item"))
        if picked is not None and picked not in available:
            raise CrossentError(
                f"{role} column {picked!r} is not in {str(resolved)!r}; columns are {available}"
            )
        columns[role] = picked
    role_kinds: dict[str, Kind] = {"user": "id", "item": "id", "timestamp": "time"}
    kinds: dict[str, Kind] = {}
    for role, column in columns.items():
        if column is not None:
            kinds[column] = role_kinds.get(role, "float")
    if parquet:
        table = pq.read_table(resolved, columns=list(kinds))
        _check_parquet(resolved, table, kinds)
        return _build(resolved, table, columns)
    # ids and times: let pyarrow infer the type (integers, strings, dates)
    inferred: dict[str, Kind] = {
        name: "time" if kind == "id" else kind for name, kind in kinds.items()
    }
    table = _read_delimited(resolved, delimiter=delimiter, names=available, skip=1, kinds=inferred)
    time_name = columns["timestamp"]
    if time_name is not None and pa.types.is_string(table.column(time_name).type):
        # a non-numeric entry made pyarrow read the times as text: name the first one
        located = _locate_bad_line(
            resolved, delimiter, 1, available, {**inferred, time_name: "float"}
        )
        if located is not None:
            raise located
    return _build(resolved, table, columns)


def _check_parquet(path: Path, table: pa.Table, kinds: dict[str, Kind]) -> None:
    for name, kind in kinds.items():
        column = table.column(name)
        if kind == "float" and not (
            pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
        ):
            raise DataFileError(
                str(path), None, f"expected numbers, got {column.type}", column=name
            )
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataFileError(str(path), None, f"row {row} has no value", column=name)
        if kind == "float":
            values = column.to_numpy().astype(np.float64)
            if not np.isfinite(values).all():
                row = int(np.flatnonzero(~np.isfinite(values))[0])
                raise DataFileError(
                    str(path), None, f"row {row} value {values[row]} is not finite", column=name
                )


def load_interactions(
    path: str | Path,
    format: Format = "auto",
    **columns: str | None,
) -> Interactions:
    """Load an interaction log, recognising the format from the path when ``format="auto"``.

    "auto": a folder or ``u.data`` / ``*.dat`` / a CSV with the MovieLens header -> MovieLens;
    ``*.inter`` -> RecBole; ``*.parquet`` / ``*.pq`` and other CSV/TSV -> :func:`load_table`.
    ``columns`` (``user=``, ``item=``, ``timestamp=``, ``rating=``, ``watch_time=``) are passed
    to the RecBole / table loaders.
    """
    if format not in ("auto", "movielens", "recbole", "csv", "parquet"):
        raise CrossentError(
            f"format = {format!r} must be one of auto, movielens, recbole, csv, parquet"
        )
    resolved = _require_file(path)
    if format == "auto":
        suffix = resolved.suffix.lower()
        if resolved.is_dir() or resolved.name == "u.data" or suffix == ".dat":
            format = "movielens"
        elif suffix == ".inter":
            format = "recbole"
        elif suffix in (".parquet", ".pq"):
            format = "parquet"
        else:
            with open(resolved, encoding="utf-8", errors="replace") as handle:
                first = handle.readline().strip()
            movielens_csv = first == "userId,movieId,rating,timestamp"
            format = "movielens" if movielens_csv and not columns else "csv"
    if format == "movielens":
        if columns:
            raise CrossentError(f"MovieLens files have fixed columns; got {sorted(columns)}")
        return load_movielens(resolved)
    if format == "recbole":
        return load_recbole(resolved, **columns)  # type: ignore[arg-type]
    return load_table(resolved, parquet=format == "parquet", **columns)  # type: ignore[arg-type]
