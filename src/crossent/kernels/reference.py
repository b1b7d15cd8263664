"""Plain-PyTorch implementation of every crossent loss: the semantic source of truth.

Every fast path (``kernels.cpu``, ``kernels.cuda``, ``kernels.linear``) is tested against these
functions. They favour clarity over speed: the target distribution is materialised as a dense
``(M, C)`` tensor and every term of the definition (README, "Exact definitions") is written out.
The rules shared with the fast paths (smoothing coefficients, the mean denominator, row
reductions, soft-capping, z-loss) come from :mod:`crossent.kernels.rules`.

Conventions shared by all functions here:

* Inputs are already validated (see :mod:`crossent._validation`); nothing here raises for bad
  data.
* Multi-class functions take scores of shape ``(M, C)`` (class dimension last, which for 2-d
  tensors is also PyTorch's class dimension 1) and a target of shape ``(M,)`` (int64 class
  indices) or ``(M, C)`` (class probabilities). :mod:`crossent.losses` reshapes
  ``(N, C, d1, ...)`` inputs to this layout.
* float16 / bfloat16 inputs are computed in float32; the result is cast back to the input's
  dtype. float32 and float64 are computed in their own precision.
* Zero-safe: a term whose target mass is exactly 0 contributes exactly 0 to the loss AND to the
  gradient, even where its log-probability is ``-inf`` (the log-probability is masked with
  ``torch.where`` *before* the multiplication, so no ``0 * inf`` appears forwards or backwards).
* ``divisor`` is ``ln(base)`` (:func:`crossent.units.log_divisor`): the loss in nats is divided
  by it, and so are the gradients.
* ``reduction="mean"`` over zero elements (or zero total weight) returns 0 with zero gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from crossent._validation.choices import BinaryInputKind, InputKind, Reduction, Smoothing
from crossent.kernels.rules import (
    mean_denominator,
    reduce_rows,
    smoothing_coefficients,
    softcap_logits,
    z_loss_term,
)

Kernel = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""A fused cross-entropy with cross_entropy's keywords, returning ``(loss, lse, status)``."""


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16 (computed in fp32), otherwise ``dtype`` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _safe_mul_log(mass: torch.Tensor, log_value: torch.Tensor) -> torch.Tensor:
    """``mass * log_value`` that is exactly 0, with zero gradient, wherever ``mass == 0``.

    xlogy-style masking: ``log_value`` is replaced by 0 where there is no mass before the
    product, so ``0 * -inf`` never happens, neither in the value nor in the gradient.
    """
    return mass * torch.where(mass != 0, log_value, torch.zeros_like(log_value))


def log_probabilities(
    scores: torch.Tensor, input_kind: InputKind = "logits", eps: float | None = None
) -> torch.Tensor:
    """``log q`` from ``(M, C)`` scores, in the compute dtype.

    * ``"logits"``: ``z - logsumexp(z)`` (log-sum-exp with max shift; never exp then log).
    * ``"log_probs"``: the input itself.
    * ``"probs"``: ``log(max(q, eps))``, ``eps`` defaulting to the input dtype's machine epsilon.
    """
    values = scores.to(compute_dtype(scores.dtype))
    if input_kind == "logits":
        return values - torch.logsumexp(values, dim=-1, keepdim=True)
    if input_kind == "log_probs":
        return values
    clip = float(torch.finfo(scores.dtype).eps) if eps is None else eps
    return torch.log(values.clamp_min(clip))


