"""Class weights for imbalanced data: :func:`class_balanced_weights` (Cui et al. 2019), passed
as ``weight=`` to :func:`crossent.cross_entropy` or ``alpha=`` to :func:`crossent.focal_loss`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from crossent._validation.numbers import check_number
from crossent.errors import CrossentError


def class_balanced_weights(
    counts: Sequence[int] | np.ndarray | torch.Tensor,
    beta: float = 0.999,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Class weights from the effective number of samples (Cui et al. 2019).

    .. math:: w_c \propto \frac{1 - β}{1 - β^{n_c}}, \qquad \sum_c w_c = C

    ``β = 0`` gives equal weights; ``β -> 1`` approaches inverse class frequency. Pass the
    result as ``weight=`` (or ``alpha=`` of :func:`focal_loss`).

    Args:
        counts: ``(C,)`` number of training examples of each class, integers >= 1.
        beta: β in [0, 1).
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        ``(C,)`` weights summing to C (computed in float64).

    Raises:
        CrossentError: counts empty, not 1-d, not whole numbers, or < 1; beta outside [0, 1).

    Example:
        >>> class_balanced_weights([10, 10], beta=0.9).tolist()
        [1.0, 1.0]

    References:
        Cui, Jia, Lin, Song, Belongie 2019, "Class-Balanced Loss Based on Effective Number of
        Samples".
    """
    beta = check_number(beta, "beta", low=0.0, high=1.0, high_open=True)
    if isinstance(counts, torch.Tensor):
        values = counts.detach().cpu().double().numpy()
    else:
        try:
            values = np.asarray(counts, dtype=np.float64)
        except (TypeError, ValueError):
            raise CrossentError(f"counts = {counts!r} is not a sequence of numbers") from None
    if values.ndim != 1 or values.size == 0:
        raise CrossentError(f"counts has shape {values.shape}, expected (C,) with C >= 1")
    bad = ~np.isfinite(values) | (values < 1) | (values != np.round(values))
    if bad.any():
        index = int(np.argmax(bad))
        raise CrossentError(
            f"counts[{index}] = {values[index]:g} must be a whole number >= 1 "
            "(a class with no examples has no class-balanced weight)"
        )
    effective_number = -np.expm1(values * np.log(beta)) if beta > 0 else np.ones_like(values)
    raw = (1.0 - beta) / effective_number
    normalised = raw * (values.size / raw.sum())
    return torch.as_tensor(normalised, dtype=dtype, device=device)
