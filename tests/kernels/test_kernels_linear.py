"""Chunked linear + cross-entropy against cross-entropy of the materialised logits."""

from __future__ import annotations

import math

import pytest
import torch

from crossent import CrossentError, linear_cross_entropy
from crossent.kernels import linear, linear_blocked, linear_sweep, reference
from crossent.kernels.linear_sweep import default_chunk_rows

TOLERANCE = {torch.float32: 3e-5, torch.float64: 1e-10}


def _problem(rows, dim, classes, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, dim, dtype=dtype, generator=generator)
    weight = torch.randn(classes, dim, dtype=dtype, generator=generator) / math.sqrt(dim)
    bias = torch.randn(classes, dtype=dtype, generator=generator)
    logit_bias = -torch.rand(classes, dtype=dtype, generator=generator)
    target = torch.randint(0, classes, (rows,), generator=generator)
    return hidden, weight, bias, logit_bias, target


def _grads(loss, tensors, grad_output):
    return torch.autograd.grad(loss, tensors, grad_output)


def _check_against_materialised(tensors, target, *, class_weight, chunk_size, reduction,
                                smoothing, temperature, label_smoothing, tol):
    """linear_cross_entropy with every option vs the reference on materialised logits, in
    bits: value and gradients (hidden, weight, bias, logit_bias) under a random upstream
    gradient. Returns nothing; asserts."""
    leaves = [t.clone().requires_grad_() for t in tensors]
    ours = linear_cross_entropy(
        leaves[0], leaves[1], target, bias=leaves[2], logit_bias=leaves[3],
        temperature=temperature, chunk_size=chunk_size, class_weight=class_weight,
        reduction=reduction, label_smoothing=label_smoothing, smoothing=smoothing, base="bits",
    )
    ref_leaves = [t.clone().requires_grad_() for t in tensors]
    logits = (ref_leaves[0] @ ref_leaves[1].T + ref_leaves[2] + ref_leaves[3]) / temperature
    expected = reference.cross_entropy(
        logits, target, weight=class_weight, label_smoothing=label_smoothing,
        smoothing=smoothing, reduction=reduction, divisor=math.log(2.0),
    )
    grad_output = torch.rand_like(expected) + 0.5
    torch.testing.assert_close(ours.detach(), expected.detach(), rtol=tol, atol=tol)
    for got, want in zip(
        _grads(ours, leaves, grad_output), _grads(expected, ref_leaves, grad_output), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", ["uniform", "off_target"])
@pytest.mark.parametrize("chunk_size", [1, 4, None])
def test_linear_matches_materialised_logits(dtype, reduction, smoothing, chunk_size):
    hidden, weight, bias, logit_bias, target = _problem(11, 6, 19, dtype)
    target[[2, 7]] = -100
    class_weight = torch.rand(19, dtype=dtype) + 0.2
    _check_against_materialised(
        (hidden, weight, bias, logit_bias), target, class_weight=class_weight,
        chunk_size=chunk_size, reduction=reduction, smoothing=smoothing, temperature=0.8,
        label_smoothing=0.1, tol=TOLERANCE[dtype],
    )


def test_linear_matches_torch_without_options_and_soft_targets():
    hidden, weight, _, _, target = _problem(9, 5, 13, torch.float64)
    probs = torch.softmax(torch.randn(9, 13, dtype=torch.float64), 1)
    for tgt in (target, probs):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        ours = linear_cross_entropy(h, w, tgt, chunk_size=2)
        ours.backward()
        rh, rw = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        expected = torch.nn.functional.cross_entropy(rh @ rw.T, tgt)
        expected.backward()
        torch.testing.assert_close(ours, expected)
        torch.testing.assert_close(h.grad, rh.grad)
        torch.testing.assert_close(w.grad, rw.grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    hidden, weight, _, _, target = _problem(6, 4, 9, torch.float32)
    h, w = hidden.to(dtype).requires_grad_(), weight.to(dtype).requires_grad_()
    ours = linear_cross_entropy(h, w, target, chunk_size=4)
    ours.backward()
    rh, rw = h.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    expected = torch.nn.functional.cross_entropy(rh @ rw.T, target)
    expected.backward()
    assert ours.dtype == dtype and h.grad.dtype == dtype and w.grad.dtype == dtype
    torch.testing.assert_close(ours.float(), expected, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(h.grad.float(), rh.grad, rtol=2e-2, atol=2e-3)


def test_batch_dimensions_and_empty_batch():
    hidden, weight, _, _, target = _problem(6, 4, 7, torch.float64)
    per_row = linear_cross_entropy(hidden.reshape(2, 3, 4), weight, target.reshape(2, 3),
                                   reduction="none")
    expected = torch.nn.functional.cross_entropy(hidden @ weight.T, target, reduction="none")
    torch.testing.assert_close(per_row, expected.reshape(2, 3))
    empty = torch.zeros(0, 4, dtype=torch.float64, requires_grad=True)
    loss = linear_cross_entropy(empty, weight, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert float(loss.detach()) == 0.0 and empty.grad.shape == (0, 4)


def test_all_ignored_mean_is_zero_with_zero_grad():
    hidden, weight, _, _, _ = _problem(4, 3, 5, torch.float32)
    h, w = hidden.requires_grad_(), weight.requires_grad_()
    loss = linear_cross_entropy(h, w, torch.full((4,), -100))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.count_nonzero(h.grad) == 0 and torch.count_nonzero(w.grad) == 0


def test_default_chunk_rows_follow_memory_budget():
    assert default_chunk_rows(8192, 100_000, 4, budget_bytes=256 * 2**20) == 671
    assert default_chunk_rows(10, 100_000, 4, budget_bytes=256 * 2**20) == 10
    assert default_chunk_rows(8192, 10**9, 4, budget_bytes=1) == 1
    # 48 MiB (a quarter of the 98 MiB weight is less): 125 rows of 100,000 classes
    assert default_chunk_rows(8192, 100_000, 4, dim=256) == 48 * 2**20 // 400_000
    # half of a 10 MB weight is below the 48 MiB floor, and 8 MiB is always allowed
    assert default_chunk_rows(2048, 20_000, 4, dim=128) == 8 * 2**20 // 80_000
    # a quarter of a 1 GB weight: 256 MB, 64 rows of 1,000,000 classes
    assert default_chunk_rows(8192, 1_000_000, 4, dim=256) == 64
    # a small catalogue is one chunk: 2,048 rows of 500 classes are 4 MB
    assert default_chunk_rows(2048, 500, 4, dim=32) == 2048
    # a huge row still gets MIN_CHUNK_ROWS rows per chunk, not one
    assert default_chunk_rows(8192, 10_000_000, 4, dim=1) == 64
    assert default_chunk_rows(8192, 1_000_000, 4, dim=256) == 64  # a quarter of the weight


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": torch.randn(5, 4)}, r"weight has shape \(5, 4\), expected \(V, 3\)"),
        ({"target": torch.tensor([0, 9])}, r"target\[1\] = 9 is outside \[0, 5\)"),
        ({"target": torch.tensor([0])}, r"target has shape \(1,\)"),
        ({"temperature": 0.0}, r"temperature = 0.0 must be a finite number > 0"),
        ({"chunk_size": 0}, r"chunk_size = 0 must be an integer >= 1 or None"),
        ({"bias": torch.randn(4)}, r"bias has shape \(4,\), expected \(5,\)"),
        ({"logit_bias": torch.tensor([0.0, 1, 2, 3, float("nan")])},
         r"logit_bias row 4 is not finite"),
        ({"class_weight": torch.tensor([1.0, -1, 1, 1, 1])}, r"class_weight\[1\] = -1"),
        ({"reduction": "avg"}, r"reduction = 'avg' is not one of"),
        ({"smoothing": "both"}, r"smoothing = 'both' is not one of"),
        ({"label_smoothing": 1.5}, r"label_smoothing = 1.5 is outside \[0, 1\]"),
        ({"base": 1.0}, r"base = 1.0 must be a finite number > 1"),
        ({"hidden": torch.tensor([[0.0, 1, float("inf")], [0, 0, 0]])},
         r"hidden row 0 is not finite"),
        ({"hidden": torch.zeros(2, 3, dtype=torch.float64)}, r"weight has dtype torch.float32"),
        ({"hidden": torch.zeros(2, 3, dtype=torch.long)}, r"hidden has dtype torch.int64"),
    ],
)
def test_bad_input_raises_crossent_error_naming_it(kwargs, message):
    arguments = {
        "hidden": torch.zeros(2, 3), "weight": torch.zeros(5, 3), "target": torch.tensor([0, 4]),
    }
    positional = {name: kwargs.pop(name) for name in list(kwargs) if name in arguments}
    arguments.update(positional)
    with pytest.raises(CrossentError, match=message):
        linear_cross_entropy(arguments["hidden"], arguments["weight"], arguments["target"],
                             **kwargs)


def test_no_grad_mode_gives_the_same_loss():
    hidden, weight, bias, _, target = _problem(7, 4, 9, torch.float64)
    with torch.no_grad():
        loss = linear_cross_entropy(hidden.requires_grad_(), weight, target, bias=bias)
    expected = torch.nn.functional.cross_entropy(hidden @ weight.T + bias, target)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, expected.detach())


def test_backward_adopts_gradients_and_rescales_by_upstream_gradient() -> None:
    hidden, weight, _, _, target = _problem(9, 5, 13, torch.float64)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight)]
    (linear_cross_entropy(*leaves, target) * 3.0).backward()
    expected = [t.clone().requires_grad_() for t in (hidden, weight)]
    (torch.nn.functional.cross_entropy(expected[0] @ expected[1].T, target) * 3.0).backward()
    for ours, theirs in zip(leaves, expected, strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-10, atol=1e-12)


