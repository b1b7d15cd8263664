"""The rules every cross-entropy kernel shares, written once.

The reference (:mod:`crossent.kernels.reference`), the numba kernel (:mod:`crossent.kernels.cpu`),
the chunked linear kernels (:mod:`crossent.kernels.linear`), the Triton kernels
(:mod:`crossent.kernels.cuda`) and the sharded function (:mod:`crossent.distributed`) import
these and nothing else for:

* **smoothing**: the smoothed target is ``t_c = a * y_c + b`` (``y`` one-hot or soft) with
  ``(a, b)`` from :func:`smoothing_coefficients`;
* **the mean denominator**: :func:`mean_denominator`;
* **row reductions**: :func:`reduce_rows` (per-row losses in nats to the reduced result) and
  :func:`gradient_scale` (the matching factor on each row's gradient);
* **the options of the fused paths**: :func:`softcap_logits` (``cap * tanh(z / cap)``) and
  :func:`z_loss_term` (``c * lse^2``);
* **the row-kernel contract**: :class:`RowOptions` and :data:`RowKernel`, shared by the numba
  (:func:`crossent.kernels.cpu.row_kernel`) and Triton (:func:`crossent.kernels.cuda.row_kernel`)
  row kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from crossent._validation.choices import Reduction, Smoothing

__all__ = [
    "Reduction", "RowKernel", "RowOptions", "Smoothing", "gradient_scale", "mean_denominator",
    "reduce_rows", "smoothing_coefficients", "softcap_logits", "z_loss_term",
]


def smoothing_coefficients(
    num_classes: int, label_smoothing: float, smoothing: Smoothing | str
) -> tuple[float, float]:
    """``(a, b)`` such that the smoothed target is ``t_c = a * y_c + b`` (``y`` one-hot or soft).

    * ``"uniform"`` (PyTorch's): ``t = (1 - ε) y + ε / C``, so ``(a, b) = (1 - ε, ε / C)``;
    * ``"off_target"``: ``t = (1 - ε) y + ε (1 - y) / (C - 1)``, so
      ``(a, b) = (1 - ε - ε / (C - 1), ε / (C - 1))``: a one-hot row keeps ``1 - ε`` on its
      class and gives ``ε / (C - 1)`` to each other class.

    With one class there is nowhere to move mass to, so the target stays ``y`` (``a=1, b=0``).
    """
    eps = float(label_smoothing)
    if eps == 0.0 or num_classes <= 1:
        return 1.0, 0.0
    if smoothing == "uniform":
        return 1.0 - eps, eps / num_classes
    off = eps / (num_classes - 1)
    return 1.0 - eps - off, off


def mean_denominator(
    target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int
) -> torch.Tensor:
    """What ``reduction="mean"`` divides by, as a 0-d float64 tensor (no host synchronisation).

    Index targets ``(M,)``: the sum of ``w_{y_i}`` over rows whose target is not
    ``ignore_index`` (their count when unweighted), PyTorch's convention. Probability targets
    ``(M, C)``: the number of rows ``M``.
    """
    if target.dim() == 2:
        return torch.tensor(float(target.shape[0]), dtype=torch.float64, device=target.device)
    keep = target != ignore_index
    if weight is None:
        return keep.sum().to(torch.float64)
    safe_index = torch.where(keep, target, torch.zeros_like(target))
    return (weight.double()[safe_index] * keep.double()).sum()


def reduce_rows(
    row_loss: torch.Tensor,
    reduction: Reduction | str,
    denominator: torch.Tensor | float,
    divisor: float,
) -> torch.Tensor:
    """Per-row losses in nats -> the result: ``loss / divisor`` ("none"), ``sum / divisor``
    ("sum"), or ``sum / denominator / divisor`` ("mean").

    ``divisor`` is ``ln(base)``. A mean over nothing (denominator 0) is 0 with zero gradient
    rather than 0/0: the denominator is replaced by 1, and every summed term is 0 there. Pure
    torch operations, so it is differentiable and traceable.
    """
    if reduction == "none":
        return row_loss / divisor
    total = row_loss.sum()
    if reduction == "sum":
        return total / divisor
    denominator = torch.as_tensor(denominator, dtype=total.dtype, device=total.device)
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return total / safe / divisor


def gradient_scale(reduction: Reduction | str, denominator: float, divisor: float) -> float:
    """The factor turning ``d loss_i / d z_i`` (nats) into the gradient of :func:`reduce_rows`'
    result: ``1 / (denominator * divisor)`` for "mean" (0 for a mean over nothing), else
    ``1 / divisor``."""
    if reduction == "mean":
        return 1.0 / (denominator * divisor) if denominator != 0.0 else 0.0
    return 1.0 / divisor


def softcap_logits(logits: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """Gemma 2's logit soft-capping ``z -> cap * tanh(z / cap)`` (identity for None).

    Its derivative, used by the fused kernels, is ``1 - tanh(z / cap)^2``.
    """
    if softcap is None:
        return logits
    return softcap * torch.tanh(logits / softcap)


def z_loss_term(lse: torch.Tensor, z_loss: float) -> torch.Tensor:
    """PaLM's auxiliary z-loss ``c * lse^2`` per row (Chowdhery et al. 2022); its derivative
    with respect to the (capped) logits is ``2 c lse softmax(z)``."""
    return z_loss * lse.square()


@dataclass(frozen=True)
class RowOptions:
    """What a fused row kernel needs besides ``(logits, target, grad_buffer)``.

    ``(on_mass, off_mass)`` come from :func:`smoothing_coefficients` and ``grad_scale`` from
    :func:`gradient_scale`; ``weight`` is ``(C,)`` of the logits' dtype or None. ``z_loss`` and
    ``softcap`` are the fused options (0 and None: off). ``check`` flags rows holding NaN or
    +inf, or -inf in every class (where the kernel can check during its sweep); ``need_lse``
    asks for the log-sum-exp of ignored rows too.
    """

    weight: torch.Tensor | None
    ignore_index: int
    on_mass: float
    off_mass: float
    grad_scale: float
    z_loss: float = 0.0
    softcap: float | None = None
    check: bool = False
    need_lse: bool = False


RowKernel = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, RowOptions],
    tuple[torch.Tensor, torch.Tensor, torch.Tensor],
]
"""``(logits, target, grad_buffer, options)`` -> ``(loss, lse, status)`` per row; writes
``grad_scale * dloss_i/dz_i`` rows into ``grad_buffer`` (which may be ``logits``)."""
