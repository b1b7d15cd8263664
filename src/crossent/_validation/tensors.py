"""The rules that only torch inputs have: tensor type, dtype, device, class indices, class
weights and the layout of a target against its input.

The value rules shared with NumPy (finite, [0, 1], >= 0, sums to 1) live in
:mod:`crossent._validation.rules`; this module adds what needs torch. A check whose name ends
in ``_values`` reads the data; the others look at metadata only, cost nothing and never
synchronise with a GPU, so they run even with validation off.
"""

from __future__ import annotations

import torch

from crossent._validation import rules
from crossent._validation.choices import TargetKind
from crossent._validation.numbers import check_number
from crossent.errors import CrossentError


def check_tensor(value: object, name: str) -> torch.Tensor:
    """``value`` itself if it is a ``torch.Tensor``; otherwise a CrossentError naming its type."""
    if not isinstance(value, torch.Tensor):
        raise CrossentError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(tensor: torch.Tensor, name: str) -> None:
    """Raise unless ``tensor`` has a floating dtype (float16, bfloat16, float32, float64)."""
    check_tensor(tensor, name)
    if not tensor.is_floating_point():
        raise CrossentError(
            f"{name} has dtype {tensor.dtype}, expected a floating dtype "
            "(float16, bfloat16, float32 or float64)"
        )


def check_same_device(tensor: torch.Tensor, name: str, like: torch.Tensor) -> None:
    """Raise unless ``tensor`` lives on the same device as ``like`` (the input)."""
    if tensor.device != like.device:
        raise CrossentError(f"{name} is on {tensor.device}, but input is on {like.device}")


def check_eps(eps: object, dtype: torch.dtype) -> float:
    """The probability clip: ``eps`` if given (a number in (0, 0.5)), else ``finfo(dtype).eps``."""
    if eps is None:
        return float(torch.finfo(dtype).eps)
    return check_number(eps, "eps", low=0.0, high=0.5, low_open=True, high_open=True, none_ok=True)


def check_index_dtype(target: torch.Tensor, name: str = "target") -> None:
    """Raise unless ``target`` is an integer tensor (class indices)."""
    check_tensor(target, name)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise CrossentError(
            f"{name} has dtype {target.dtype}: class indices must be an integer tensor "
            "(or pass class probabilities with the input's shape)"
        )


def check_index_values(
    target: torch.Tensor, num_classes: int, ignore_index: int | None, name: str = "target"
) -> None:
    """Raise unless every entry of ``target`` is in [0, C) or equals ``ignore_index``.

    Message: ``target[17] = 12 is outside [0, 10) (C = 10)``. One ``aminmax`` pass; the first
    offender is located only when it fails.
    """
    data = target.detach()
    if data.numel() == 0:
        return
    low, high = torch.aminmax(data)
    if int(low) >= 0 and int(high) < num_classes:
        return
    bad = (data < 0) | (data >= num_classes)
    if ignore_index is not None:
        bad &= data != ignore_index
    rules.raise_first(data, bad, name, f"is outside [0, {num_classes}) (C = {num_classes})")


def check_index_target(
    target: torch.Tensor, num_classes: int, ignore_index: int | None, name: str = "target"
) -> None:
    """:func:`check_index_dtype` and :func:`check_index_values`."""
    check_index_dtype(target, name)
    check_index_values(target, num_classes, ignore_index, name)


def check_class_weight(
    weight: object,
    num_classes: int,
    like: torch.Tensor,
    name: str = "weight",
    *,
    validate: bool = True,
) -> torch.Tensor:
    """A per-class weight vector: shape (C,), floating, the input's device; with ``validate``
    also finite and >= 0 (``weight[2] = -1 is negative; class weights must be >= 0``).

    Returns the weight (unchanged).
    """
    tensor = check_tensor(weight, name)
    if tensor.dim() != 1 or tensor.shape[0] != num_classes:
        raise CrossentError(
            f"{name} has shape {tuple(tensor.shape)}, expected ({num_classes},): "
            f"one weight per class (C = {num_classes})"
        )
    check_floating(tensor, name)
    check_same_device(tensor, name, like)
    if validate:
        rules.check_nonnegative(tensor, name, hint="; class weights must be >= 0")
    return tensor


def check_target_shape(
    input: torch.Tensor, target: torch.Tensor, class_dim: int = 1
) -> TargetKind:
    """Classify ``target`` against an ``(N, C, d1, ...)`` input (class dim ``class_dim``).

    Returns ``"index"`` for class indices of shape ``(N, d1, ...)`` (the input's shape without
    the class dim) and ``"probs"`` for a target of the input's own shape (one-hot or soft
    probabilities). Anything else is a shape mismatch naming both shapes.
    """
    check_tensor(target, "target")
    expected_index = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.shape == input.shape:
        return "probs"
    if target.shape == expected_index:
        return "index"
    raise CrossentError(
        f"target has shape {tuple(target.shape)}, but input has shape {tuple(input.shape)}: "
        f"expected class indices of shape {tuple(expected_index)} or class probabilities "
        f"of shape {tuple(input.shape)}"
    )


LOG_PROB_MAX = 1e-4


def check_log_probabilities(tensor: torch.Tensor, name: str) -> bool:
    """Raise if ``tensor`` (log-probabilities) holds NaN, ``+inf`` or a value > 1e-4.

    Returns whether it holds ``-inf`` (as :func:`crossent._validation.rules.check_finite`).

    ``-inf`` (probability 0) is allowed. Rows are NOT checked for ``logsumexp == 0``: that
    would cost more than the loss itself; a positive entry is the cheap tell-tale of logits
    passed as log-probabilities.
    """
    has_neg_inf = rules.check_finite(tensor, name, allow_neg_inf=True)
    data = tensor.detach()
    if data.numel() and float(data.max()) > LOG_PROB_MAX:
        rules.raise_first(
            data, data > LOG_PROB_MAX, name,
            'is positive, so it is not a log-probability (pass input_kind="logits" for raw '
            "scores)",
        )
    return has_neg_inf
