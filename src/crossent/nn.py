"""``torch.nn.Module`` wrappers of the crossent losses, with the same arguments.

Tensors given at construction (``weight``, ``pos_weight``, a per-class ``alpha``) are registered
as buffers, so they follow ``module.to(device)`` and appear in ``state_dict``. Options are
checked when the module is built, and every argument again on each call. ``validate`` is passed
to the functional loss on each call: ``None`` (the default) follows
:func:`crossent.set_validation`, ``False`` skips the value checks (no pass over the data, no
host synchronisation), see :mod:`crossent._validation.switch` for what each mode costs.

>>> import torch
>>> loss = CrossEntropyLoss(label_smoothing=0.1, base="bits")
>>> value = loss(torch.randn(8, 5), torch.randint(0, 5, (8,)))
"""

from __future__ import annotations

import torch

from crossent import losses
from crossent._validation.choices import (
    BinaryInputKind,
    FocalMode,
    Implementation,
    InputKind,
    Reduction,
    Smoothing,
    check_choice,
)
from crossent._validation.numbers import check_bool, check_number
from crossent.losses._inputs import check_options
from crossent.units import Base

__all__ = ["BinaryCrossEntropyLoss", "CrossEntropyLoss", "FocalLoss"]


def _check_validate(validate: bool | None) -> bool | None:
    return None if validate is None else check_bool(validate, "validate")


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
        validate: bool | None = None,
    ) -> None:
        super().__init__()
        check_options(reduction, label_smoothing, base)
        check_choice(smoothing, "smoothing", Smoothing)
        check_choice(input_kind, "input_kind", InputKind)
        check_choice(implementation, "implementation", Implementation)
        self.validate = _check_validate(validate)
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
            eps=self.eps, implementation=self.implementation, validate=self.validate,
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
        input_kind: BinaryInputKind = "logits",
        base: Base = "nats",
        eps: float | None = None,
        validate: bool | None = None,
    ) -> None:
        super().__init__()
        check_options(reduction, label_smoothing, base)
        check_choice(input_kind, "input_kind", BinaryInputKind)
        self.validate = _check_validate(validate)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction: Reduction = reduction
        self.label_smoothing = label_smoothing
        self.input_kind: BinaryInputKind = input_kind
        self.base = base
        self.eps = eps

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` against ``target`` (see :func:`crossent.binary_cross_entropy`)."""
        return losses.binary_cross_entropy(
            input, target, weight=self.weight, pos_weight=self.pos_weight,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
            input_kind=self.input_kind, base=self.base, eps=self.eps, validate=self.validate,
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
        mode: FocalMode = "multiclass",
        ignore_index: int = -100,
        reduction: Reduction = "mean",
        label_smoothing: float = 0.0,
        smoothing: Smoothing = "uniform",
        input_kind: InputKind = "logits",
        base: Base = "nats",
        eps: float | None = None,
        validate: bool | None = None,
    ) -> None:
        super().__init__()
        check_options(reduction, label_smoothing, base)
        check_choice(mode, "mode", FocalMode)
        check_number(gamma, "gamma", low=0.0)
        self.validate = _check_validate(validate)
        self.gamma = float(gamma)
        # a tensor alpha is state (moves with the module); a number is a plain option
        self.register_buffer("alpha_weight", alpha if isinstance(alpha, torch.Tensor) else None)
        self.alpha_value = None if isinstance(alpha, torch.Tensor) else alpha
        self.mode: FocalMode = mode
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
            input_kind=self.input_kind, base=self.base, eps=self.eps, validate=self.validate,
        )

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma}, mode={self.mode!r}, reduction={self.reduction!r}, "
            f"base={self.base!r}"
        )
