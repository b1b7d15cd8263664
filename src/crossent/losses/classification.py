"""The cross-entropy loss family: functional, autograd-aware, CPU and CUDA.

Each function validates its arguments once, at the top (through :mod:`crossent._validation`), and
then computes with :mod:`crossent.kernels.reference` or, for :func:`cross_entropy`, a fused
kernel (numba on CPU, Triton on CUDA). Exact definitions: docs/ARCHITECTURE.md.

Deliberate differences from ``torch.nn.functional`` (everything else matches it to float
tolerance, as the tests show on randomised inputs):

* ``reduction="mean"`` over zero elements or zero total weight (e.g. an all-ignored batch)
  returns 0 with zero gradient, where PyTorch returns NaN.
* A class with target mass 0 contributes exactly 0 even where its logit is ``-inf`` (PyTorch
  gives NaN for probability targets); binary cross-entropy at a logit of ``±inf`` is 0 with zero
  gradient where the label agrees (PyTorch gives NaN).
* Bad input (out-of-range indices, non-finite values, probabilities not summing to 1, shape
  mismatches) raises :class:`~crossent.errors.CrossentError` instead of a RuntimeError or a NaN.
* Integer targets of any integer dtype, weights of another floating dtype and integer or bool
  binary targets are accepted and converted.
* ``input_kind="probs"`` clips probabilities below at ``eps`` (PyTorch's
  ``binary_cross_entropy`` clamps the log at -100 instead), so the loss of a probability 0 for
  the true class is ``-log(eps)`` (36.0 for float64, 15.9 for float32).

Result dtype: float16/bfloat16 inputs are computed in float32 and the result is returned in the
input's dtype (like PyTorch; a large ``reduction="sum"`` can overflow float16, so sum in float32
if that matters). float32 and float64 are computed and returned in their own precision. Under
``torch.autocast`` every loss computes and returns float32, as PyTorch's losses do.

Validation: ``validate=None`` follows :func:`crossent.set_validation` /
:class:`crossent.validation` (on by default). On, the values are checked too (one extra
reduction over each tensor, read on the host); off, only types, shapes, dtypes and options are
checked, with no pass over the data and no host synchronisation (see
:mod:`crossent._validation.switch`).
"""

from __future__ import annotations

from typing import Literal, overload

import torch

from crossent._validation.choices import (
    BinaryInputKind,
    FocalMode,
    Implementation,
    InputKind,
    Reduction,
    Smoothing,
    check_choice,
)
from crossent._validation.fused_options import check_fused_options
from crossent._validation.numbers import check_bool, check_number
from crossent._validation.switch import resolve
from crossent.errors import CrossentError
from crossent.kernels import reference
from crossent.losses._fused import kernel_checks_values, run_cross_entropy
from crossent.losses._inputs import (
    autocast_to_float32,
    check_alpha,
    prepare_binary,
    prepare_multiclass,
    restore_shape,
)
from crossent.units import Base

__all__ = ["binary_cross_entropy", "cross_entropy", "focal_loss"]


@overload
def cross_entropy(
    input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = ...,
    ignore_index: int = ..., reduction: Reduction = ..., label_smoothing: float = ...,
    smoothing: Smoothing = ..., input_kind: InputKind = ..., base: Base = ...,
    eps: float | None = ..., implementation: Implementation = ..., inplace: bool = ...,
    validate: bool | None = ..., z_loss: float = ..., softcap: float | None = ...,
    return_lse: Literal[False] = ...,
) -> torch.Tensor: ...


