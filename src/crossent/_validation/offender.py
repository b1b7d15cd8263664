"""One way to name the first offender: its argument, its position and its value.

Positions are printed in the user's layout: ``input[3, 1]`` for an element, ``input row 3`` for
a row of a 2-D input and ``input[3, :, 2]`` for a row of an ``(N, C, d1)`` one (the class
dimension shown as ``:``). Values are printed with 6 significant digits (``nan``, ``inf`` as
such).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_position(name: str, position: Sequence[int]) -> str:
    """``name[i, j, ...]``; ``name`` alone for a 0-d position."""
    if len(position) == 0:
        return name
    return f"{name}[{', '.join(str(int(i)) for i in position)}]"


def format_value(value: float) -> str:
    """``1.5``, ``-3``, ``nan``, ``inf``: 6 significant digits; integers in full."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def row_label(name: str, position: Sequence[int], row_dim: int = 0) -> str:
    """``input row 3`` (the index along ``row_dim``) for an element, ``input`` for a scalar."""
    if len(position) == 0:
        return name
    return f"{name} row {int(position[row_dim])}"


def slice_label(name: str, position: Sequence[int], class_dim: int, ndim: int) -> str:
    """A row (slice along ``class_dim``) at ``position`` (which lacks ``class_dim``).

    ``input row 3`` for 2-D input with classes in dimension 1, ``input[3, :, 2]`` otherwise.
    """
    if ndim == 2 and class_dim == 1:
        return f"{name} row {int(position[0])}"
    full = [str(int(i)) for i in position]
    full.insert(class_dim, ":")
    return f"{name}[{', '.join(full)}]"


def element_message(name: str, position: Sequence[int], value: float, problem: str) -> str:
    """``probs[4, 2] = 1.5 is outside [0, 1]``: the element, its value, then ``problem``."""
    return f"{format_position(name, position)} = {format_value(value)} {problem}"


def row_message(
    name: str, position: Sequence[int], value: float, problem: str, row_dim: int = 0
) -> str:
    """``input row 3 is not finite: input[3, 1] = nan``: the row first, then the element."""
    return (
        f"{row_label(name, position, row_dim)} {problem}: "
        f"{format_position(name, position)} = {format_value(value)}"
    )
