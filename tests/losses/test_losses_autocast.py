"""Under torch.autocast every crossent loss computes and returns float32, as PyTorch's do.

Each case builds low-precision logits inside an autocast region (a matmul, as a model would),
then compares crossent with ``torch.nn.functional`` in the same region: result dtype, value,
and the dtype and value of the gradient that reaches the low-precision logits and the float32
parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import crossent

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]
DTYPES = [torch.bfloat16, torch.float16]

LossPair = tuple[
    Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
]

MULTICLASS: dict[str, LossPair] = {
    "cross_entropy": (crossent.cross_entropy, F.cross_entropy),
    "cross_entropy_reference": (
        lambda z, y: crossent.cross_entropy(z, y, implementation="reference"),
        F.cross_entropy,
    ),
    "cross_entropy_smoothed_none": (
        lambda z, y: crossent.cross_entropy(z, y, label_smoothing=0.1, reduction="none"),
        lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1, reduction="none"),
    ),
    "focal_loss_gamma_0": (  # gamma = 0 is cross-entropy exactly
        lambda z, y: crossent.focal_loss(z, y, gamma=0.0),
        F.cross_entropy,
    ),
    "module": (crossent.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
}


def _model_output(device: str, dtype: torch.dtype, classes: int = 7):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(16, 5, generator=gen).to(device)
    weight = (torch.randn(5, classes, generator=gen) * 2).to(device).requires_grad_()
    target = torch.randint(0, classes, (16,), generator=gen).to(device)
    return features, weight, target


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(MULTICLASS))
def test_multiclass_losses_compute_in_float32_under_autocast(
    device: str, dtype: torch.dtype, name: str
) -> None:
    ours, theirs = MULTICLASS[name]
    results = []
    for loss_fn in (ours, theirs):
        features, weight, target = _model_output(device, dtype)
        with torch.autocast(device, dtype=dtype):
            logits = features @ weight  # (N, C) in ``dtype``
            logits.retain_grad()
            loss = loss_fn(logits, target)
        assert logits.dtype == dtype
        loss.sum().backward()
        results.append((loss, logits.grad, weight.grad))
    (loss, logits_grad, weight_grad), (expected, expected_logits_grad, expected_weight_grad) = (
        results
    )
    assert loss.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert logits_grad is not None and expected_logits_grad is not None
    assert logits_grad.dtype == expected_logits_grad.dtype == dtype
    torch.testing.assert_close(logits_grad, expected_logits_grad)
    assert weight_grad is not None and weight_grad.dtype == torch.float32
    torch.testing.assert_close(weight_grad, expected_weight_grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_binary_cross_entropy_computes_in_float32_under_autocast(
    device: str, dtype: torch.dtype
) -> None:
    results = []
    for loss_fn in (crossent.binary_cross_entropy, F.binary_cross_entropy_with_logits):
        features, weight, _ = _model_output(device, dtype)
        labels = (torch.arange(16 * 7).reshape(16, 7) % 3 == 0).float().to(device)
        with torch.autocast(device, dtype=dtype):
            logits = features @ weight
            logits.retain_grad()
            loss = loss_fn(logits, labels)
        loss.backward()
        results.append((loss, logits.grad))
    (loss, grad), (expected, expected_grad) = results
    assert loss.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert grad is not None and expected_grad is not None
    assert grad.dtype == expected_grad.dtype == dtype
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_linear_cross_entropy_computes_in_float32_under_autocast(
    device: str, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(1)
    hidden_in = torch.randn(12, 6, generator=gen).to(device)
    projection = torch.randn(6, 6, generator=gen).to(device).requires_grad_()
    weight = torch.randn(9, 6, generator=gen).to(device).requires_grad_()
    target = torch.randint(0, 9, (12,), generator=gen).to(device)
    with torch.autocast(device, dtype=dtype):
        hidden = hidden_in @ projection  # (N, D) in ``dtype``, as from a model under autocast
        hidden.retain_grad()
        loss = crossent.linear_cross_entropy(hidden, weight, target)
        torch_loss = F.linear_cross_entropy(hidden.detach(), weight.detach(), target)
    assert hidden.dtype == dtype
    assert loss.dtype == torch_loss.dtype == torch.float32
    loss.backward()
    assert hidden.grad is not None and hidden.grad.dtype == dtype
    assert weight.grad is not None and weight.grad.dtype == torch.float32
    # float32 maths on the same low-precision hidden, outside autocast: the definition
    hidden_ref = hidden.detach().float().requires_grad_()
    weight_ref = weight.detach().clone().requires_grad_()
    expected = F.cross_entropy(hidden_ref @ weight_ref.T, target)
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert hidden_ref.grad is not None
    torch.testing.assert_close(hidden.grad, hidden_ref.grad.to(dtype))
    torch.testing.assert_close(weight.grad, weight_ref.grad)


def test_outside_autocast_a_low_precision_input_keeps_its_dtype() -> None:
    logits = torch.randn(4, 3, dtype=torch.bfloat16)
    target = torch.tensor([0, 1, 2, 0])
    assert crossent.cross_entropy(logits, target).dtype == torch.bfloat16
    assert F.cross_entropy(logits, target).dtype == torch.bfloat16


def test_autocast_leaves_float64_alone_as_torch_does() -> None:
    logits = torch.randn(4, 3, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = crossent.cross_entropy(logits, target)
        theirs = F.cross_entropy(logits, target)
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs)


def test_autocast_handling_compiles_without_graph_breaks() -> None:
    weight = torch.randn(5, 7, generator=torch.Generator().manual_seed(2))

    def step(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return crossent.cross_entropy(
                features @ weight, target, implementation="reference", validate=False
            )

    features, target = torch.randn(4, 5), torch.tensor([0, 1, 6, 2])
    compiled = torch.compile(step, fullgraph=True, backend="eager")(features, target)
    assert compiled.dtype == torch.float32
    torch.testing.assert_close(compiled, step(features, target))
