"""``torch.nn.Module`` wrappers of the crossent losses, with the same arguments.

Tensors given at construction (``weight``, ``pos_weight``, a per-class ``alpha``) are registered
as buffers, so they follow ``module.to(device)`` and appear in ``state_dict``. Options are
checked when the module is built, and every argument again on each call.

>>> import torch
>>> loss = CrossEntropyLoss(label_smoothing=0.1, base="bits")
>>> value = loss(torch.randn(8, 5), torch.randint(0, 5, (8,)))
"""

from __future__ import annotations

from typing import Literal

import torch

from crossent import losses
from crossent._validation import tensors as _checks
from crossent.losses._inputs import Implementation, InputKind, Reduction, Smoothing
from crossent.units import Base, log_divisor

__all__ = ["BinaryCrossEntropyLoss", "CrossEntropyLoss", "FocalLoss"]


def _check_options(reduction: str, label_smoothing: float, base: Base) -> None:
    _checks.check_reduction(reduction)
    _checks.check_label_smoothing(label_smoothing)
    log_divisor(base)


class CrossEntropyLoss(torch.nn.Module):
    """Module form of :func:`crossent.cross_entropy`; ``weight`` is a buffer."""

    weight: torch.Tensor | None

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        *,
        ignore_index: int = -100,
        reduction: Reduction = "mean",
        label_smoothing: float = 0.0,
        smoothing: Smoothing = "uniform",
        input_kind: InputKind = "logits",
        base: Base = "nats",
        eps: float | None = None,
        implementation: Implementation = "auto",
    ) -> None:
        super().__init__()
        _check_options(reduction, label_smoothing, base)
        _checks.check_choice(smoothing, "smoothing", ("uniform", "off_target"))
        _checks.check_choice(input_kind, "input_kind", ("logits", "log_probs", "probs"))
        _checks.check_choice(implementation, "implementation", ("auto", "reference", "fused"))
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction: Reduction = reduction
        self.label_smoothing = label_smoothing
        self.smoothing: Smoothing = smoothing
        self.input_kind: InputKind = input_kind
        self.base = base
        self.eps = eps
        self.implementation: Implementation = implementation

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` against ``target`` (see :func:`crossent.cross_entropy`)."""
        return losses.cross_entropy(
            input, target, weight=self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
            smoothing=self.smoothing, input_kind=self.input_kind, base=self.base,
            eps=self.eps, implementation=self.implementation,
        )

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}, "
            f"smoothing={self.smoothing!r}, input_kind={self.input_kind!r}, base={self.base!r}"
        )


class BinaryCrossEntropyLoss(torch.nn.Module):
    """Module form of :func:`crossent.binary_cross_entropy`; weights are buffers."""

    weight: torch.Tensor | None
    pos_weight: torch.Tensor | None

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        pos_weight: torch.Tensor | None = None,
        *,
        reduction: Reduction = "mean",
        label_smoothing: float = 0.0,
        input_kind: Literal["logits", "probs"] = "logits",
        base: Base = "nats",
        eps: float | None = None,
    ) -> None:
        super().__init__()
        _check_options(reduction, label_smoothing, base)
        _checks.check_choice(input_kind, "input_kind", ("logits", "probs"))
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction: Reduction = reduction
        self.label_smoothing = label_smoothing
        self.input_kind: Literal["logits", "probs"] = input_kind
        self.base = base
        self.eps = eps

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` against ``target`` (see :func:`crossent.binary_cross_entropy`)."""
        return losses.binary_cross_entropy(
            input, target, weight=self.weight, pos_weight=self.pos_weight,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
            input_kind=self.input_kind, base=self.base, eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}, "
            f"input_kind={self.input_kind!r}, base={self.base!r}"
        )


class FocalLoss(torch.nn.Module):
    """Module form of :func:`crossent.focal_loss`; a per-class ``alpha`` tensor is a buffer."""

    alpha_weight: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | torch.Tensor | None = None,
        *,
        mode: Literal["multiclass", "binary"] = "multiclass",
        ignore_index: int = -100,
        reduction: Reduction = "mean",
        label_smoothing: float = 0.0,
        smoothing: Smoothing = "uniform",
        input_kind: InputKind = "logits",
        base: Base = "nats",
        eps: float | None = None,
    ) -> None:
        super().__init__()
        _check_options(reduction, label_smoothing, base)
        _checks.check_choice(mode, "mode", ("multiclass", "binary"))
        _checks.check_nonnegative_number(gamma, "gamma")
        self.gamma = float(gamma)
        # a tensor alpha is state (moves with the module); a number is a plain option
        self.register_buffer("alpha_weight", alpha if isinstance(alpha, torch.Tensor) else None)
        self.alpha_value = None if isinstance(alpha, torch.Tensor) else alpha
        self.mode: Literal["multiclass", "binary"] = mode
        self.ignore_index = ignore_index
        self.reduction: Reduction = reduction
        self.label_smoothing = label_smoothing
        self.smoothing: Smoothing = smoothing
        self.input_kind: InputKind = input_kind
        self.base = base
        self.eps = eps

    @property
    def alpha(self) -> float | torch.Tensor | None:
        """The α given at construction (the buffer when it is a tensor)."""
        return self.alpha_weight if self.alpha_weight is not None else self.alpha_value

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` against ``target`` (see :func:`crossent.focal_loss`)."""
        return losses.focal_loss(
            input, target, gamma=self.gamma, alpha=self.alpha, mode=self.mode,
            ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing, smoothing=self.smoothing,
            input_kind=self.input_kind, base=self.base, eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma}, mode={self.mode!r}, reduction={self.reduction!r}, "
            f"base={self.base!r}"
        )
