"""Read interaction logs from files into :class:`~crossent.recsys.data.interactions.Interactions`.

Formats: MovieLens ``u.data`` (100K: tab-separated, no header), ``ratings.dat`` (1M/10M: ``::``
separated), ``ratings.csv`` (latest / 20M / 25M: header ``userId,movieId,rating,timestamp``);
RecBole atomic ``.inter`` files (typed header ``user_id:token``); SASRec's sequence files
(``user item`` per line, no header, line order = time order, as in its ``Video.txt``); any
CSV/TSV/Parquet file with named columns. Parsing is vectorised (pyarrow), so MovieLens 25M
loads in seconds; when a file does not parse, a line-by-line scan finds the first bad line so
the error names file, line and column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crossent import io
from crossent._validation.choices import DataFormat as Format
from crossent._validation.choices import check_choice
from crossent.errors import CrossentError, DataFileError
from crossent.io.columns import ROLE_NAMES
from crossent.recsys.data._parsing import Kind, build_interactions, read_delimited
from crossent.recsys.data.interactions import Interactions

_ML_NAMES = ("user", "item", "rating", "timestamp")
_ML_KINDS: dict[str, Kind] = {"user": "int", "item": "int", "rating": "float", "timestamp": "int"}

#: Column names tried (ignoring case) when a generic table's columns are not given.
GUESSES: dict[str, tuple[str, ...]] = {
    role: ROLE_NAMES[role] for role in ("user", "item", "timestamp", "rating", "watch_time")
}


def _require_file(path: str | Path) -> Path:
    resolved = Path(path)
    if not resolved.exists():
        raise io.missing_file(resolved)
    return resolved


def load_movielens(path: str | Path) -> Interactions:
    """Load MovieLens ratings: ``u.data``, ``ratings.dat`` or ``ratings.csv``.

    ``path`` is the ratings file or a MovieLens folder (``ratings.csv``, ``ratings.dat`` and
    ``u.data`` are looked for, in that order). The format is recognised by file name, else
    by content. Ratings are kept (see :func:`~crossent.recsys.data.interactions.implicit`).

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
        table = read_delimited(resolved, delimiter="::", names=names, skip=0, kinds=_ML_KINDS)
    elif resolved.suffix == ".csv" or ("," in first and "\t" not in first):
        header = [field.strip().strip('"') for field in first.strip().split(",")]
        if header != ["userId", "movieId", "rating", "timestamp"]:
            raise DataFileError(
                str(resolved),
                1,
                f"expected the MovieLens header userId,movieId,rating,timestamp, got "
                f"{first.strip()!r} (use load_table for other CSV files)",
            )
        table = read_delimited(resolved, delimiter=",", names=names, skip=1, kinds=_ML_KINDS)
    else:  # u.data: tab-separated, no header
        table = read_delimited(resolved, delimiter="\t", names=names, skip=0, kinds=_ML_KINDS)
    return build_interactions(
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
            kinds[column] = "token"
        elif types[column] != "float":
            raise DataFileError(
                str(resolved),
                1,
                f"{role} column {column!r} must be float, header says {types[column]}",
                column=column,
            )
        else:
            kinds[column] = "float"
    table = read_delimited(resolved, delimiter="\t", names=names, skip=1, kinds=kinds)
    return build_interactions(resolved, table, columns)


def load_sequences(path: str | Path) -> Interactions:
    """Load a SASRec-style sequence file: one ``user item`` pair per line, space-separated.

    No header and no timestamps: each user's lines are in time order, so the line order is
    the time order (the format of the SASRec authors' preprocessed Amazon and MovieLens
    files). Ids may be integers or strings.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "Video.txt"
        >>> _ = path.write_text("1 7\\n1 3\\n2 7\\n")
        >>> watches = load_sequences(path)
        >>> watches.n_users, watches.n_items, watches.item_ids[watches.item].tolist()
        (2, 2, [7, 3, 7])

    Raises:
        DataFileError: a line without exactly two fields (file and line named).
    """
    resolved = _require_file(path)
    table = read_delimited(
        resolved, delimiter=" ", names=["user", "item"], skip=0,
        kinds={"user": "id", "item": "id"},
    )
    return build_interactions(resolved, table, {"user": "user", "item": "item"})


def _pick(
    path: Path, role: str, given: str | None, available: list[str], required: bool
) -> str | None:
    if given is not None:
        return given
    found = io.pick_column(
        role, GUESSES[role], available, how_to_choose="rename the others, or name the columns"
    )
    if found is None and required:
        fields = [part for name in available for part in re.split(r"[\t,;: ]+", name) if part]
        if fields and all(io.is_number(part) for part in fields):
            raise CrossentError(
                f"{path}: the first line {' '.join(fields)!r} looks like data, not column "
                "names; for a MovieLens ratings file without a header (user, item, rating, "
                "timestamp) pass --format movielens"
            )
        raise CrossentError(
            f"{path}: no {role} column given and none of {', '.join(GUESSES[role])} is present; "
            f"columns are {available} (rename one; for MovieLens files pass --format movielens)"
        )
    return found


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
    """Load a CSV/TSV (with a header row; maybe compressed) or Parquet file with named columns.

    Column names not given are guessed from :data:`GUESSES` (``user_id``, ``item_id``,
    ``timestamp``, ..., ignoring case; two candidates for one role are an error); user and
    item are required, the rest optional (no timestamp: row order is time order). Ids may be
    integers or strings; timestamps numbers, or dates / date-times (converted to seconds since
    1970, UTC). ``delimiter`` defaults to tab for ``.tsv`` and comma otherwise; ``parquet``
    defaults to whether the name ends in ``.parquet`` / ``.pq``.

    Raises:
        CrossentError: a named column is missing (the message lists the file's columns).
        DataFileError: a malformed line or missing value (file, line or row, column named).
    """
    resolved = _require_file(path)
    name = resolved.with_suffix("") if io.compression(resolved) else resolved
    if parquet is None:
        parquet = name.suffix.lower() in (".parquet", ".pq")
    text = io.TextOptions(delimiter or ("\t" if name.suffix.lower() in (".tsv", ".tab") else ","))
    available = list(pq.read_schema(resolved).names) if parquet else io.columns_of(resolved, text)
    given = {
        "user": user,
        "item": item,
        "timestamp": timestamp,
        "rating": rating,
        "watch_time": watch_time,
    }
    columns: dict[str, str | None] = {}
    for role, column in given.items():
        picked = _pick(resolved, role, column, available, required=role in ("user", "item"))
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
        return build_interactions(resolved, table, columns)
    table = read_delimited(resolved, delimiter=text.separator, names=None, skip=1, kinds=kinds)
    return build_interactions(resolved, table, columns)


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
    ``*.inter`` -> RecBole; a ``*.txt`` file whose first line is two space-separated fields
    -> SASRec sequences (:func:`load_sequences`); ``*.parquet`` / ``*.pq`` and other CSV/TSV
    -> :func:`load_table`.
    ``columns`` (``user=``, ``item=``, ``timestamp=``, ``rating=``, ``watch_time=``) are passed
    to the RecBole / table loaders.
    """
    check_choice(format, "format", Format)
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
            if suffix == ".txt" and len(first.split(" ")) == 2 and not columns:
                return load_sequences(resolved)
            movielens_csv = first == "userId,movieId,rating,timestamp"
            format = "movielens" if movielens_csv and not columns else "csv"
    if format == "movielens":
        if columns:
            raise CrossentError(f"MovieLens files have fixed columns; got {sorted(columns)}")
        return load_movielens(resolved)
    if format == "sasrec":
        if columns:
            raise CrossentError(f"SASRec sequence files have fixed columns; got {sorted(columns)}")
        return load_sequences(resolved)
    if format == "recbole":
        return load_recbole(resolved, **columns)  # type: ignore[arg-type]
    return load_table(resolved, parquet=format == "parquet", **columns)  # type: ignore[arg-type]
