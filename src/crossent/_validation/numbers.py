"""Scalar options: integers and real numbers within bounds, one message shape for each.

``check_int(value, "k", low=1)`` -> ``k = 0 must be an integer >= 1``;
``check_number(value, "label_smoothing", low=0, high=1)`` -> ``label_smoothing = 2 is outside
[0, 1]`` (or ``must be a number in [0, 1]`` when it is no number at all); a number bounded on
one side only must also be finite: ``gamma = inf must be a finite number >= 0``. Booleans are
never numbers here, although Python treats them as such.
"""

from __future__ import annotations

import math
import numbers

from crossent.errors import OptionError


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    # numpy booleans are not numbers.Real, Python's bool is
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(
    value: object,
    name: str,
    *,
    low: int | None = None,
    high: int | None = None,
    none_ok: bool = False,
) -> int:
    """``value`` as an ``int`` if it is an integer in ``[low, high]`` (bounds optional).

    NumPy integers are accepted; booleans and floats (even ``2.0``) are not. With
    ``none_ok=True`` the caller handles ``None`` itself and the message says it is allowed.
    """
    if _is_int(value):
        number = int(value)  # type: ignore[call-overload]
        if (low is None or number >= low) and (high is None or number <= high):
            return number
    alternative = " or None" if none_ok else ""
    raise OptionError(
        name, lambda n: f"{n} = {value!r} must be an integer{_bound_text(low, high)}{alternative}"
    )


def _bound_text(
    low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    """`` in [0, 1)``, `` >= 1``, `` > 0``, `` <= 5`` or nothing."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_number(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    none_ok: bool = False,
) -> float:
    """``value`` as a ``float`` if it is a real number in the interval given by the bounds.

    ``low_open`` / ``high_open`` exclude the bound itself. With no bound on one side the number
    must still be finite; NaN is always rejected.
    """
    alternative = " or None" if none_ok else ""
    bound = _bound_text(low, high, low_open, high_open)
    if low is not None and high is not None:
        if not _is_real(value):
            raise OptionError(
                name, lambda n: f"{n} = {value!r} must be a number{bound}{alternative}"
            )
        number = float(value)  # type: ignore[arg-type]
        if not _inside(number, low, high, low_open, high_open):
            outside = bound.removeprefix(" in")
            raise OptionError(name, lambda n: f"{n} = {value!r} is outside{outside}")
        return number
    if _is_real(value):
        number = float(value)  # type: ignore[arg-type]
        if math.isfinite(number) and _inside(number, low, high, low_open, high_open):
            return number
    raise OptionError(
        name, lambda n: f"{n} = {value!r} must be a finite number{bound}{alternative}"
    )


def _inside(
    number: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    """Whether ``number`` lies in the interval (NaN lies in none)."""
    if number != number:
        return False
    if low is not None and (number <= low if low_open else number < low):
        return False
    return not (high is not None and (number >= high if high_open else number > high))


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise OptionError(name, lambda n: f"{n} = {value!r} must be True or False")
    return value
