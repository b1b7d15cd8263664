"""The public ``linear_cross_entropy``: validates its inputs, then hands them to the chunked
kernel (:mod:`crossent.kernels.linear`) on the CPU or the Triton one on CUDA."""

from __future__ import annotations

from typing import Any, Literal, overload

import torch

from crossent._validation import rules
from crossent._validation import tensors as _checks
from crossent._validation.choices import Reduction, Smoothing, check_choice
from crossent._validation.fused_options import check_fused_options
from crossent._validation.numbers import check_int, check_number
from crossent._validation.switch import resolve
from crossent.errors import CrossentError
from crossent.kernels.linear import chunked_linear_cross_entropy
from crossent.losses._inputs import (
    autocast_to_float32,
    check_options,
    guard_index_target,
    poison,
)
from crossent.units import Base


def _check_class_vector(
    value: object, name: str, num_classes: int, like: torch.Tensor, validate: bool
) -> None:
    tensor = _checks.check_tensor(value, name)
    if tensor.dim() != 1 or tensor.shape[0] != num_classes:
        raise CrossentError(
            f"{name} has shape {tuple(tensor.shape)}, expected ({num_classes},): one value per "
            f"class (V = {num_classes}, the rows of weight)"
        )
    _checks.check_floating(tensor, name)
    _checks.check_same_device(tensor, name, like)
    if validate:
        rules.check_finite(tensor, name)


def _check_shapes(hidden: object, weight: object, target: object) -> bool:
    """Types, dtypes, devices and shapes of the three tensors; whether ``target`` holds
    probabilities (``(..., V)``, floating) rather than class indices (``(...)``, integer)."""
    hidden = _checks.check_tensor(hidden, "hidden")
    weight = _checks.check_tensor(weight, "weight")
    _checks.check_floating(hidden, "hidden")
    _checks.check_floating(weight, "weight")
    if hidden.dim() < 1:
        raise CrossentError("hidden is a scalar, expected shape (..., D)")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise CrossentError(
            f"weight has shape {tuple(weight.shape)}, expected (V, {hidden.shape[-1]}): "
            f"hidden has shape {tuple(hidden.shape)} (D = {hidden.shape[-1]})"
        )
    if weight.shape[0] < 1:
        raise CrossentError("weight has 0 rows: need at least one class (V >= 1)")
    _checks.check_same_device(weight, "weight", hidden)
    if weight.dtype != hidden.dtype:
        raise CrossentError(
            f"weight has dtype {weight.dtype}, but hidden has dtype {hidden.dtype}: "
            "pass both in the same dtype"
        )
    classes = weight.shape[0]
    target = _checks.check_tensor(target, "target")
    batch_shape = hidden.shape[:-1]
    if tuple(target.shape) == (*batch_shape, classes) and target.is_floating_point():
        soft = True
    elif tuple(target.shape) == tuple(batch_shape):
        soft = False
    else:
        raise CrossentError(
            f"target has shape {tuple(target.shape)}, but hidden has shape "
            f"{tuple(hidden.shape)} and weight {tuple(weight.shape)}: expected class indices "
            f"of shape {tuple(batch_shape)} or probabilities of shape "
            f"{(*batch_shape, classes)}"
        )
    _checks.check_same_device(target, "target", hidden)
    if not soft:
        _checks.check_index_dtype(target)
    return soft


@overload
def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *,
    bias: torch.Tensor | None = ..., logit_bias: torch.Tensor | None = ...,
    temperature: float = ..., chunk_size: int | None = ...,
    class_weight: torch.Tensor | None = ..., ignore_index: int = ..., reduction: Reduction = ...,
    label_smoothing: float = ..., smoothing: Smoothing = ..., base: Base = ...,
    validate: bool | None = ..., z_loss: float = ..., softcap: float | None = ...,
    return_lse: Literal[False] = ...,
) -> torch.Tensor: ...


@overload
def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *,
    bias: torch.Tensor | None = ..., logit_bias: torch.Tensor | None = ...,
    temperature: float = ..., chunk_size: int | None = ...,
    class_weight: torch.Tensor | None = ..., ignore_index: int = ..., reduction: Reduction = ...,
    label_smoothing: float = ..., smoothing: Smoothing = ..., base: Base = ...,
    validate: bool | None = ..., z_loss: float = ..., softcap: float | None = ...,
    return_lse: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...


