"""Checks of the options the fused cross-entropies share: ``z_loss``, ``softcap``,
``return_lse`` (:func:`crossent.cross_entropy`, :func:`crossent.linear_cross_entropy`)."""

from __future__ import annotations

import math

from crossent._validation import tensors as _checks
from crossent.errors import CrossentError


def check_fused_options(
    z_loss: object, softcap: object, return_lse: object
) -> tuple[float, float | None, bool]:
    """``(z_loss, softcap, return_lse)`` checked: a finite ``z_loss >= 0``, ``softcap`` None or
    a finite number > 0, ``return_lse`` a bool."""
    z_value = _checks.check_nonnegative_number(z_loss, "z_loss")
    cap: float | None = None
    if softcap is not None:
        if isinstance(softcap, bool) or not isinstance(softcap, (int, float)) or not (
            math.isfinite(softcap) and softcap > 0
        ):
            raise CrossentError(f"softcap = {softcap!r} must be None or a finite number > 0")
        cap = float(softcap)
    if not isinstance(return_lse, bool):
        raise CrossentError(f"return_lse = {return_lse!r} must be True or False")
    return z_value, cap, return_lse