def test_second_backward_through_the_same_forward_is_a_clear_error() -> None:
    hidden, weight, _, _, target = _problem(4, 3, 7, torch.float64)
    loss = linear_cross_entropy(hidden.requires_grad_(), weight.requires_grad_(), target)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="earlier backward"):
        loss.backward()


@pytest.fixture
def class_blocked_float64(monkeypatch):
    """Route float64 through the class-blocked sweep (normally float16/bfloat16 only), with
    blocks of 3 classes and tiles small enough to cut every problem into many of both; counts
    how often the blocked sweep ran, so a test can check the route was taken."""
    calls = []
    original = linear_blocked.class_sweep

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(linear, "LOW_PRECISION", (torch.float64,))
    monkeypatch.setattr(linear_sweep, "MIN_BLOCK_CLASSES", 3)
    monkeypatch.setattr(linear_sweep, "CHUNK_BUDGET_BYTES", 64)
    monkeypatch.setattr(linear_blocked, "class_sweep", counting)
    return calls


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", ["uniform", "off_target"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_class_blocked_route_matches_materialised_logits(
    class_blocked_float64, reduction, smoothing, soft, weighted, chunk_size
):
    hidden, weight, bias, logit_bias, target = _problem(11, 6, 19, torch.float64, seed=3)
    if soft:
        target = torch.softmax(3 * torch.randn(11, 19, dtype=torch.float64), 1)
    else:
        target[[2, 7]] = -100
    class_weight = torch.rand(19, dtype=torch.float64) + 0.2 if weighted else None
    _check_against_materialised(
        (hidden, weight, bias, logit_bias), target, class_weight=class_weight,
        chunk_size=chunk_size, reduction=reduction, smoothing=smoothing, temperature=0.7,
        label_smoothing=0.2, tol=1e-10,
    )
    assert class_blocked_float64, "the class-blocked sweep did not run"