@overload
def cross_entropy(
    input: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = ...,
    ignore_index: int = ..., reduction: Reduction = ..., label_smoothing: float = ...,
    smoothing: Smoothing = ..., input_kind: InputKind = ..., base: Base = ...,
    eps: float | None = ..., implementation: Implementation = ..., inplace: bool = ...,
    validate: bool | None = ..., z_loss: float = ..., softcap: float | None = ...,
    return_lse: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...


@autocast_to_float32
def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    smoothing: Smoothing = "uniform",
    input_kind: InputKind = "logits",
    base: Base = "nats",
    eps: float | None = None,
    implementation: Implementation = "auto",
    inplace: bool = False,
    validate: bool | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Cross-entropy between a predicted distribution and a target distribution.

    Shapes: ``input`` is ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)`` (class
    dimension 1, as in PyTorch); ``target`` is class indices of shape ``(N, d1, ...)`` (any
    integer dtype) or class probabilities (one-hot or soft) of ``input``'s shape. The result is
    ``(N, d1, ...)`` for ``reduction="none"`` and a scalar otherwise.

    .. math::

        \ell_i = -\sum_c w_c\, t_{ic} \log q_{ic}

    with ``q = softmax(input)`` computed as ``z - logsumexp(z)`` and ``t`` the target after
    label smoothing ε: ``"uniform"`` (PyTorch's) ``t = (1-ε) y + ε/C``; ``"off_target"``
    ``t = (1-ε) y + ε (1-y)/(C-1)`` (for a one-hot ``y``: ``1-ε`` on the true class and
    ``ε/(C-1)`` on each other class; the same formula defines it for soft targets).

    Args:
        input: logits, log-probabilities or probabilities (``input_kind``), floating dtype.
        target: class indices or class probabilities (rows summing to 1, see
            :func:`crossent._validation.masks.sum_tolerance`).
        weight: ``(C,)`` non-negative class weights; each class term is weighted by ``w_c``.
        ignore_index: index targets equal to it contribute 0 and are left out of the mean.
        reduction: ``"none"``, ``"sum"``, or ``"mean"`` (index targets: divided by the sum of
            ``w_{y_i}`` over non-ignored elements; probability targets: by the number of
            elements). A mean over nothing is 0 with zero gradient.
        label_smoothing: ε in [0, 1].
        smoothing: where ε goes, ``"uniform"`` or ``"off_target"`` (needs C >= 2 when ε > 0).
        input_kind: ``"logits"``, ``"log_probs"`` (``-inf`` allowed) or ``"probs"`` (clipped
            below at ``eps``).
        base: ``"nats"``, ``"bits"`` or a number > 1; the loss (and gradient) is divided by
            ``ln(base)``.
        eps: probability clip for ``input_kind="probs"``; default the dtype's machine epsilon.
        implementation: ``"auto"`` (Triton on CUDA, numba on CPU float32/float64 logits,
            otherwise reference), or force ``"reference"`` / ``"fused"``.
        inplace: let the fused kernel store the gradient in ``input``'s memory. This consumes
            ``input`` (it holds the gradient afterwards); only for a tensor used nowhere else.
        validate: check the values (finite logits, indices in [0, C), probabilities summing
            to 1, weights >= 0): one extra reduction over each tensor and, on a GPU, one wait
            for the device per check. ``False`` skips them (nothing reads the data before the
            loss; invalid values give undefined results); ``None`` follows
            :func:`crossent.set_validation`. On the CPU fused kernel the logits check rides
            on the kernel's own sweep (no extra pass), with the same message.
        z_loss: coefficient ``c >= 0`` of PaLM's z-loss: ``c * lse_i^2`` is added to every
            non-ignored element, ``lse_i = logsumexp_c z_ic`` (Liger's ``lse_square_scale``).
            Logits only.
        softcap: Gemma 2's logit soft-capping: every logit becomes ``cap * tanh(z / cap)``
            before the softmax (and the log-sum-exp); None (default) leaves them as they are.
            Logits only.
        return_lse: also return the per-element log-sum-exp of the (soft-capped) logits, in
            nats, shape ``(N, d1, ...)``, without gradient (Cut Cross-Entropy's
            ``return_lse``).

    Returns:
        The loss, in the input's dtype (float16/bfloat16 computed in float32; float32 under
        autocast); with ``return_lse``, the pair ``(loss, lse)``.

    Raises:
        CrossentError: bad argument; the message names it, its value and its position.

    Differences from ``torch.nn.functional.cross_entropy`` (equal everywhere else): a mean over
    no element (all ignored, or zero total weight) is 0 with zero gradient, not NaN; a ``-inf``
    logit of a class with target mass 0 contributes exactly 0 (torch: NaN for probability
    targets); integer targets of any integer dtype and weights of another float dtype are
    accepted; bad input raises CrossentError instead of RuntimeError or a NaN.

    Example:
        >>> logits = torch.zeros(2, 4)
        >>> round(float(cross_entropy(logits, torch.tensor([0, 3]), base="bits")), 6)
        2.0

    References:
        Szegedy et al. 2016, "Rethinking the Inception Architecture" (label smoothing).
    """
    check_choice(implementation, "implementation", Implementation)
    check_bool(inplace, "inplace")
    z_loss, softcap, return_lse = check_fused_options(z_loss, softcap, return_lse, input_kind)
    # the numba kernel checks the logits during its own sweep (no separate pass over them)
    kernel_checks = resolve(validate) and kernel_checks_values(
        implementation, input, target, weight, input_kind)
    prepared = prepare_multiclass(
        input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, smoothing=smoothing, input_kind=input_kind,
        base=base, eps=eps, validate=resolve(validate), check_input=not kernel_checks,
    )
    loss, lse = run_cross_entropy(
        prepared, input, implementation=implementation, ignore_index=ignore_index,
        smoothing=smoothing, reduction=reduction, input_kind=input_kind, inplace=inplace,
        z_loss=z_loss, softcap=softcap, check=kernel_checks, need_lse=return_lse,
    )
    loss = restore_shape(loss, prepared)
    return (loss, lse.reshape(prepared.out_shape)) if return_lse else loss


@autocast_to_float32
def binary_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    input_kind: BinaryInputKind = "logits",
    base: Base = "nats",
    eps: float | None = None,
    validate: bool | None = None,
) -> torch.Tensor:
    r"""Binary cross-entropy, element-wise, from logits (default) or probabilities.

    Shapes: ``input`` any shape; ``target`` the same shape with values in [0, 1] (float, int or
    bool); ``weight`` and ``pos_weight`` broadcast against ``input`` (a ``(C,)`` ``pos_weight``
    weighs the last dimension, as in PyTorch). Result: ``input``'s shape for "none", else a
    scalar ("mean" averages over all elements).

    .. math::

        \ell = -w \left[ p_w\, y \log p + (1 - y) \log (1 - p) \right],
        \qquad y' = y (1 - ε) + ε / 2

    From logits, ``log p = -softplus(-z)`` and ``log(1-p) = -softplus(z)``, so no logit, however
    large, overflows; at ``z = ±inf`` the loss is finite (0) wherever the label agrees.
    Probabilities are clipped to ``[eps, 1 - eps]``.

    Args:
        input: logits or probabilities (``input_kind``), floating dtype.
        target: labels or soft labels in [0, 1].
        weight: non-negative element weights, broadcastable to ``input``.
        pos_weight: non-negative weights of the positive term, broadcastable to ``input``.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``.
        label_smoothing: ε in [0, 1].
        input_kind: ``"logits"`` or ``"probs"``.
        base: ``"nats"``, ``"bits"`` or a number > 1.
        eps: probability clip for ``"probs"``; default the dtype's machine epsilon.
        validate: check the values (no NaN logit, probabilities and targets in [0, 1],
            weights >= 0), one reduction per tensor; ``False`` skips them, ``None`` follows
            :func:`crossent.set_validation` (see :func:`cross_entropy`).

    Returns:
        The loss in the input's dtype (float16/bfloat16 computed in float32; float32 under
        autocast).

    Raises:
        CrossentError: bad argument; the message names it, its value and its position.

    Differences from ``binary_cross_entropy_with_logits`` / ``binary_cross_entropy`` (equal
    everywhere else): a logit of ``±inf`` whose label agrees gives 0 with zero gradient (torch:
    NaN); probabilities are clipped to ``[eps, 1 - eps]`` where torch clamps the log at -100;
    integer and bool targets are accepted; ``label_smoothing`` is extra.

    Example:
        >>> round(float(binary_cross_entropy(torch.zeros(3), torch.ones(3), base="bits")), 6)
        1.0
    """
    prepared = prepare_binary(
        input, target, weight=weight, pos_weight=pos_weight, reduction=reduction,
        label_smoothing=label_smoothing, input_kind=input_kind, base=base, eps=eps,
        validate=resolve(validate),
    )
    return reference.binary_cross_entropy(
        input, prepared.target, weight=weight, pos_weight=pos_weight,
        label_smoothing=prepared.label_smoothing, reduction=reduction,
        divisor=prepared.divisor, input_kind=input_kind, eps=prepared.eps,
    )


@autocast_to_float32
def focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | torch.Tensor | None = None,
    mode: FocalMode = "multiclass",
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    smoothing: Smoothing = "uniform",
    input_kind: InputKind = "logits",
    base: Base = "nats",
    eps: float | None = None,
    validate: bool | None = None,
) -> torch.Tensor:
    r"""Focal loss (Lin et al. 2017): cross-entropy down-weighting well-classified examples.

    Multi-class (softmax; shapes and targets as :func:`cross_entropy`):

    .. math:: \ell_i = -\sum_c α_c (1 - q_{ic})^γ\, t_{ic} \log q_{ic}

    Binary (sigmoid; shapes as :func:`binary_cross_entropy`), torchvision's
    ``sigmoid_focal_loss``:

    .. math:: \ell = α_t (1 - p_t)^γ\, \mathrm{BCE}(p, y), \quad p_t = p y + (1-p)(1-y),
              \quad α_t = α y + (1 - α)(1 - y)

    which is ``-α_t (1 - p_t)^γ log p_t`` for hard labels. Computed in log space: ``1 - q`` as
    ``-expm1(log q)``, ``1 - p_t`` from ``sigmoid(±z)``. ``gamma=0, alpha=None`` is exactly
    :func:`cross_entropy` / :func:`binary_cross_entropy`.

    Args:
        input: logits (default), log-probabilities (multi-class only) or probabilities.
        target: multi-class: indices or probabilities; binary: labels in [0, 1].
        gamma: focusing parameter γ >= 0.
        alpha: multi-class: None, a number >= 0, or a ``(C,)`` tensor of class weights;
            binary: None or a number in [0, 1] (weight of the positive class).
        mode: ``"multiclass"`` or ``"binary"``.
        ignore_index: multi-class index targets only, as in :func:`cross_entropy`.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``. "mean" divides by the number of
            non-ignored elements: α is a weighting, not a normaliser (as in torchvision).
        label_smoothing: ε in [0, 1]; multi-class as :func:`cross_entropy`, binary
            ``y' = y (1 - ε) + ε / 2``.
        smoothing: multi-class smoothing mode, as :func:`cross_entropy`.
        input_kind: ``"logits"``, ``"log_probs"`` (multi-class) or ``"probs"``.
        base: ``"nats"``, ``"bits"`` or a number > 1.
        eps: probability clip for ``"probs"``.
        validate: check the values, as :func:`cross_entropy` / :func:`binary_cross_entropy`
            do (also a ``(C,)`` ``alpha``); ``False`` skips them, ``None`` follows
            :func:`crossent.set_validation`.

    Returns:
        The loss in the input's dtype (float16/bfloat16 computed in float32; float32 under
        autocast).

    Raises:
        CrossentError: bad argument; the message names it, its value and its position.

    Example:
        >>> logits = torch.tensor([[0.0, 0.0]])
        >>> round(float(focal_loss(logits, torch.tensor([0]), gamma=1.0)), 6)  # 0.5 * ln 2
        0.346574

    References:
        Lin, Goyal, Girshick, He, Dollár 2017, "Focal Loss for Dense Object Detection".
    """
    check_choice(mode, "mode", FocalMode)
    gamma_value = check_number(gamma, "gamma", low=0.0)
    checked = resolve(validate)
    if mode == "binary":
        binary_kind: BinaryInputKind = check_choice(
            input_kind, "input_kind (with mode='binary')", BinaryInputKind
        )
        prepared_binary = prepare_binary(
            input, target, weight=None, pos_weight=None, reduction=reduction,
            label_smoothing=label_smoothing, input_kind=binary_kind, base=base, eps=eps,
            validate=checked,
        )
        if alpha is not None:
            if isinstance(alpha, torch.Tensor):
                raise CrossentError("alpha: a tensor of class weights needs mode='multiclass'; "
                                    "mode='binary' takes a number in [0, 1]")
            alpha = check_number(alpha, "alpha", low=0.0, high=1.0)
        return reference.binary_focal_loss(
            input, prepared_binary.target, gamma=gamma_value, alpha=alpha,
            label_smoothing=prepared_binary.label_smoothing, reduction=reduction,
            divisor=prepared_binary.divisor, input_kind=binary_kind, eps=prepared_binary.eps,
        )
    prepared = prepare_multiclass(
        input, target, weight=None, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, smoothing=smoothing, input_kind=input_kind,
        base=base, eps=eps, validate=checked,
    )
    checked_alpha = check_alpha(alpha, prepared.num_classes, input, checked)
    loss = reference.focal_loss(
        prepared.scores, prepared.target, gamma=gamma_value, alpha=checked_alpha,
        ignore_index=ignore_index, label_smoothing=prepared.label_smoothing,
        smoothing=smoothing, reduction=reduction, divisor=prepared.divisor,
        input_kind=input_kind, eps=prepared.eps,
    )
    return restore_shape(loss, prepared)
