"""cross_entropy's dispatch: layouts, in-place, and gradients the fused kernels do not give."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import crossent


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(6, 5, generator=gen, dtype=torch.float64), torch.randint(
        0, 5, (6,), generator=gen
    )


@pytest.mark.parametrize("implementation", ["reference", "auto", "fused"])
def test_non_contiguous_and_trailing_dim_inputs_match_torch(implementation: str) -> None:
    gen = torch.Generator().manual_seed(1)
    transposed = torch.randn(5, 6, generator=gen, dtype=torch.float64).t()  # (6, 5) strided
    target = torch.randint(0, 5, (6,), generator=gen)
    torch.testing.assert_close(
        crossent.cross_entropy(transposed, target, implementation=implementation),
        F.cross_entropy(transposed, target),
    )
    images = torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64)  # (N, C, H, W)
    labels = torch.randint(0, 5, (2, 3, 4), generator=gen)
    for reduction in ("none", "mean"):
        torch.testing.assert_close(
            crossent.cross_entropy(images, labels, reduction=reduction,
                                   implementation=implementation),
            F.cross_entropy(images, labels, reduction=reduction),
        )


def test_inplace_gives_the_same_loss_and_gradient() -> None:
    logits, target = _data()
    expected = F.cross_entropy(logits, target, label_smoothing=0.1)
    (expected_grad,) = torch.autograd.grad(
        F.cross_entropy(logits.requires_grad_(True), target, label_smoothing=0.1), logits
    )
    consumed = logits.detach().clone().requires_grad_(True)
    loss = crossent.cross_entropy(consumed, target, label_smoothing=0.1, inplace=True)
    loss.backward()
    torch.testing.assert_close(loss.detach(), expected)
    assert consumed.grad is not None
    torch.testing.assert_close(consumed.grad, expected_grad)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
def test_gradient_with_respect_to_class_weights_is_minus_the_log_probabilities(
    implementation: str,
) -> None:
    logits, target = _data(2)
    weight = torch.rand(5, dtype=torch.float64).requires_grad_(True)
    loss = crossent.cross_entropy(
        logits, target, weight=weight, reduction="sum", implementation=implementation
    )
    loss.backward()
    log_q = torch.log_softmax(logits, 1)
    # d/dw_c sum_i -w_{y_i} log q_{i, y_i} = -sum_{i: y_i = c} log q_{i, c}
    expected = torch.zeros(5, dtype=torch.float64).index_add_(
        0, target, -log_q[torch.arange(6), target]
    )
    assert weight.grad is not None
    torch.testing.assert_close(weight.grad, expected)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
def test_gradient_with_respect_to_soft_targets_is_minus_the_log_probabilities(
    implementation: str,
) -> None:
    logits, _ = _data(3)
    target = torch.softmax(torch.randn(6, 5, dtype=torch.float64), 1).requires_grad_(True)
    loss = crossent.cross_entropy(logits, target, reduction="sum", implementation=implementation)
    loss.backward()
    assert target.grad is not None
    torch.testing.assert_close(target.grad, -torch.log_softmax(logits, 1))


def test_float32_fused_and_reference_agree_with_torch_to_float32_tolerance() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(64, 300, generator=gen) * 5
    target = torch.randint(0, 300, (64,), generator=gen)
    target[::7] = -100
    weight = torch.rand(300, generator=gen) + 0.5
    expected = F.cross_entropy(logits, target, weight=weight, label_smoothing=0.05)
    for implementation in ("reference", "fused"):
        torch.testing.assert_close(
            crossent.cross_entropy(logits, target, weight=weight, label_smoothing=0.05,
                                   implementation=implementation),
            expected, rtol=1e-5, atol=1e-6,
        )