def test_class_blocked_route_edge_cases(class_blocked_float64):
    hidden, weight, _, _, target = _problem(5, 4, 7, torch.float64)
    # no grad: loss only; an all-ignored mean is 0 with zero gradients; an empty batch
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, target)
    torch.testing.assert_close(
        loss, torch.nn.functional.cross_entropy(hidden @ weight.T, target), rtol=1e-12,
        atol=1e-12,
    )
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    ignored = linear_cross_entropy(h, w, torch.full((5,), -100))
    ignored.backward()
    assert float(ignored.detach()) == 0.0
    assert torch.count_nonzero(h.grad) == 0 and torch.count_nonzero(w.grad) == 0
    empty = torch.zeros(0, 4, dtype=torch.float64, requires_grad=True)
    w = weight.clone().requires_grad_()
    linear_cross_entropy(empty, w, torch.zeros(0, dtype=torch.long)).backward()
    assert empty.grad.shape == (0, 4) and torch.count_nonzero(w.grad) == 0
    # one class: the loss is 0 whatever the logits (log-softmax of one value is 0)
    one = linear_cross_entropy(hidden, weight[:1], torch.zeros(5, dtype=torch.long))
    assert float(one) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_weight_is_blocked_and_its_gradient_rounded_once(monkeypatch, dtype):
    monkeypatch.setattr(linear_sweep, "MIN_BLOCK_CLASSES", 64)
    monkeypatch.setattr(linear_sweep, "CHUNK_BUDGET_BYTES", 48 * 64 * 4)  # 48-row tiles
    hidden, weight, bias, _, target = _problem(200, 16, 1000, torch.float32, seed=5)
    target[::17] = -100
    leaves = [t.to(dtype).requires_grad_() for t in (hidden, weight, bias)]
    ours = linear_cross_entropy(leaves[0], leaves[1], target, bias=leaves[2],
                                label_smoothing=0.1)
    ours.backward()
    # the reference: the same low-precision values, computed in float64
    ref = [t.detach().double().requires_grad_() for t in leaves]
    expected = torch.nn.functional.cross_entropy(
        ref[0] @ ref[1].T + ref[2], target, label_smoothing=0.1
    )
    expected.backward()
    assert ours.dtype == dtype and all(t.grad.dtype == dtype for t in leaves)
    torch.testing.assert_close(ours.double(), expected.detach(), rtol=4e-3, atol=0.0)
    # dH and dW are summed in float32 and rounded once: within one unit in the last place of
    # the exact gradient (relative 2**-7 for bfloat16, 2**-10 for float16; the rounding of a
    # float32 sum that is not exactly the true value may go to either neighbour), plus
    # float16's subnormal spacing 2**-24 (hidden gradients of 1e-6 are subnormal there)
    ulp = 2.0**-7 if dtype == torch.bfloat16 else 2.0**-10
    for leaf, exact in zip(leaves, ref, strict=True):
        error = (leaf.grad.double() - exact.grad).abs()
        bound = ulp * exact.grad.abs() + 2.0**-24
        assert bool((error <= bound).all()), f"{tuple(leaf.shape)}: max error {error.max()}"
