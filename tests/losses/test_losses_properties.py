"""Mathematical properties, gradients, zero-safety and low-precision behaviour of the losses."""

from __future__ import annotations

import math

import _numpy_losses as ref
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import crossent

IMPLEMENTATIONS = ["reference", "auto"]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 6),
    c=st.integers(1, 8),
    implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_cross_entropy_is_at_least_the_entropy_of_the_target_with_equality_at_q_equal_t(
    seed: int, n: int, c: int, implementation: str
) -> None:
    gen = torch.Generator().manual_seed(seed)
    target = torch.softmax(torch.randn(n, c, generator=gen, dtype=torch.float64) * 2, 1)
    logits = torch.randn(n, c, generator=gen, dtype=torch.float64) * 3
    entropy = ref.entropy(target.numpy())
    loss = crossent.cross_entropy(
        logits, target, reduction="none", implementation=implementation
    ).numpy()
    # Gibbs: CE - H = KL(t || q) >= 0, strictly when q != t (Pinsker: KL >= ||t - q||_1^2 / 2)
    q = torch.softmax(logits, 1).numpy()
    l1 = np.abs(target.numpy() - q).sum(axis=1)
    assert np.all(loss - entropy >= 0.5 * l1**2 - 1e-12)
    at_truth = crossent.cross_entropy(
        torch.log(target), target, reduction="none", implementation=implementation
    ).numpy()
    np.testing.assert_allclose(at_truth, entropy, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shift=st.floats(-1e3, 1e3),
    implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_cross_entropy_is_invariant_to_adding_a_constant_to_a_row_of_logits(
    seed: int, shift: float, implementation: str
) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 7, (5,), generator=gen)
    row_shift = shift * torch.rand(5, 1, generator=gen, dtype=torch.float64)
    options = {"reduction": "none", "label_smoothing": 0.1, "implementation": implementation}
    torch.testing.assert_close(
        crossent.cross_entropy(logits + row_shift, target, **options),
        crossent.cross_entropy(logits, target, **options),
        rtol=1e-9, atol=1e-9,
    )


def _double(*shape: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_(True)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_passes_gradcheck_in_float64(reduction: str) -> None:
    logits = _double(4, 3, 2)
    target = torch.tensor([[0, 2], [1, -100], [2, 2], [0, 1]])
    weight = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    soft = torch.softmax(torch.randn(4, 3, 2, dtype=torch.float64), 1)
    for tgt in (target, soft):
        for smoothing in ("uniform", "off_target"):
            assert torch.autograd.gradcheck(
                lambda z, t=tgt, s=smoothing: crossent.cross_entropy(
                    z, t, weight=weight, label_smoothing=0.2, smoothing=s,
                    reduction=reduction, implementation="reference",
                ),
                (logits,),
            )
    # (the fused kernels allow one backward per forward, which gradcheck's re-entrancy check
    # rejects; their gradients are compared with torch's in test_losses.py instead)


def test_cross_entropy_on_probabilities_and_log_probabilities_passes_gradcheck() -> None:
    probs = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1).requires_grad_(True)
    target = torch.tensor([0, 3, 1])
    assert torch.autograd.gradcheck(
        lambda p: crossent.cross_entropy(p, target, input_kind="probs", label_smoothing=0.1),
        (probs,),
        check_undefined_grad=False,
        atol=1e-6,
    )
    log_probs = torch.log(probs.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda lp: crossent.cross_entropy(lp, target, input_kind="log_probs"), (log_probs,)
    )


def test_binary_cross_entropy_passes_gradcheck_in_float64() -> None:
    logits = _double(3, 4)
    target = torch.rand(3, 4, dtype=torch.float64)
    pos_weight = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: crossent.binary_cross_entropy(
            z, target, pos_weight=pos_weight, label_smoothing=0.1, reduction="none"
        ),
        (logits,),
    )
    probs = torch.sigmoid(logits.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: crossent.binary_cross_entropy(p, target, input_kind="probs"), (probs,)
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss_passes_gradcheck_in_float64(gamma: float) -> None:
    logits = _double(5, 3)
    target = torch.tensor([0, 1, 2, -100, 1])
    alpha = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: crossent.focal_loss(z, target, gamma=gamma, alpha=alpha, reduction="none"),
        (logits,),
    )
    binary_target = torch.rand(5, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: crossent.focal_loss(z, binary_target, gamma=gamma, alpha=0.25,
                                      mode="binary"),
        (logits,),
    )


