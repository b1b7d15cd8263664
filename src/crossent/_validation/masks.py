"""Element and row masks of invalid values, for NumPy arrays and torch tensors alike.

Each mask is ``True`` where a rule is broken, has the input's shape (row masks drop the class
axis) and makes no copy of the data beyond the boolean result. The same masks raise in the
losses and metrics (through :mod:`crossent._validation.rules`), skip rows in file scoring and
are evaluated locally by every rank of the sharded loss.

This module never imports torch: a torch tensor is handled through its own methods, so NumPy
work (``crossent.metrics``, ``crossent score``) starts without loading torch.

**"Sums to 1".** A row of probabilities (a soft target, a prediction) sums to 1 when

    ``|sum(row) - 1| <= max(1e-3, 2 * eps(dtype))``

with the sum accumulated in float64 for float64 input and in float32 otherwise. Each stored
probability carries a relative rounding error of at most ``eps / 2``, so a correct row sums to
1 within ``eps / 2``; the floor of 1e-3 leaves room for probabilities produced in a lower
precision or printed with a few decimals. The values: float64 and float32 -> 1e-3, float16 ->
0.00195, bfloat16 -> 0.0156. This one tolerance decides everywhere: the losses raise beyond
it, the metrics warn beyond it, file scoring counts rows beyond it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Values = Any  # a numpy.ndarray or a torch.Tensor

SUM_TOLERANCE_FLOOR = 1e-3


def is_numpy(values: Values) -> bool:
    """Whether ``values`` is a NumPy array or scalar (otherwise: a torch tensor)."""
    return isinstance(values, (np.ndarray, np.generic))


def machine_eps(dtype: Any) -> float:
    """The machine epsilon of a NumPy or torch floating dtype."""
    if type(dtype).__module__.startswith("torch"):
        import torch  # only reached with a torch dtype, so torch is already loaded

        return float(torch.finfo(dtype).eps)
    return float(np.finfo(dtype).eps)


def sum_tolerance(dtype: Any) -> float:
    """The tolerance of "sums to 1" for ``dtype``: ``max(1e-3, 2 * eps(dtype))``."""
    return max(SUM_TOLERANCE_FLOOR, 2.0 * machine_eps(dtype))


def not_finite(values: Values) -> Values:
    """``True`` at NaN, ``+inf`` and ``-inf``."""
    return ~np.isfinite(values) if is_numpy(values) else ~values.isfinite()


def nan(values: Values) -> Values:
    """``True`` at NaN."""
    return np.isnan(values) if is_numpy(values) else values.isnan()


def nan_or_pos_inf(values: Values) -> Values:
    """``True`` at NaN and ``+inf`` (``-inf`` is a valid logit: probability 0)."""
    return nan(values) | (values == float("inf"))


def outside_unit_interval(values: Values) -> Values:
    """``True`` where a value is not in [0, 1] (NaN included)."""
    return ~((values >= 0) & (values <= 1))


def negative(values: Values) -> Values:
    """``True`` where a value is < 0 (NaN is not negative: check finiteness first)."""
    return values < 0


def row_sums(values: Values, axis: int = -1) -> Values:
    """Sums along ``axis``, accumulated in float64 for float64 input, float32 otherwise."""
    if is_numpy(values):
        return values.sum(axis=axis, dtype=np.float64)
    import torch  # a tensor was passed, so torch is already loaded

    accumulate = torch.float64 if values.dtype == torch.float64 else torch.float32
    return values.sum(dim=axis, dtype=accumulate)


def off_simplex(values: Values, axis: int = -1) -> Values:
    """``True`` for each row (slice along ``axis``) whose sum is not 1 within
    :func:`sum_tolerance` of the values' dtype. The result has ``values``' shape without
    ``axis``."""
    return abs(row_sums(values, axis) - 1) > sum_tolerance(values.dtype)


def any_true(mask: Values) -> bool:
    """Whether ``mask`` has a ``True`` (for a torch tensor on a GPU: a host synchronisation)."""
    return bool(mask.any())


def first_true(mask: Values) -> tuple[int, ...]:
    """Position of the first ``True`` of ``mask`` in row-major order (``mask.any()`` holds)."""
    if is_numpy(mask):
        flat = int(np.argmax(np.ravel(mask)))
    else:
        import torch  # a tensor was passed, so torch is already loaded

        flat = int(mask.reshape(-1).to(torch.uint8).argmax().item())
    position: list[int] = []
    for size in reversed(tuple(mask.shape)):
        position.append(flat % size)
        flat //= size
    return tuple(reversed(position))
