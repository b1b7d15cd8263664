"""Log bases: results in nats, bits or any base > 1.

A value in base ``b`` is the value in nats divided by ``ln b``; gradients scale the same way.
"""

from __future__ import annotations

import math
from typing import Literal

from crossent._validation.numbers import check_number
from crossent.errors import CrossentError

Base = Literal["nats", "bits"] | float

_NAMED = {"nats": 1.0, "bits": math.log(2.0)}


def log_divisor(base: Base) -> float:
    """The number to divide a value in nats by to express it in ``base``.

    Args:
        base: ``"nats"`` (natural log), ``"bits"`` (log base 2), or a number > 1.

    Raises:
        CrossentError: ``base`` is not one of those.

    >>> round(log_divisor("bits"), 6)
    0.693147
    """
    if isinstance(base, str):
        named = _NAMED.get(base.strip().lower())
        if named is not None:
            return named
        try:
            base = float(base)
        except ValueError:
            raise CrossentError(
                f'base = {base!r} is not "nats", "bits" or a number > 1'
            ) from None
    if isinstance(base, bool) or not isinstance(base, (int, float)):
        raise CrossentError(f'base = {base!r} is not "nats", "bits" or a number > 1')
    return math.log(check_number(base, "base", low=1.0, low_open=True))


def unit_name(base: Base) -> str:
    """A short label for a base: ``"nats"``, ``"bits"`` or ``"log10"``-style ``"base 10"``."""
    if isinstance(base, str) and base.strip().lower() in _NAMED:
        return base.strip().lower()
    value = float(base)
    if value == 2.0:
        return "bits"
    if abs(value - math.e) < 1e-12:
        return "nats"
    return f"base {value:g}"
