"""Reading data files in fixed memory, each row remembering its line in the file.

One reader for every delimited file of the project (``crossent score``, the recommender
loaders, the loss lab), with one rule for missing values (:mod:`crossent.io.values`), one
wording for a missing file (:func:`missing_file`) and one column guesser
(:mod:`crossent.io.columns`).
"""

from crossent.io.blocks import RowBatch, RowProblem
from crossent.io.columns import pick_column
from crossent.io.dataset import Source, expand, source_columns
from crossent.io.formats import (
    FileFormat,
    compression,
    file_format,
    missing_file,
    read_columns,
    require_file,
)
from crossent.io.reader import (
    DEFAULT_BLOCK_BYTES,
    Table,
    TextOptions,
    check_columns,
    columns_of,
    read_batches,
    read_table,
)
from crossent.io.values import (
    MISSING_TEXTS,
    FloatColumn,
    float_column,
    is_missing_text,
    is_number,
    text_values,
)

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "MISSING_TEXTS",
    "FileFormat",
    "FloatColumn",
    "RowBatch",
    "RowProblem",
    "Source",
    "Table",
    "TextOptions",
    "check_columns",
    "columns_of",
    "compression",
    "expand",
    "file_format",
    "float_column",
    "is_missing_text",
    "is_number",
    "missing_file",
    "pick_column",
    "read_batches",
    "read_columns",
    "read_table",
    "require_file",
    "source_columns",
    "text_values",
]