@pytest.mark.parametrize("implementation", ["reference", "fused"])
def test_minus_inf_logit_with_zero_target_mass_contributes_exactly_zero(
    implementation: str,
) -> None:
    logits = torch.tensor([[2.0, -math.inf, 0.5], [-math.inf, 1.0, 0.0]], dtype=torch.float64)
    soft = torch.tensor([[0.7, 0.0, 0.3], [0.0, 0.4, 0.6]], dtype=torch.float64)
    # the -inf class is simply absent: the same loss as the two finite classes alone
    finite_logits = torch.tensor([[2.0, 0.5], [1.0, 0.0]], dtype=torch.float64)
    finite_soft = torch.tensor([[0.7, 0.3], [0.4, 0.6]], dtype=torch.float64)
    finite_index = torch.tensor([1, 0])
    for target, expected in (
        (soft, -(finite_soft * torch.log_softmax(finite_logits, 1)).sum(1).mean()),
        (torch.tensor([2, 1]), torch.nn.functional.cross_entropy(finite_logits, finite_index)),
    ):
        leaf = logits.clone().requires_grad_(True)
        loss = crossent.cross_entropy(leaf, target, implementation=implementation)
        loss.backward()
        torch.testing.assert_close(loss.detach(), expected)
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
        assert leaf.grad[0, 1] == 0 and leaf.grad[1, 0] == 0


def test_focal_loss_is_zero_safe_and_finite_at_certainty() -> None:
    logits = torch.tensor([[0.0, -math.inf], [50.0, -50.0]], dtype=torch.float64)
    leaf = logits.clone().requires_grad_(True)
    loss = crossent.focal_loss(leaf, torch.tensor([0, 0]), gamma=0.5)
    loss.backward()
    assert torch.isfinite(loss) and leaf.grad is not None and torch.isfinite(leaf.grad).all()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-15)


def test_binary_cross_entropy_at_infinite_logits_is_zero_where_the_label_agrees() -> None:
    logits = torch.tensor([math.inf, -math.inf, 800.0, -800.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0])
    loss = crossent.binary_cross_entropy(logits, target, reduction="none")
    loss.sum().backward()
    assert loss.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert logits.grad is not None and logits.grad.tolist() == [0.0, 0.0, 0.0, 0.0]
    # where the label disagrees the true loss is infinite (z = 800 is finite, though: 800 nats)
    wrong = crossent.binary_cross_entropy(logits.detach(), 1 - target, reduction="none")
    assert wrong.tolist() == [math.inf, math.inf, 800.0, 800.0]
    focal = crossent.focal_loss(logits.detach(), target, mode="binary", reduction="none")
    assert focal.tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("implementation", ["reference", "fused"])
def test_all_ignored_batch_returns_zero_with_zero_grad(implementation: str) -> None:
    logits = torch.randn(4, 5, 2, requires_grad=True)
    target = torch.full((4, 2), -100)
    loss = crossent.cross_entropy(
        logits, target, weight=torch.rand(5), label_smoothing=0.1, implementation=implementation
    )
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))
    empty = crossent.cross_entropy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert float(empty) == 0.0
    focal = crossent.focal_loss(logits.detach(), target)
    assert float(focal) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32_and_returned_in_their_dtype(
    dtype: torch.dtype,
) -> None:
    gen = torch.Generator().manual_seed(8)
    logits = (torch.randn(16, 10, generator=gen) * 4).to(dtype)
    target = torch.randint(0, 10, (16,), generator=gen)
    upcast = logits.double()  # the exact values of the rounded inputs
    binary_target = (target[:, None] > 4).expand(16, 10)
    cases = [
        (lambda z: crossent.cross_entropy(z, target, label_smoothing=0.1),
         torch.nn.functional.cross_entropy(upcast, target, label_smoothing=0.1)),
        (lambda z: crossent.focal_loss(z, target, gamma=2.0),
         ref.focal_loss(upcast.numpy(), target.numpy(), gamma=2.0)),
        (lambda z: crossent.binary_cross_entropy(z, binary_target.to(dtype)),
         torch.nn.functional.binary_cross_entropy_with_logits(upcast, binary_target.double())),
    ]
    for ours, exact in cases:
        leaf = logits.clone().requires_grad_(True)
        loss = ours(leaf)
        loss.backward()
        assert loss.dtype == dtype and leaf.grad is not None and leaf.grad.dtype == dtype
        # computed in float32, then rounded once to dtype: within one unit of dtype's precision
        assert float(loss.detach()) == pytest.approx(float(exact), rel=torch.finfo(dtype).eps)


