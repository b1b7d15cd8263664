"""Item titles: found beside a MovieLens ratings file, or read from an id/title table.

MovieLens ships titles next to its ratings: ``movies.csv`` (ml-latest, 20M, 25M: header
``movieId,title,genres``, quoted where a title has a comma), ``u.item`` (100K: ``|``-separated,
Latin-1, no header) and ``movies.dat`` (1M, 10M: ``::``-separated, Latin-1). Any other table
(CSV, TSV or Parquet with a header, read by :mod:`crossent.io`) works through
:func:`read_titles` when it has an id column and a title column. Titles are matched to items
by the printed form of the original id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from crossent import io
from crossent.errors import CrossentError

#: MovieLens title files, looked for beside the ratings file in this order.
MOVIELENS_TITLE_FILES = ("movies.csv", "u.item", "movies.dat")
ID_COLUMNS = ("movieId", "item_id", "item", "itemId", "video_id", "video", "id", "MovieID")
TITLE_COLUMNS = ("title", "Title", "name", "movie_title")


def titles_near(data: str | Path) -> Path | None:
    """The MovieLens title file in the folder of ratings file ``data`` (or folder), if any."""
    path = Path(data)
    folder = path if path.is_dir() else path.parent
    for name in MOVIELENS_TITLE_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _column(path: Path, role: str, wanted: Sequence[str], available: Sequence[str]) -> str:
    advice = "give --items a file with one of them"
    found = io.pick_column(role, wanted, available, how_to_choose=advice)
    if found is None:
        raise CrossentError(
            f"{path}: no {role} column (looked for {', '.join(wanted)}; the file has "
            f"{', '.join(map(str, available)) or 'none'})"
        )
    return found


def _headerless(path: Path, separator: str) -> dict[str, str]:
    """``u.item`` / ``movies.dat``: ``id SEP title SEP ...`` per line, in Latin-1 (which
    :mod:`crossent.io`, reading UTF-8, does not decode), with a varying number of fields."""
    titles: dict[str, str] = {}
    with open(path, encoding="latin-1") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split(separator)
            if len(fields) < 2:
                raise CrossentError(
                    f"{path} line {number}: expected id{separator}title, got {line.strip()!r}"
                )
            titles.setdefault(fields[0].strip(), fields[1])
    return titles


def read_titles(path: str | Path) -> dict[str, str]:
    """``{original item id as printed: title}`` from a title file (see the module docstring).

    Raises:
        CrossentError: the file is missing, unreadable, or has no id or title column.
    """
    file = io.require_file(path)
    if file.name == "u.item":
        return _headerless(file, "|")
    if file.suffix == ".dat":
        return _headerless(file, "::")
    available = io.read_columns(file)
    id_column = _column(file, "id", ID_COLUMNS, available)
    title_column = _column(file, "title", TITLE_COLUMNS, available)
    table = io.read_table(
        file, [id_column, title_column], types={id_column: pa.string(), title_column: pa.string()}
    )
    ids = table.columns[id_column].cast(pa.string()).to_pylist()
    names = table.columns[title_column].cast(pa.string()).to_pylist()
    titles: dict[str, str] = {}
    for item, title in zip(ids, names, strict=True):
        if item is not None and title is not None:
            titles.setdefault(str(item).strip(), title)
    return titles


def align_titles(titles: dict[str, str], item_ids: np.ndarray) -> list[str | None] | None:
    """A title per item of ``item_ids`` (``None`` where unknown); ``None`` if none is known."""
    aligned = [titles.get(str(item)) for item in item_ids]
    return aligned if any(title is not None for title in aligned) else None


def titles_for(data: str | Path, item_ids: np.ndarray) -> list[str | None] | None:
    """Titles of ``item_ids`` from the MovieLens title file beside ``data``, if there is one."""
    path = titles_near(data) if data != "simulated" else None
    return None if path is None else align_titles(read_titles(path), item_ids)