def target_distribution(
    target: torch.Tensor,
    num_classes: int,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing: Smoothing = "uniform",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The dense ``(M, C)`` target distribution ``t`` after label smoothing.

    Index targets become one-hot rows (all-zero rows where ``target == ignore_index``). With
    smoothing ``ε``:

    * ``"uniform"`` (PyTorch's): ``t' = (1 - ε) t + ε / C``;
    * ``"off_target"``: ``t' = (1 - ε) t + ε (1 - t) / (C - 1)``, i.e. for a one-hot row the
      target class keeps ``1 - ε`` and each other class gets ``ε / (C - 1)``.

    Ignored rows stay all-zero (they contribute nothing).
    """
    if target.dim() == 2:  # class probabilities (M, C)
        probs = target.to(dtype)
        keep = None
    else:  # class indices (M,)
        keep = target != ignore_index
        safe_index = torch.where(keep, target, torch.zeros_like(target))
        probs = torch.nn.functional.one_hot(safe_index, num_classes).to(dtype)
        probs = probs * keep.unsqueeze(-1).to(dtype)
    if label_smoothing == 0.0:
        return probs
    on_mass, off_mass = smoothing_coefficients(num_classes, label_smoothing, smoothing)
    smoothed = on_mass * probs + off_mass
    if keep is not None:
        smoothed = smoothed * keep.unsqueeze(-1).to(dtype)
    return smoothed


def _row_log_likelihood(
    log_q: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int,
    label_smoothing: float,
    smoothing: Smoothing,
    class_weight: torch.Tensor | None,
    modulate: Callable[[torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    """``sum_c w_c m(log q_c) t_c log q_c`` per row, ``(M,)``; ``m`` is a focal factor or 1.

    Index targets without smoothing have mass on the true class only, so that class's
    log-probability is gathered (zero-safe by construction, and no dense (M, C) target);
    everything else goes through the dense :func:`target_distribution`.
    """
    if target.dim() == 1 and label_smoothing == 0.0:
        keep = target != ignore_index
        safe_index = torch.where(keep, target, torch.zeros_like(target))
        picked = log_q.gather(1, safe_index.unsqueeze(1)).squeeze(1)  # (M,)
        picked = torch.where(keep, picked, torch.zeros_like(picked))  # ignored rows: 0
        terms = picked if modulate is None else picked * modulate(picked)
        if class_weight is not None:
            terms = terms * class_weight[safe_index]
        return terms
    t = target_distribution(
        target, log_q.shape[-1], ignore_index=ignore_index, label_smoothing=label_smoothing,
        smoothing=smoothing, dtype=log_q.dtype,
    )  # (M, C)
    dense = _safe_mul_log(t, log_q)  # (M, C)
    if modulate is not None:
        dense = dense * modulate(log_q)
    if class_weight is not None:
        dense = dense * class_weight
    return dense.sum(dim=-1)


def cross_entropy_and_lse(
    scores: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing: Smoothing = "uniform",
    reduction: Reduction = "mean",
    divisor: float = 1.0,
    input_kind: InputKind = "logits",
    eps: float | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy ``loss_i = -sum_c w_c t_ic log q_ic + c_z lse_i^2`` of ``(M, C)`` scores.

    ``target`` is ``(M,)`` int64 indices or ``(M, C)`` class probabilities; ``t`` is
    :func:`target_distribution`. "mean" divides by ``sum_i w_{y_i}`` over non-ignored rows for
    index targets and by ``M`` for probability targets (PyTorch's conventions). Logits only:
    ``softcap`` first maps ``z -> cap tanh(z / cap)``; ``lse_i`` is the log-sum-exp of the
    (capped) logits, and ``z_loss`` (``c_z``) adds ``c_z lse_i^2`` to every non-ignored row.
    Returns the loss, ``(M,)`` for "none" and a scalar otherwise, in the input's dtype, and
    the ``(M,)`` log-sum-exp in nats, in the compute dtype, detached (zeros unless logits).
    """
    dtype = compute_dtype(scores.dtype)
    if input_kind == "logits":
        capped = softcap_logits(scores.to(dtype), softcap)  # (M, C)
        lse = torch.logsumexp(capped, dim=-1)  # (M,)
        log_q = capped - lse.unsqueeze(-1)
    else:
        log_q = log_probabilities(scores, input_kind, eps)  # (M, C)
        lse = torch.zeros(scores.shape[0], dtype=dtype, device=scores.device)
    class_weight = None if weight is None else weight.to(dtype)
    loss = -_row_log_likelihood(
        log_q, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
        smoothing=smoothing, class_weight=class_weight, modulate=None,
    )  # (M,)
    if z_loss != 0.0:
        keep = target != ignore_index if target.dim() == 1 else torch.ones_like(lse).bool()
        loss = loss + torch.where(keep, z_loss_term(lse, z_loss), torch.zeros_like(lse))
    denominator = mean_denominator(target, class_weight, ignore_index)
    result = reduce_rows(loss, reduction, denominator, divisor).to(scores.dtype)
    return result, lse.detach()


def cross_entropy(scores: torch.Tensor, target: torch.Tensor, **options: Any) -> torch.Tensor:
    """The loss of :func:`cross_entropy_and_lse` (same keywords)."""
    return cross_entropy_and_lse(scores, target, **options)[0]


def focal_loss(
    scores: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | torch.Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing: Smoothing = "uniform",
    reduction: Reduction = "mean",
    divisor: float = 1.0,
    input_kind: InputKind = "logits",
    eps: float | None = None,
) -> torch.Tensor:
    """Multi-class focal loss ``loss_i = -sum_c α_c (1 - q_ic)^γ t_ic log q_ic`` (Lin et al. 2017).

    ``1 - q`` is computed in log space as ``-expm1(log q)`` (accurate when ``q`` is near 1) and
    clamped below at the dtype's smallest normal number, so ``(1 - q)^γ`` has a finite gradient
    even at ``q = 1`` for ``γ < 1``. ``γ = 0`` skips the factor (exactly cross-entropy).
    ``alpha`` is None (1), a scalar, or a ``(C,)`` tensor. "mean" divides by the number of
    non-ignored rows (``α`` is a weighting, not a normaliser, as in torchvision).
    """
    dtype = compute_dtype(scores.dtype)
    log_q = log_probabilities(scores, input_kind, eps)  # (M, C)
    tiny = torch.finfo(dtype).tiny

    def focusing(log_q: torch.Tensor) -> torch.Tensor:
        # 1 - q in log space: -expm1(log q) keeps precision as q -> 1
        return (-torch.expm1(log_q)).clamp_min(tiny).pow(gamma)

    loss = -_row_log_likelihood(
        log_q, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
        smoothing=smoothing, class_weight=alpha.to(dtype) if isinstance(alpha, torch.Tensor)
        else None, modulate=focusing if gamma != 0.0 else None,
    )  # (M,)
    if alpha is not None and not isinstance(alpha, torch.Tensor):
        loss = loss * float(alpha)
    denominator = mean_denominator(target, None, ignore_index)
    return reduce_rows(loss, reduction, denominator, divisor).to(scores.dtype)


def binary_log_probabilities(
    scores: torch.Tensor, input_kind: BinaryInputKind = "logits", eps: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, log(1 - p))`` element-wise, in the compute dtype.

    Logits go through softplus (``log p = -softplus(-z)``, ``log(1 - p) = -softplus(z)``), which
    keeps every logit finite however large, and gives ``0`` and ``-inf`` at ``z = +inf``.
    Probabilities are clipped to ``[eps, 1 - eps]`` before the log.
    """
    values = scores.to(compute_dtype(scores.dtype))
    if input_kind == "logits":
        # softplus keeps large logits finite: log sigmoid(z) = -softplus(-z)
        return -torch.nn.functional.softplus(-values), -torch.nn.functional.softplus(values)
    clip = float(torch.finfo(scores.dtype).eps) if eps is None else eps
    return torch.log(values.clamp_min(clip)), torch.log((1.0 - values).clamp_min(clip))


def _binary_target(
    target: torch.Tensor, dtype: torch.dtype, label_smoothing: float
) -> torch.Tensor:
    """Binary label smoothing ``y' = y (1 - ε) + ε / 2``, in ``dtype``."""
    y = target.to(dtype)
    if label_smoothing != 0.0:
        y = y * (1.0 - label_smoothing) + label_smoothing / 2.0
    return y


def _binary_log_loss(
    y: torch.Tensor,
    log_p: torch.Tensor,
    log_not_p: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``-[pw y log p + (1 - y) log(1 - p)]`` element-wise; a term with mass 0 is 0."""
    positive = _safe_mul_log(y, log_p)
    if pos_weight is not None:
        positive = positive * pos_weight.to(y.dtype)
    return -(positive + _safe_mul_log(1.0 - y, log_not_p))


def binary_cross_entropy(
    scores: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
    divisor: float = 1.0,
    input_kind: BinaryInputKind = "logits",
    eps: float | None = None,
) -> torch.Tensor:
    """Element-wise ``-w [pw y log p + (1 - y) log(1 - p)]`` with ``y' = y (1 - ε) + ε / 2``.

    ``target`` has the input's shape with values in [0, 1]; ``weight`` and ``pos_weight``
    broadcast against the input (``pos_weight`` of shape ``(C,)`` weighs the last dimension, as in
    PyTorch). "mean" is the mean over all elements. Zero-safe: ``y = 1`` at ``z = +inf`` (and
    ``y = 0`` at ``z = -inf``) gives loss 0 and gradient 0.
    """
    dtype = compute_dtype(scores.dtype)
    log_p, log_not_p = binary_log_probabilities(scores, input_kind, eps)
    y = _binary_target(target, dtype, label_smoothing)
    loss = _binary_log_loss(y, log_p, log_not_p, pos_weight)
    if weight is not None:
        loss = loss * weight.to(dtype)
    return reduce_rows(loss, reduction, float(loss.numel()), divisor).to(scores.dtype)


def binary_focal_loss(
    scores: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
    divisor: float = 1.0,
    input_kind: BinaryInputKind = "logits",
    eps: float | None = None,
) -> torch.Tensor:
    """Binary focal loss ``α_t (1 - p_t)^γ BCE(p, y)`` (torchvision's ``sigmoid_focal_loss``).

    ``p_t = p y + (1 - p)(1 - y)`` and ``α_t = α y + (1 - α)(1 - y)``; for hard labels
    ``BCE = -log p_t``. ``1 - p_t = p (1 - y) + (1 - p) y`` is formed from ``sigmoid(z)`` and
    ``sigmoid(-z)`` directly, so it keeps full precision when ``p_t`` is near 1. ``alpha=None``
    means no α weighting (torchvision's ``alpha=-1``).
    """
    dtype = compute_dtype(scores.dtype)
    values = scores.to(dtype)
    y = _binary_target(target, dtype, label_smoothing)
    log_p, log_not_p = binary_log_probabilities(scores, input_kind, eps)
    loss = _binary_log_loss(y, log_p, log_not_p)
    if gamma != 0.0:
        if input_kind == "logits":
            p, not_p = torch.sigmoid(values), torch.sigmoid(-values)
        else:
            p, not_p = values, 1.0 - values
        one_minus_pt = (p * (1.0 - y) + not_p * y).clamp_min(torch.finfo(dtype).tiny)
        loss = loss * one_minus_pt.pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * y + (1.0 - alpha) * (1.0 - y))
    return reduce_rows(loss, reduction, float(loss.numel()), divisor).to(scores.dtype)

