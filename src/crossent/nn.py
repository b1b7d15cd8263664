"""``torch.nn.Module`` wrappers of the crossent losses, with the same arguments.

Tensors given at construction (``weight``, ``pos_weight``, a per-class ``alpha``, the linear
loss's ``class_weight`` and ``logit_bias``) are registered as buffers, so they follow
``module.to(device)`` and appear in ``state_dict``. Options are checked when the module is
built, by the checks the functional loss runs (:mod:`crossent._validation`), and every argument
again on each call. ``validate`` is passed to the functional loss on each call: ``None`` (the
default) follows :func:`crossent.set_validation`, ``False`` skips the value checks (no pass
over the data, no host synchronisation), see :mod:`crossent._validation.switch` for what each
mode costs.

The options, their defaults and their documentation are the functional loss's: each module
takes them as keywords (typed by the ``TypedDict`` below) and passes them on unchanged. The one
exception is ``return_lse``: it turns the function's result into a ``(loss, lse)`` pair, and a
loss module returns one tensor (the loss, so that ``criterion(...).backward()`` and code
written for ``torch.nn.CrossEntropyLoss`` work unchanged); call the function for the
log-sum-exp.

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
from crossent._validation.fused_options import check_fused_options
from crossent._validation.numbers import check_bool, check_int, check_number
from crossent.losses._inputs import check_options
from crossent.units import Base

if TYPE_CHECKING:  # typing.Unpack is Python >= 3.11; only the annotations use it
    from typing_extensions import Unpack

__all__ = ["BinaryCrossEntropyLoss", "CrossEntropyLoss", "FocalLoss", "LinearCrossEntropyLoss"]


class _Options(TypedDict, total=False):
    """Options every loss takes (see :func:`crossent.cross_entropy` for their meaning)."""

    reduction: Reduction
    label_smoothing: float
    base: Base
    validate: bool | None


class _BinaryOptions(_Options, total=False):
    eps: float | None
    input_kind: BinaryInputKind


class _MulticlassOptions(_Options, total=False):
    eps: float | None
    ignore_index: int
    smoothing: Smoothing
    input_kind: InputKind


class _CrossEntropyOptions(_MulticlassOptions, total=False):
    implementation: Implementation
    inplace: bool
    z_loss: float
    softcap: float | None


class _FocalOptions(_MulticlassOptions, total=False):
    mode: FocalMode


class _LinearOptions(_Options, total=False):
    temperature: float
    chunk_size: int | None
    ignore_index: int
    smoothing: Smoothing
    z_loss: float
    softcap: float | None


# the scalar options' checks, with the bounds the functional losses give them (choices and
# z_loss/softcap are checked below through the same helpers the losses call); eps waits for
# the call, where its bound depends on the input's dtype
_OPTION_CHECKS: dict[str, Callable[[Any], object]] = {
    "ignore_index": lambda value: check_int(value, "ignore_index"),
    "inplace": lambda value: check_bool(value, "inplace"),
    "validate": lambda value: value is None or check_bool(value, "validate"),
    "temperature": lambda value: check_number(value, "temperature", low=0.0, low_open=True),
    "chunk_size": lambda value: value is None or check_int(
        value, "chunk_size", low=1, none_ok=True),
}


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
        if "return_lse" in unknown:
            raise TypeError(
                f"{type(self).__name__}() takes no return_lse: a loss module returns one "
                f"tensor, the loss; call crossent.{type(self)._loss.__name__}(..., "
                "return_lse=True) for the log-sum-exp"
            )
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
            elif name in _OPTION_CHECKS:
                _OPTION_CHECKS[name](values[name])
        if "z_loss" in values:
            input_kind = values.get("input_kind", "logits")
            check_fused_options(values["z_loss"], values["softcap"], False, input_kind)
        for name, tensor in tensors.items():
            self.register_buffer(name, tensor)
        self._tensor_names = tuple(tensors)
        self._option_names = tuple(values)
        for name, value in values.items():
            setattr(self, name, value)

    def _arguments(self) -> dict[str, Any]:
        names = self._tensor_names + self._option_names
        return {name: getattr(self, name) for name in names}

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_options)


class _ScoresLoss(_LossModule):
    """A loss of scores (logits, log-probabilities or probabilities) against a target."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` against ``target`` (see the functional loss)."""
        return type(self)._loss(input, target, **self._arguments())


