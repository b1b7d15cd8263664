"""What a value in a data file means: the one rule for missing values and for numbers.

Every reader of the project (``crossent score``, the recommender loaders, the loss lab) uses
these rules, so a file means the same thing to each of them:

- **missing**: an empty field, or (ignoring case and surrounding spaces) ``nan``, ``na``,
  ``n/a``, ``null`` or ``none``; a null in Parquet or JSON, and a float NaN, too.
- **number**: a decimal number, optionally signed, with an optional exponent, or ``inf`` /
  ``infinity``; surrounding spaces are ignored. Infinite numbers are numbers, and whether they
  are allowed is the caller's rule (a logit must be finite, a timestamp too).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

#: Texts that mean "no value" (compared after trimming spaces, ignoring case).
MISSING_TEXTS = ("", "nan", "na", "n/a", "null", "none")
_NUMBER = r"^\s*[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity)\s*$"


def _spellings(word: str) -> list[str]:
    """Every upper/lower-case spelling of ``word`` (pyarrow's null values are case-sensitive)."""
    return [
        "".join(letters) for letters in itertools.product(*({c.lower(), c.upper()} for c in word))
    ]


#: :data:`MISSING_TEXTS` in every case, for pyarrow's ``null_values``.
ARROW_NULL_VALUES = sorted({spelling for word in MISSING_TEXTS for spelling in _spellings(word)})


def is_missing_text(text: str | None) -> bool:
    """Whether a field's text means "no value" (see the module docstring)."""
    return text is None or text.strip().lower() in MISSING_TEXTS


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (see the module docstring); missing is not one."""
    return re.match(_NUMBER, text, flags=re.IGNORECASE) is not None


@dataclass(frozen=True)
class FloatColumn:
    """A column as float64 with masks of the rows that were missing or not a number.

    ``values`` is NaN where ``missing`` or ``not_number`` is set.
    """

    values: NDArray[np.float64]
    missing: NDArray[np.bool_]
    not_number: NDArray[np.bool_]

    @property
    def parsed(self) -> NDArray[np.bool_]:
        """Rows holding a number."""
        return ~self.missing & ~self.not_number


def _view(array: pa.Array, dtype: type[np.generic]) -> NDArray[Any]:
    """Zero-copy NumPy view of a null-free fixed-width pyarrow array.

    Reads the data buffer directly: ``Array.to_numpy`` would import pandas (about a second
    and 100 MB) on first use.
    """
    width = np.dtype(dtype).itemsize
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * width
    )


def int_values(array: pa.Array) -> NDArray[np.int64]:
    """A null-free pyarrow integer array as int64 NumPy (without importing pandas)."""
    return _view(array if array.type == pa.int64() else array.cast(pa.int64()), np.int64)


def bool_mask(array: pa.Array) -> NDArray[np.bool_]:
    """A pyarrow boolean array (nulls as False) as NumPy (via uint8: booleans are bit-packed)."""
    return _view(array.fill_null(False).cast(pa.uint8()), np.uint8).view(np.bool_)


def trimmed_text(array: pa.Array) -> pa.Array:
    """``array`` as text with surrounding spaces removed (nulls stay null)."""
    return pc.utf8_trim_whitespace(array.cast(pa.string()))


def missing_mask(text: pa.Array) -> NDArray[np.bool_]:
    """Rows of a trimmed text array that are missing (null or a :data:`MISSING_TEXTS` word)."""
    lowered = pc.utf8_lower(text)
    found = pc.is_in(lowered, value_set=pa.array(MISSING_TEXTS, pa.string()))
    return bool_mask(found) | bool_mask(text.is_null())


def float_column(array: pa.Array) -> FloatColumn:
    """``array`` as float64; missing values and non-numbers are flagged (their values NaN)."""
    n = len(array)
    kind = array.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        numbers = array if kind == pa.float64() else array.cast(pa.float64())
        if numbers.null_count:
            numbers = numbers.fill_null(np.nan)
        values = _view(numbers, np.float64)
        missing = np.isnan(values) if pa.types.is_floating(kind) or array.null_count else None
        if missing is None:
            missing = np.zeros(n, dtype=bool)
        return FloatColumn(values, missing, np.zeros(n, dtype=bool))
    text = trimmed_text(array)
    missing = missing_mask(text)
    numeric = bool_mask(pc.match_substring_regex(text, _NUMBER, ignore_case=True))
    not_number = ~numeric & ~missing
    cleaned = pc.if_else(pa.array(numeric), text, pa.scalar("nan"))
    values = _view(cleaned.cast(pa.float64()), np.float64)
    return FloatColumn(values, missing, not_number)


def text_values(array: pa.Array) -> NDArray[Any]:
    """``array`` as a NumPy array of Python strings (None for nulls), for label columns."""
    values = array.cast(pa.string()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=object)
