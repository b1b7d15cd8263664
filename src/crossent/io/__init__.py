"""Reading data files in fixed memory, each row remembering its line in the file."""

from crossent.io.reader import (
    DEFAULT_BLOCK_BYTES,
    FileFormat,
    FloatColumn,
    RowBatch,
    RowProblem,
    file_format,
    float_column,
    is_number,
    read_batches,
    read_columns,
    text_values,
)

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "FileFormat",
    "FloatColumn",
    "RowBatch",
    "RowProblem",
    "file_format",
    "float_column",
    "is_number",
    "read_batches",
    "read_columns",
    "text_values",
]
