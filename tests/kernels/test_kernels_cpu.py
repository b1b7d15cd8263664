"""The numba fused cross-entropy against the plain-torch reference, option for option."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

import crossent
from crossent.kernels import cpu, ops, reference

pytestmark = pytest.mark.skipif(not cpu.available(), reason="numba kernel unavailable")

TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-11}


def fused(logits, target, **options):
    """The fused kernel's loss (``ops.fused_cross_entropy`` returns (loss, lse, status))."""
    return ops.fused_cross_entropy(logits, target, **options)[0]


def _inputs(rows, classes, dtype, *, soft, seed=0, ignored=True):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(rows, classes, dtype=dtype, generator=generator)
    if soft:
        target = torch.softmax(torch.randn(rows, classes, dtype=dtype, generator=generator), 1)
    else:
        target = torch.randint(0, classes, (rows,), generator=generator)
        if ignored and rows > 2:
            target[1] = -100
    return logits, target


def _run(kernel, logits, target, grad_output, **options):
    """Loss and input gradient of one implementation, for a given incoming gradient."""
    scores = logits.clone().requires_grad_()
    loss = kernel(scores, target, **options)
    (grad,) = torch.autograd.grad(loss, scores, grad_output)
    return loss.detach(), grad


def _both(logits, target, **options):
    reduction = options["reduction"]
    rows = logits.shape[0]
    generator = torch.Generator().manual_seed(1)
    grad_output = (
        torch.rand(rows, dtype=logits.dtype, generator=generator) + 0.5
        if reduction == "none" else torch.tensor(1.7, dtype=logits.dtype)
    )
    ours = _run(fused, logits, target, grad_output, inplace=False, **options)
    ref = _run(reference.cross_entropy, logits, target, grad_output, **options)
    return ours, ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("smoothing", ["uniform", "off_target"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_matches_reference_value_and_grad(dtype, reduction, smoothing, soft, weighted):
    logits, target = _inputs(9, 37, dtype, soft=soft)  # 37: no block or vector width divides it
    weight = torch.rand(37, dtype=dtype) + 0.1 if weighted else None
    options = {
        "weight": weight, "ignore_index": -100, "label_smoothing": 0.15, "smoothing": smoothing,
        "reduction": reduction, "divisor": math.log(2.0),
    }
    (loss, grad), (ref_loss, ref_grad) = _both(logits, target, **options)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(loss, ref_loss, rtol=tol, atol=tol)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)
    assert loss.dtype == dtype and loss.shape == ref_loss.shape


@pytest.mark.parametrize(
    ("rows", "classes"), [(1, 1), (5, 1), (0, 7), (3, 2), (4, 1031), (2, 8), (2, 9)]
)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_fused_handles_awkward_shapes(rows, classes, reduction):
    logits, target = _inputs(rows, classes, torch.float64, soft=False, ignored=False)
    options = {
        "weight": None, "ignore_index": -100, "label_smoothing": 0.1, "smoothing": "uniform",
        "reduction": reduction, "divisor": 1.0,
    }
    (loss, grad), (ref_loss, ref_grad) = _both(logits, target, **options)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-11, atol=1e-11)


def test_fused_matches_torch_on_large_logits_without_overflow():
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-5e3, 5e3, 5e3]], dtype=torch.float32)
    target = torch.tensor([0, 2])
    scores = logits.clone().requires_grad_()
    loss = fused(
        scores, target, weight=None, ignore_index=-100, label_smoothing=0.0,
        smoothing="uniform", reduction="sum", divisor=1.0, inplace=False,
    )
    loss.backward()
    torch_scores = logits.clone().requires_grad_()
    expected = torch.nn.functional.cross_entropy(torch_scores, target, reduction="sum")
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(scores.grad, torch_scores.grad)


def test_all_ignored_batch_returns_zero_with_zero_grad():
    logits, _ = _inputs(4, 6, torch.float32, soft=False)
    scores = logits.clone().requires_grad_()
    loss = fused(
        scores, torch.full((4,), -100), weight=None, ignore_index=-100, label_smoothing=0.2,
        smoothing="uniform", reduction="mean", divisor=1.0, inplace=False,
    )
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.count_nonzero(scores.grad) == 0


