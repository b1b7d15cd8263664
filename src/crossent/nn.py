"""``torch.nn.Module`` wrappers of the crossent losses, with the same arguments.

Tensors given at construction (``weight``, ``pos_weight``, a per-class ``alpha``) are registered
as buffers, so they follow ``module.to(device)`` and appear in ``state_dict``. Options are
checked when the module is built, and every argument again on each call. ``validate`` is passed
to the functional loss on each call: ``None`` (the default) follows
:func:`crossent.set_validation`, ``False`` skips the value checks (no pass over the data, no
host synchronisation), see :mod:`crossent._validation.switch` for what each mode costs.

The options, their defaults and their documentation are the functional loss's: each module
takes them as keywords (typed by the ``TypedDict`` below) and passes them on unchanged.

>>> import torch
>>> loss = CrossEntropyLoss(label_smoothing=0.1, base="bits")
>>> value = loss(torch.randn(8, 5), torch.randint(0, 5, (8,)))
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

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

if TYPE_CHECKING:  # typing.Unpack is Python >= 3.11; only the annotations use it
    from typing_extensions import Unpack

__all__ = ["BinaryCrossEntropyLoss", "CrossEntropyLoss", "FocalLoss"]


class _Options(TypedDict, total=False):
    """Options every loss takes (see :func:`crossent.cross_entropy` for their meaning)."""

    reduction: Reduction
    label_smoothing: float
    base: Base
    eps: float | None
    validate: bool | None


class _BinaryOptions(_Options, total=False):
    input_kind: BinaryInputKind


class _MulticlassOptions(_Options, total=False):
    ignore_index: int
    smoothing: Smoothing
    input_kind: InputKind


class _CrossEntropyOptions(_MulticlassOptions, total=False):
    implementation: Implementation


class _FocalOptions(_MulticlassOptions, total=False):
    mode: FocalMode


class _LossModule(torch.nn.Module):
    """Holds a loss's options (checked once, here) and passes them to the functional loss.

    The defaults come from the functional loss's signature, so there is one place for them.
    Each option is an attribute of the module (``module.reduction``); ``forward`` reads them
    on every call.
    """

    _loss: ClassVar[Callable[..., torch.Tensor]]
    _option_types: ClassVar[type]
    _repr_options: ClassVar[tuple[str, ...]]

    def __init__(self, tensors: dict[str, torch.Tensor | None], options: dict[str, Any]) -> None:
        super().__init__()
        hints = typing.get_type_hints(self._option_types)
        unknown = sorted(set(options) - set(hints))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.__init__() got an unexpected keyword argument "
                f"'{unknown[0]}'"
            )
        defaults = inspect.signature(type(self)._loss).parameters
        values = {name: options.get(name, defaults[name].default) for name in hints}
        check_options(values["reduction"], values["label_smoothing"], values["base"])
        for name, hint in hints.items():
            if typing.get_origin(hint) is typing.Literal and name != "reduction":
                check_choice(values[name], name, hint)
        if values["validate"] is not None:
            values["validate"] = check_bool(values["validate"], "validate")
        for name, tensor in tensors.items():
            self.register_buffer(name, tensor)
        self._tensor_names = tuple(tensors)
        self._option_names = tuple(values)
        for name, value in values.items():
            setattr(self, name, value)

    def _arguments(self) -> dict[str, Any]:
        names = self._tensor_names + self._option_names
        return {name: getattr(self, name) for name in names}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` against ``target`` (see the functional loss)."""
        return type(self)._loss(input, target, **self._arguments())

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_options)


class CrossEntropyLoss(_LossModule):
    """Module form of :func:`crossent.cross_entropy`; ``weight`` is a buffer."""

    _loss = staticmethod(losses.cross_entropy)
    _option_types = _CrossEntropyOptions
    _repr_options = ("reduction", "label_smoothing", "smoothing", "input_kind", "base")
    weight: torch.Tensor | None

    def __init__(
        self, weight: torch.Tensor | None = None, **options: Unpack[_CrossEntropyOptions]
    ) -> None:
        super().__init__({"weight": weight}, dict(options))


class BinaryCrossEntropyLoss(_LossModule):
    """Module form of :func:`crossent.binary_cross_entropy`; weights are buffers."""

    _loss = staticmethod(losses.binary_cross_entropy)
    _option_types = _BinaryOptions
    _repr_options = ("reduction", "label_smoothing", "input_kind", "base")
    weight: torch.Tensor | None
    pos_weight: torch.Tensor | None

    def __init__(
        self,
        weight: torch.Tensor | None = None,
        pos_weight: torch.Tensor | None = None,
        **options: Unpack[_BinaryOptions],
    ) -> None:
        super().__init__({"weight": weight, "pos_weight": pos_weight}, dict(options))


class FocalLoss(_LossModule):
    """Module form of :func:`crossent.focal_loss`; a per-class ``alpha`` tensor is a buffer."""

    _loss = staticmethod(losses.focal_loss)
    _option_types = _FocalOptions
    _repr_options = ("gamma", "mode", "reduction", "base")
    alpha_weight: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | torch.Tensor | None = None,
        **options: Unpack[_FocalOptions],
    ) -> None:
        # a tensor alpha is state (moves with the module); a number is a plain option
        tensor_alpha = alpha if isinstance(alpha, torch.Tensor) else None
        super().__init__({"alpha_weight": tensor_alpha}, dict(options))
        self.gamma = float(check_number(gamma, "gamma", low=0.0))
        self.alpha_value = None if isinstance(alpha, torch.Tensor) else alpha

    @property
    def alpha(self) -> float | torch.Tensor | None:
        """The α given at construction (the buffer when it is a tensor)."""
        return self.alpha_weight if self.alpha_weight is not None else self.alpha_value

    def _arguments(self) -> dict[str, Any]:
        arguments = super()._arguments()
        del arguments["alpha_weight"]
        return {**arguments, "gamma": self.gamma, "alpha": self.alpha}