@autocast_to_float32
def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    logit_bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    class_weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    smoothing: Smoothing = "uniform",
    base: Base = "nats",
    validate: bool | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of a linear output layer, without materialising the (N, V) logits.

    Shapes: ``hidden`` (..., D), ``weight`` (V, D) (the projection, as in ``torch.nn.Linear``),
    ``target`` (...) int class indices or (..., V) class probabilities; ``bias``, ``logit_bias``
    and ``class_weight`` (V,). Returns a scalar, or the (...) per-row losses for
    ``reduction="none"``.

    .. math::
        z = (h W^T + b + \\beta) / T, \\qquad
        \\ell = \\mathrm{cross\\_entropy}(z, y) \\;[+\\, c_z\\, \\mathrm{lse}(z)^2]

    with ``z -> cap tanh(z / cap)`` applied first when ``softcap`` is given.

    It equals ``crossent.cross_entropy(logits, target, weight=class_weight, ...)`` on the
    materialised logits, value and gradients (w.r.t. ``hidden``, ``weight``, ``bias`` and
    ``logit_bias``), with the same options (see docs/ARCHITECTURE.md). Rows are processed in
    chunks of ``chunk_size`` rows (default: a logits buffer of a quarter of the weight, at
    least 48 MiB and at most half the weight or 8 MiB, and at least 64 rows); per chunk one
    GEMM, the fused softmax-gradient kernel in place, and the two gradient GEMMs, all during the
    forward pass. float16/bfloat16 are computed in float32; on
    the CPU such a weight is upcast one block of classes at a time (never whole), and its
    gradient is finished in float32 per block and rounded once to its dtype; this costs one
    more GEMM (the logits are computed twice) and no float32 copy of the whole weight.

    Args:
        hidden: (..., D) features, floating.
        weight: (V, D) output projection (class weights are ``class_weight``).
        target: (...) int64 class indices in [0, V) or ``ignore_index``; or (..., V)
            probabilities.
        bias: (V,) bias of the projection.
        logit_bias: (V,) extra per-class logit offset, e.g. ``-log Q`` for the sampled-softmax
            correction (Yi et al. 2019) or a log prior.
        temperature: divides the logits; a finite number > 0.
        chunk_size: rows per chunk (>= 1); None picks it from the memory budget.
        class_weight: (V,) non-negative class weights (PyTorch's ``weight`` of cross_entropy).
        ignore_index: index-target rows with this value contribute nothing.
        reduction: "mean" (over non-ignored rows, weighted), "sum" or "none".
        label_smoothing: ε in [0, 1]; ``smoothing`` "uniform" (ε / V on every class, PyTorch)
            or "off_target" (ε / (V - 1) on the other classes).
        base: "nats", "bits" or a number > 1: the loss is divided by ln(base).
        validate: check the values (``hidden``, ``weight``, ``bias``, ``logit_bias`` finite,
            indices in [0, V), probabilities summing to 1, class weights >= 0): one extra
            pass over ``hidden`` and ``weight`` and, on a GPU, one wait for the device per
            check. ``False`` skips them (shapes, dtypes and options are still checked);
            ``None`` follows :func:`crossent.set_validation`. Under ``torch.autocast`` the
            loss computes and returns float32, like PyTorch's losses.
        z_loss: coefficient ``c_z >= 0`` of PaLM's z-loss ``c_z lse_i^2`` added to every
            non-ignored row (Liger's ``lse_square_scale``).
        softcap: Gemma 2's soft-capping of the logits, ``z -> cap tanh(z / cap)`` (applied
            after the temperature), or None.
        return_lse: also return the per-row log-sum-exp of the (capped) logits, shape (...),
            in nats and without gradient (Cut Cross-Entropy's ``return_lse``).

    Returns:
        The loss; with ``return_lse``, the pair ``(loss, lse)``.

    Raises:
        CrossentError: a shape, dtype, device, value or option is invalid; the message names it.

    Example:
        >>> h, w = torch.randn(4, 3), torch.randn(10, 3)
        >>> loss = linear_cross_entropy(h, w, torch.tensor([1, 2, 3, 4]))

    References:
        Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models" (2024).
    """
    soft = _check_shapes(hidden, weight, target)
    classes, batch_shape = weight.shape[0], hidden.shape[:-1]
    label_smoothing, divisor = check_options(reduction, label_smoothing, base)
    check_choice(smoothing, "smoothing", Smoothing)
    temperature = check_number(temperature, "temperature", low=0.0, low_open=True)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", low=1, none_ok=True)
    ignore_index = check_int(ignore_index, "ignore_index")
    z_loss, softcap, return_lse = check_fused_options(z_loss, softcap, return_lse)
    checked = resolve(validate)
    for name, vector in (("bias", bias), ("logit_bias", logit_bias)):
        if vector is not None:
            _check_class_vector(vector, name, classes, hidden, checked)
    if class_weight is not None:
        _checks.check_class_weight(
            class_weight, classes, hidden, "class_weight", validate=checked
        )
    hidden_rows = hidden.reshape(-1, hidden.shape[-1])  # (N, D)
    target_rows = target.reshape(-1, classes) if soft else target.reshape(-1)  # (N, V) / (N,)
    unchecked = None
    if checked:
        rules.check_finite(hidden_rows, "hidden")
        rules.check_finite(weight, "weight")
        if soft:
            rules.check_probabilities(target_rows, "target")
        else:
            _checks.check_index_values(target_rows, classes, ignore_index)
    elif not soft:
        target_rows, unchecked = guard_index_target(target_rows, classes, ignore_index)

    options: dict[str, Any] = {
        "bias": bias, "logit_bias": logit_bias, "temperature": float(temperature),
        "chunk_size": chunk_size, "class_weight": class_weight, "ignore_index": ignore_index,
        "reduction": reduction, "label_smoothing": label_smoothing, "smoothing": smoothing,
        "divisor": divisor, "z_loss": z_loss, "softcap": softcap,
        "row_kernel": "triton" if hidden.is_cuda else "numba",
    }
    loss, lse = chunked_linear_cross_entropy(hidden_rows, weight, target_rows, **options)
    loss = poison(loss, unchecked)
    if reduction == "none":
        loss = loss.reshape(batch_shape)
    return (loss, lse.reshape(batch_shape)) if return_lse else loss
