"""Directories and globs of data files, with Hive partition columns.

``preds/`` or ``'preds/part-*.parquet'`` become a list of :class:`Source` files, found and
partitioned by ``pyarrow.dataset``: a path segment ``date=2026-11-01`` makes ``date`` a column
holding ``2026-11-01`` for every row of the files below it (Hive partitioning, as Spark, Dask
and Hive write it). Files whose name starts with ``_`` or ``.`` (``_SUCCESS``, ``.crc``) are
skipped, as pyarrow does. Each file is then read by :func:`crossent.io.read_batches`, so errors
still name the file and its line (or row and row group).
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from crossent.errors import CrossentError
from crossent.io.formats import file_format, missing_file, read_columns

_GLOB_CHARACTERS = set("*?[")


@dataclass(frozen=True)
class Source:
    """One data file and the values of its Hive partition columns."""

    path: Path
    partition: dict[str, object] = field(default_factory=dict)


def _data_files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if not path.is_file() or any(part.startswith(("_", ".")) for part in relative):
            continue
        try:
            file_format(path)
        except CrossentError:
            continue  # a README or a log file beside the data
        found.append(path)
    if not found:
        raise CrossentError(
            f"{folder}: no data files (.csv, .tsv, .parquet, .jsonl, maybe compressed) in it"
        )
    return found


def _common_folder(paths: Sequence[Path]) -> Path:
    parents = [path.parent.resolve() for path in paths]
    common = parents[0]
    while not all(parent.is_relative_to(common) for parent in parents):
        common = common.parent
    return common


def _partitions(files: list[Path], base: Path) -> list[dict[str, object]]:
    """Hive partition values (text) of each file below ``base``, parsed by ``pyarrow.dataset``."""
    folders = [path.resolve().parent.relative_to(base).parts for path in files]
    keys = list(dict.fromkeys(p.split("=", 1)[0] for parts in folders for p in parts if "=" in p))
    if not keys:
        return [{} for _ in files]
    import pyarrow.dataset as ds  # imports pandas (a second, 100 MB): only when needed

    partitioning = ds.HivePartitioning(pa.schema([(key, pa.string()) for key in keys]))
    found = []
    for parts in folders:
        values = ds.get_partition_keys(partitioning.parse("/" + "/".join(parts) + "/"))
        found.append({key: values[key] for key in keys if key in values})
    return found


def expand(paths: Sequence[str | Path]) -> list[Source]:
    """Files, folders and glob patterns as a list of :class:`Source` files, in order.

    Raises:
        CrossentError: a path that does not exist, a pattern that matches nothing, a folder
            with no data file.
    """
    sources: list[Source] = []
    for given in paths:
        text = str(given)
        if _GLOB_CHARACTERS & set(text) and not Path(text).exists():
            files = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
            if not files:
                raise CrossentError(f"{text}: no file matches this pattern")
            base = _common_folder(files)
        elif Path(text).is_dir():
            base = Path(text).resolve()
            files = _data_files(Path(text))
        elif Path(text).is_file():
            sources.append(Source(Path(text)))
            continue
        else:
            raise missing_file(text)
        for path, partition in zip(files, _partitions(files, base), strict=True):
            sources.append(Source(path, partition))
    return sources


def source_columns(source: Source) -> list[str]:
    """The columns of a source: the file's, then its partition columns."""
    return [*read_columns(source.path), *(k for k in source.partition if k)]
