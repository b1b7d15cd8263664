"""crossent.nn: Module wrappers equal the functional losses; tensors are buffers."""

from __future__ import annotations

import re

import pytest
import torch

import crossent
import crossent.nn as cnn
from crossent import CrossentError


def test_cross_entropy_loss_module_equals_function_and_registers_weight() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, 3, generator=gen)
    target = torch.randint(0, 4, (6, 3), generator=gen)
    weight = torch.rand(4, generator=gen)
    options = {"ignore_index": 1, "label_smoothing": 0.2, "smoothing": "off_target",
               "base": "bits", "reduction": "sum"}
    module = cnn.CrossEntropyLoss(weight, **options)
    assert torch.equal(
        module(logits, target), crossent.cross_entropy(logits, target, weight=weight, **options)
    )
    assert "weight" in dict(module.named_buffers())
    assert torch.equal(module.state_dict()["weight"], weight)
    assert isinstance(module, torch.nn.Module)


def test_module_matches_torch_module_with_default_options() -> None:
    logits = torch.randn(5, 3, dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 1, 0])
    torch.testing.assert_close(
        cnn.CrossEntropyLoss()(logits, target), torch.nn.CrossEntropyLoss()(logits, target)
    )


def test_binary_cross_entropy_loss_module_equals_function() -> None:
    logits = torch.randn(4, 3)
    target = torch.rand(4, 3)
    weight, pos_weight = torch.rand(4, 1), torch.rand(3)
    module = cnn.BinaryCrossEntropyLoss(weight, pos_weight, label_smoothing=0.1)
    assert torch.equal(
        module(logits, target),
        crossent.binary_cross_entropy(
            logits, target, weight=weight, pos_weight=pos_weight, label_smoothing=0.1
        ),
    )
    assert set(dict(module.named_buffers())) == {"weight", "pos_weight"}


def test_focal_loss_module_equals_function_with_tensor_and_scalar_alpha() -> None:
    logits = torch.randn(5, 3)
    target = torch.tensor([0, 1, 2, 2, -100])
    alpha = torch.tensor([0.2, 0.3, 0.5])
    module = cnn.FocalLoss(gamma=1.5, alpha=alpha)
    assert torch.equal(
        module(logits, target), crossent.focal_loss(logits, target, gamma=1.5, alpha=alpha)
    )
    assert "alpha_weight" in dict(module.named_buffers())
    binary = cnn.FocalLoss(alpha=0.25, mode="binary")
    labels = torch.rand(5, 3).round()
    assert torch.equal(
        binary(logits, labels), crossent.focal_loss(logits, labels, alpha=0.25, mode="binary")
    )
    assert binary.alpha == 0.25


def test_buffers_follow_the_module_dtype() -> None:
    module = cnn.CrossEntropyLoss(torch.ones(3)).double()
    assert module.weight is not None and module.weight.dtype == torch.float64


def test_bad_options_fail_at_construction() -> None:
    with pytest.raises(CrossentError, match=re.escape("reduction = 'avg' is not one of")):
        cnn.CrossEntropyLoss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(CrossentError, match=re.escape("label_smoothing = 2 is outside [0, 1]")):
        cnn.BinaryCrossEntropyLoss(label_smoothing=2)
    with pytest.raises(CrossentError, match=re.escape("gamma = -1 must be a finite number")):
        cnn.FocalLoss(gamma=-1)
    with pytest.raises(CrossentError, match=re.escape("base = 1 must be a finite number > 1")):
        cnn.FocalLoss(base=1)
