"""File types: what a file holds (CSV, TSV, Parquet, JSONL) and how it is compressed.

Both come from the name: ``preds.csv.gz`` is gzip-compressed CSV. Text formats may be
compressed with gzip (``.gz``), bzip2 (``.bz2``), Zstandard (``.zst``) or LZ4 frames
(``.lz4``); they are decompressed as a stream by pyarrow, so memory stays fixed. Parquet
compresses inside the file (its own codecs), so ``.parquet.gz`` is refused.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

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
#: compression suffix -> pyarrow codec name
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}


def missing_file(path: str | Path) -> CrossentError:
    """The one error for a file that is not there."""
    return CrossentError(f"{path}: no such file")


def require_file(path: str | Path) -> Path:
    """``path`` as a Path, or :func:`missing_file` raised when it is not an existing file."""
    file = Path(path)
    if not file.is_file():
        raise missing_file(file)
    return file


def compression(path: str | Path) -> str | None:
    """pyarrow's codec name for ``path``'s compression suffix, or None when not compressed."""
    return COMPRESSIONS.get(Path(path).suffix.lower())


def file_format(path: str | Path) -> FileFormat:
    """The format of ``path`` from its suffix, after any compression suffix.

    .csv, .tsv/.tab, .parquet/.pq, .jsonl/.ndjson/.json; each text format optionally followed
    by .gz, .bz2, .zst or .lz4.
    """
    name = Path(path)
    codec = compression(name)
    inner = name.with_suffix("") if codec else name
    suffix = inner.suffix.lower()
    found = _SUFFIXES.get(suffix)
    if found is None:
        shown = "".join(name.suffixes[-2:]) if codec else suffix
        raise CrossentError(
            f"{path}: unknown file type {shown or '(no suffix)'!r}; expected .csv, .tsv, "
            ".parquet or .jsonl, text formats optionally compressed (.gz, .bz2, .zst, .lz4)"
        )
    if found == "parquet" and codec:
        raise CrossentError(
            f"{path}: Parquet compresses inside the file; decompress it to .parquet"
        )
    return found


def open_text(path: Path) -> tuple[pa.NativeFile, pa.NativeFile]:
    """(stream of decompressed bytes, the raw file under it: its position is the progress)."""
    raw = pa.OSFile(str(path), "rb")
    codec = compression(path)
    if codec is None:
        return raw, raw
    return pa.CompressedInputStream(raw, codec), raw


def iter_lines(stream: pa.NativeFile, chunk_bytes: int = 1 << 16) -> Iterator[bytes]:
    """The lines of a pyarrow stream (which has no ``readline``), each with its newline."""
    remainder = b""
    while chunk := stream.read(chunk_bytes):
        lines = (remainder + chunk).split(b"\n")
        remainder = lines.pop()
        for line in lines:
            yield line + b"\n"
    if remainder:
        yield remainder


def read_columns(path: str | Path) -> list[str]:
    """Column names of a file (CSV/TSV header, Parquet schema, keys of the first JSONL record)."""
    file = require_file(path)
    kind = file_format(file)
    if kind == "parquet":
        return list(pq.ParquetFile(file).schema_arrow.names)
    stream, raw = open_text(file)
    with raw, stream:
        if kind == "jsonl":
            return _first_record_keys(file, stream)
        header = next(iter_lines(stream), b"")
    if not header.strip():
        raise DataFileError(str(file), 1, "the header line is empty; expected column names")
    table = pa_csv.read_csv(
        io.BytesIO(header),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter(kind)),
        convert_options=pa_csv.ConvertOptions(column_types={}, strings_can_be_null=False),
    )
    return [str(value[0]).strip() for value in table.columns]


def _first_record_keys(file: Path, stream: pa.NativeFile) -> list[str]:
    for number, raw_line in enumerate(iter_lines(stream), start=1):
        if raw_line.strip():
            try:
                record = json.loads(raw_line)
            except json.JSONDecodeError as error:
                raise DataFileError(str(file), number, f"not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise DataFileError(str(file), number, "expected a JSON object per line")
            return list(record)
    raise CrossentError(f"{file}: the file is empty")


def delimiter(kind: FileFormat) -> str:
    """The field separator of a delimited text format."""
    return "\t" if kind == "tsv" else ","