class CrossEntropyLoss(_ScoresLoss):
    """Module form of :func:`crossent.cross_entropy`; ``weight`` is a buffer.

    Every option of the function but ``return_lse`` (see the module docstring), among them
    PaLM's ``z_loss`` and Gemma 2's logit ``softcap`` (both need ``input_kind="logits"``,
    checked here) and ``inplace`` (the fused kernel writes the gradient into ``input``, which
    the call consumes).

    >>> criterion = CrossEntropyLoss(z_loss=1e-4, softcap=30.0)
    >>> logits = torch.randn(8, 5, requires_grad=True)
    >>> criterion(logits, torch.randint(0, 5, (8,))).backward()
    """

    _loss = staticmethod(losses.cross_entropy)
    _option_types = _CrossEntropyOptions
    _repr_options = (
        "reduction", "label_smoothing", "smoothing", "input_kind", "base", "z_loss", "softcap"
    )
    weight: torch.Tensor | None

    def __init__(
        self, weight: torch.Tensor | None = None, **options: Unpack[_CrossEntropyOptions]
    ) -> None:
        super().__init__({"weight": weight}, dict(options))
class BinaryCrossEntropyLoss(_ScoresLoss):
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


class FocalLoss(_ScoresLoss):
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


class LinearCrossEntropyLoss(_LossModule):
    """Module form of :func:`crossent.linear_cross_entropy`: the cross-entropy of a linear
    output layer, ``hidden @ weight.T + bias``, without materialising its ``(N, V)`` logits.

    ``forward(hidden, weight, target, bias=None)`` takes the projection in the function's
    order. The projection is the model's (an ``nn.Linear``'s ``weight`` and ``bias``, often
    tied to the input embedding) and is learnt there, so it is an argument, not state of the
    loss; gradients flow to ``hidden``, ``weight`` and ``bias``. (Liger-Kernel's
    ``LigerFusedLinearCrossEntropyLoss`` takes the same tensors as ``(weight, hidden, target,
    bias)``.) The module holds the loss's options and its fixed per-class tensors,
    ``class_weight`` and ``logit_bias`` (e.g. a log prior), as buffers; a learnt per-class
    offset belongs in ``bias``. Every option of the function but ``return_lse`` (see the module
    docstring); ``class_weight`` is named as in the function, since ``weight`` is the
    projection here.

    >>> head = torch.nn.Linear(16, 100)
    >>> criterion = LinearCrossEntropyLoss(label_smoothing=0.1, z_loss=1e-4)
    >>> hidden = torch.randn(8, 16, requires_grad=True)
    >>> loss = criterion(hidden, head.weight, torch.randint(0, 100, (8,)), head.bias)
    >>> loss.backward()
    >>> head.weight.grad.shape, hidden.grad.shape
    (torch.Size([100, 16]), torch.Size([8, 16]))
    """

    _loss = staticmethod(losses.linear_cross_entropy)
    _option_types = _LinearOptions
    _repr_options = (
        "reduction", "temperature", "label_smoothing", "smoothing", "base", "z_loss", "softcap"
    )
    class_weight: torch.Tensor | None
    logit_bias: torch.Tensor | None

    def __init__(
        self,
        class_weight: torch.Tensor | None = None,
        logit_bias: torch.Tensor | None = None,
        **options: Unpack[_LinearOptions],
    ) -> None:
        super().__init__({"class_weight": class_weight, "logit_bias": logit_bias}, dict(options))

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        target: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of ``hidden @ weight.T + bias`` against ``target`` (see the function)."""
        return type(self)._loss(hidden, weight, target, bias=bias, **self._arguments())