def test_zero_mass_class_at_negative_infinity_contributes_exactly_zero():
    logits = torch.tensor([[0.5, float("-inf"), 1.0], [2.0, 0.0, float("-inf")]])
    probs = torch.tensor([[0.3, 0.0, 0.7], [1.0, 0.0, 0.0]])
    expected = -(probs[:, [0, 2]] * torch.log_softmax(logits, 1)[:, [0, 2]]).sum(1)
    expected[1] = -(torch.log_softmax(logits[1], 0)[0])
    for target in (probs, torch.tensor([2, 0])):
        scores = logits.clone().requires_grad_()
        loss = fused(
            scores, target, weight=None, ignore_index=-100, label_smoothing=0.0,
            smoothing="uniform", reduction="none", divisor=1.0, inplace=False,
        )
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(scores.grad).all()
        assert scores.grad[0, 1] == 0.0 and scores.grad[1, 2] == 0.0
        if target.dim() == 2:
            torch.testing.assert_close(loss, expected)


def test_zero_class_weight_at_negative_infinity_contributes_exactly_zero():
    logits = torch.tensor([[0.5, float("-inf"), 1.0]], dtype=torch.float64)
    weight = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    loss = fused(
        logits.clone(), torch.tensor([2]), weight=weight, ignore_index=-100,
        label_smoothing=0.3, smoothing="uniform", reduction="sum", divisor=1.0, inplace=False,
    )
    log_q = torch.log_softmax(logits[0, [0, 2]], 0)
    expected = -(0.3 / 3 * log_q[0] + 2.0 * (0.7 + 0.1) * log_q[1])
    torch.testing.assert_close(loss, expected)


def test_inplace_consumes_logits_storage_for_the_gradient():
    logits, target = _inputs(6, 11, torch.float32, soft=False)
    expected_scores = logits.clone().requires_grad_()
    expected = torch.nn.functional.cross_entropy(expected_scores, target)
    expected.backward()
    scores = logits.clone().requires_grad_()
    storage = scores.data_ptr()
    loss = fused(
        scores, target, weight=None, ignore_index=-100, label_smoothing=0.0,
        smoothing="uniform", reduction="mean", divisor=1.0, inplace=True,
    )
    torch.testing.assert_close(loss, expected.detach())
    # the input now holds the gradient of the mean loss: documented as consumed
    torch.testing.assert_close(scores.detach(), expected_scores.grad)
    loss.backward()
    torch.testing.assert_close(scores.grad, expected_scores.grad)
    # the gradient is adopted as .grad without a copy: no extra (M, C) memory at all
    assert scores.data_ptr() == storage and scores.grad.data_ptr() == storage


def test_second_backward_through_one_forward_raises():
    logits, target = _inputs(3, 5, torch.float64, soft=False)
    scores = logits.clone().requires_grad_()
    loss = fused(
        scores, target, weight=None, ignore_index=-100, label_smoothing=0.0,
        smoothing="uniform", reduction="sum", divisor=1.0, inplace=False,
    )
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="already used"):
        loss.backward()


def test_public_api_dispatches_to_fused_kernel_with_same_numbers():
    logits, target = _inputs(5, 13, torch.float32, soft=False)
    options = {"label_smoothing": 0.1, "base": "bits", "ignore_index": -100}
    fused = crossent.cross_entropy(logits, target, implementation="fused", **options)
    ref = crossent.cross_entropy(logits, target, implementation="reference", **options)
    torch.testing.assert_close(fused, ref)


def test_second_process_loads_compiled_kernel_from_cache():
    # the first call in this process populated the on-disk cache (cache=True)
    code = (
        "import torch; from crossent.kernels import cpu, ops\n"
        "ops.fused_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]), weight=None, "
        "ignore_index=-100, label_smoothing=0.0, smoothing='uniform', reduction='sum', "
        "divisor=1.0, inplace=False)\n"
        "print(sum(cpu._index_rows.stats.cache_hits.values()), "
        "sum(cpu._index_rows.stats.cache_misses.values()))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    hits, misses = (int(value) for value in result.stdout.split())
    assert hits >= 1 and misses == 0
