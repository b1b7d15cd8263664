"""Target values in a prediction file -> class indices: numbers, or words such as ``yes``/``no``.

A :class:`LabelMap` knows, for each class, the target values that name it:

- declared labels (``--labels no,yes`` or ``--labels cat,dog,bird``), one per class;
- by default ``0, 1`` (binary) or ``0 .. C-1`` (multi-class), and for multi-class probability
  columns also each column's name (``--probs cat,dog,bird``: the target ``dog`` is class 1);
- ``--positive VALUE`` (binary): VALUE is class 1 and the one other value in the data is
  class 0, learned from the first row that holds it; a third value is unknown.

Values compare as numbers when both read as numbers (``1.0`` is ``1``), else as trimmed text.
Missing targets follow :mod:`crossent.io.values`. Unknown values are flagged, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from crossent import io
from crossent.errors import CrossentError
from crossent.io.values import int_values, trimmed_text

Key = float | str
_MISSING = -2
_UNKNOWN = -1


def label_key(text: str) -> Key:
    """How a target value is compared: its number when it reads as one, else its text."""
    stripped = text.strip()
    return float(stripped) if io.is_number(stripped) else stripped


def _shown(key: Key) -> str:
    return f"{key:g}" if isinstance(key, float) else key


@dataclass
class LabeledTarget:
    """Class index of each row (0 where missing or unknown) and the masks of those rows."""

    index: NDArray[np.int64]
    missing: NDArray[np.bool_]
    unknown: NDArray[np.bool_]
    shown: NDArray[np.object_] | NDArray[np.float64]  # the raw value per row, for messages


class LabelMap:
    """Which target values name which class (see the module docstring).

    Args:
        n_classes: number of classes.
        labels: declared values, one per class.
        positive: binary only: the value of the positive class.
        class_names: names that also name each class (multi-class probability columns).
    """

    def __init__(
        self,
        n_classes: int,
        *,
        labels: Sequence[str] | None = None,
        positive: str | None = None,
        class_names: Sequence[str] = (),
    ):
        self.n_classes = n_classes
        self.positive = positive
        if positive is not None and (labels or n_classes != 2):
            raise CrossentError(
                "--positive is for binary files; with --labels or several classes, "
                "--labels names every class"
            )
        texts = [str(t).strip() for t in labels] if labels else [str(c) for c in range(n_classes)]
        if len(texts) != n_classes:
            raise CrossentError(
                f"--labels has {len(texts)} values but there are {n_classes} classes"
            )
        if len({label_key(t) for t in texts}) != n_classes:
            raise CrossentError(f"--labels {','.join(texts)} has repeated values")
        self.names: list[list[str]] = [[t] for t in texts]
        if positive is not None:
            self.names = [[], [positive.strip()]]
        elif not labels and class_names:
            for c, name in enumerate(class_names):
                if not io.is_number(name):  # a numeric column name would clash with 0..C-1
                    self.names[c].append(name)
        self.aliases: dict[Key, int] = {}
        for c, names in enumerate(self.names):
            for name in names:
                if self.aliases.setdefault(label_key(name), c) != c:
                    raise CrossentError(
                        f"target value {name!r} would name two classes; pass --labels"
                    )

    @property
    def numeric(self) -> bool:
        """Whether every known value is a number (then the target is read as numbers)."""
        return all(isinstance(key, float) for key in self.aliases)

    def describe(self) -> str:
        """The known labels, for messages."""
        if self.positive is not None:
            negative = f"the negative {self.names[0][0]!r}" if self.names[0] else "no negative yet"
            return f"the positive {self.positive!r} and {negative} (the first other value)"
        return ", ".join(" or ".join(names) for names in self.names)

    def _learn_negative(self, key: Key, text: str) -> None:
        self.names[0] = [text]
        self.aliases[key] = 0

    def classes(self, array: pa.Array) -> LabeledTarget:
        """Class index of each row of a target column (float64 or text)."""
        kind = array.type
        if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            return self._numeric_classes(io.float_column(array).values)
        text = trimmed_text(array)
        encoded = pc.dictionary_encode(text)
        entries = encoded.dictionary.to_pylist()
        codes = np.empty(len(entries) + 1, dtype=np.int64)
        codes[-1] = _MISSING  # nulls
        for position, entry in enumerate(entries):
            if io.is_missing_text(entry):
                codes[position] = _MISSING
                continue
            key = label_key(entry)
            if key not in self.aliases and self.positive is not None and not self.names[0]:
                self._learn_negative(key, entry)
            codes[position] = self.aliases.get(key, _UNKNOWN)
        indices = encoded.indices
        if indices.null_count:
            indices = indices.fill_null(len(entries))
        per_row = codes[int_values(indices)]
        return LabeledTarget(
            np.maximum(per_row, 0),
            per_row == _MISSING,
            per_row == _UNKNOWN,
            io.text_values(array) if (per_row == _UNKNOWN).any() else np.empty(0, object),
        )

    def _numeric_classes(self, values: NDArray[np.float64]) -> LabeledTarget:
        missing = np.isnan(values)
        index = np.zeros(values.shape[0], dtype=np.int64)
        known = missing.copy()
        for key, class_index in self.aliases.items():
            if isinstance(key, float):
                match = values == key
                if class_index:
                    index += class_index * match  # arithmetic, not a boolean-mask assignment
                known |= match
        if self.positive is not None and not self.names[0] and not known.all():
            first = int(np.argmin(known))
            self._learn_negative(float(values[first]), f"{values[first]:g}")
            known |= values == values[first]
        return LabeledTarget(index, missing, ~known, values)

    def merge(self, other: LabelMap) -> None:
        """Take ``other``'s learned negative; raise when the two learned different ones."""
        if self.positive is None or not other.names[0]:
            return
        if not self.names[0]:
            self._learn_negative(label_key(other.names[0][0]), other.names[0][0])
        elif label_key(self.names[0][0]) != label_key(other.names[0][0]):
            raise CrossentError(
                f"with --positive {self.positive!r} the data has two other values, "
                f"{self.names[0][0]!r} and {other.names[0][0]!r}; pass --labels NEG,POS"
            )


def shown_value(target: LabeledTarget, row: int) -> str:
    """The target value of ``row`` as the file wrote it (numbers as %g)."""
    value = target.shown[row]
    return _shown(float(value)) if isinstance(value, (float, np.floating)) else repr(str(value))