def test_large_logits_do_not_overflow_in_float32() -> None:
    logits = torch.tensor([[1e4, 0.0, -1e4], [3e38, 3e38, 0.0]])
    loss = crossent.cross_entropy(logits, torch.tensor([1, 2]), reduction="none")
    torch.testing.assert_close(loss, torch.tensor([1e4, 3e38]), rtol=1e-6, atol=0)


# z_loss, softcap, return_lse ----------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 6),
    c=st.integers(2, 9),
    z_loss=st.floats(0.0, 0.1),
    softcap=st.one_of(st.none(), st.floats(0.5, 50.0)),
    soft=st.booleans(),
    implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_softcap_and_z_loss_are_the_loss_of_capped_logits_plus_c_lse_squared(
    seed: int, n: int, c: int, z_loss: float, softcap: float | None, soft: bool,
    implementation: str,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = 5 * torch.randn(n, c, generator=gen, dtype=torch.float64)
    if soft:
        target = torch.softmax(torch.randn(n, c, generator=gen, dtype=torch.float64), 1)
        keep = torch.ones(n, dtype=torch.bool)
    else:
        target = torch.randint(0, c, (n,), generator=gen)
        target[0] = -100
        keep = target != -100
    ours_in = logits.clone().requires_grad_()
    loss, lse = crossent.cross_entropy(
        ours_in, target, reduction="none", label_smoothing=0.1, z_loss=z_loss, softcap=softcap,
        return_lse=True, implementation=implementation,
    )
    # the definition: plain cross-entropy of cap tanh(z / cap) (torch autograd through tanh)
    # plus c lse^2 on every row that is not ignored
    ref_in = logits.clone().requires_grad_()
    capped = ref_in if softcap is None else softcap * torch.tanh(ref_in / softcap)
    ref_lse = torch.logsumexp(capped, 1)
    expected = crossent.cross_entropy(
        capped, target, reduction="none", label_smoothing=0.1, implementation="reference"
    ) + torch.where(keep, z_loss * ref_lse**2, 0.0)
    upstream = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    loss.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lse, ref_lse.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-9, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 7),
    v=st.integers(1, 12),
    chunk_size=st.one_of(st.none(), st.integers(1, 4)),
    z_loss=st.floats(0.0, 0.1),
    softcap=st.one_of(st.none(), st.floats(0.5, 20.0)),
    reduction=st.sampled_from(["none", "sum", "mean"]),
)
def test_linear_cross_entropy_options_equal_cross_entropy_of_the_logits(
    seed: int, n: int, v: int, chunk_size: int | None, z_loss: float, softcap: float | None,
    reduction: str,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    weight = torch.randn(v, 3, generator=gen, dtype=torch.float64)
    target = torch.randint(0, v, (n,), generator=gen)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight)]
    options = {"reduction": reduction, "z_loss": z_loss, "softcap": softcap, "return_lse": True}
    loss, lse = crossent.linear_cross_entropy(*leaves, target, chunk_size=chunk_size, **options)
    ref = [t.clone().requires_grad_() for t in (hidden, weight)]
    expected, expected_lse = crossent.cross_entropy(
        ref[0] @ ref[1].T, target, implementation="reference", **options
    )
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lse, expected_lse, rtol=1e-10, atol=1e-10)
    upstream = torch.rand_like(expected) + 0.5
    for got, want in zip(torch.autograd.grad(loss, leaves, upstream),
                         torch.autograd.grad(expected, ref, upstream), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_z_loss_and_softcap_pass_gradcheck_in_float64() -> None:
    logits = _double(4, 5)
    target = torch.tensor([0, 2, -100, 4])
    assert torch.autograd.gradcheck(
        lambda z: crossent.cross_entropy(z, target, implementation="reference", z_loss=0.05,
                                         softcap=2.0, label_smoothing=0.2),
        (logits,),
    )
