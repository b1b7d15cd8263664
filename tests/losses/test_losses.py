"""crossent.losses against PyTorch, a NumPy float64 formulation and hand-computed vectors.

Where an option exists in ``torch.nn.functional`` too, values AND gradients must match it on
randomised inputs (hypothesis) for every combination. Options torch lacks (off-target smoothing,
probability inputs for CE, focal loss) are checked against ``_numpy_losses``, which is written
from the definitions in the loss docstrings and imports nothing from crossent.
"""

from __future__ import annotations

import math

import _numpy_losses as ref
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossent
from crossent.kernels import cpu, ops

IMPLEMENTATIONS = ["reference", "auto"]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("dtype", "options", "fused"),
    [
        (torch.float64, {}, True),
        (torch.float32, {"label_smoothing": 0.1, "smoothing": "off_target"}, True),
        (torch.bfloat16, {}, False),  # the fused kernels take float32/float64 only
        (torch.float64, {"input_kind": "log_probs"}, False),  # they take logits only
    ],
)
def test_auto_runs_the_fused_cpu_kernel_exactly_where_it_covers_the_call(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, options: dict, fused: bool
) -> None:
    # so that the "auto" half of every test below exercises the numba kernel on float logits
    assert cpu.available()  # numba works here (its one-time probe runs before the spy)
    calls = []
    kernel = ops.fused_cross_entropy

    def spy(*args: object, **kwargs: object) -> tuple[torch.Tensor, ...]:
        calls.append(args[0])
        return kernel(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ops, "fused_cross_entropy", spy)
    logits = torch.log_softmax(torch.randn(4, 3, dtype=torch.float64), 1).to(dtype)
    target = torch.tensor([0, 2, 1, 2])
    loss = crossent.cross_entropy(logits, target, **options)
    assert len(calls) == (1 if fused else 0)
    torch.testing.assert_close(
        loss.double(), F.cross_entropy(logits.double(), target, **_torch_options(options)),
        rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=1e-6,
    )


def _torch_options(options: dict) -> dict:
    """The same loss in F.cross_entropy's terms (off-target smoothing has no torch twin:
    with C = 3 it is uniform smoothing with ε' = ε C / (C - 1) = 1.5 ε)."""
    if options.get("smoothing") == "off_target":
        return {"label_smoothing": options["label_smoothing"] * 1.5}
    return {}


@st.composite
def multiclass_case(draw: st.DrawFn) -> dict:
    """Random (N, C, d...) logits and every overlapping option of F.cross_entropy."""
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    n = draw(st.integers(1, 5))
    c = draw(st.integers(1, 6))
    trailing = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    shape = (n, c, *trailing)
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    soft = draw(st.booleans())
    if soft:
        target = torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64) * 2, 1)
    else:
        target = torch.randint(0, c, (n, *trailing), generator=gen)
    ignore_index = -100 if soft else draw(st.sampled_from([-100, 0, c - 1]))
    if not soft and draw(st.booleans()):
        # ignore a random subset, but keep at least one element so torch's mean is defined
        drop = torch.rand(target.shape, generator=gen) < 0.4
        drop.view(-1)[0] = False
        target = torch.where(drop, torch.full_like(target, -100), target)
        ignore_index = -100
    if not soft and ignore_index != -100:
        kept = target != ignore_index
        if not bool(kept.any()):
            target = target.clone()
            target.view(-1)[0] = (ignore_index + 1) % c if c > 1 else 0
            ignore_index = -100 if c == 1 else ignore_index
    weight = None
    if draw(st.booleans()):
        weight = torch.rand(c, generator=gen, dtype=torch.float64) + 0.1
    return {
        "logits": logits,
        "target": target,
        "weight": weight,
        "ignore_index": ignore_index,
        "label_smoothing": draw(st.sampled_from([0.0, 0.1, 0.37, 1.0])),
        "reduction": draw(st.sampled_from(["none", "sum", "mean"])),
        "upstream": torch.rand((n, *trailing), generator=gen, dtype=torch.float64),
    }


def _value_and_grad(function, logits: torch.Tensor, upstream: torch.Tensor, **kw):  # type: ignore[no-untyped-def]
    leaf = logits.clone().requires_grad_(True)
    loss = function(leaf, **kw)
    seed = upstream if loss.dim() else torch.ones((), dtype=loss.dtype)
    (grad,) = torch.autograd.grad((loss * seed).sum(), leaf)
    return loss.detach(), grad


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@FAST
@given(case=multiclass_case())
def test_cross_entropy_matches_torch_in_value_and_gradient(
    case: dict, implementation: str
) -> None:
    options = {
        key: case[key] for key in ("target", "weight", "ignore_index", "label_smoothing",
                                   "reduction")
    }
    ours, our_grad = _value_and_grad(
        lambda z, **kw: crossent.cross_entropy(z, implementation=implementation, **kw),
        case["logits"], case["upstream"], **options,
    )
    theirs, their_grad = _value_and_grad(F.cross_entropy, case["logits"], case["upstream"],
                                         **options)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@FAST
@given(case=multiclass_case(), smoothing=st.sampled_from(["uniform", "off_target"]))
def test_cross_entropy_matches_numpy_definition_in_both_smoothing_modes(
    case: dict, smoothing: str, implementation: str
) -> None:
    logits, target = case["logits"], case["target"]
    c = logits.shape[1]
    if smoothing == "off_target" and c == 1:
        return
    ours = crossent.cross_entropy(
        logits, target, weight=case["weight"], ignore_index=case["ignore_index"],
        label_smoothing=case["label_smoothing"], smoothing=smoothing, reduction="none",
        implementation=implementation,
    )
    # flatten (N, C, d...) to (M, C) for the NumPy formula
    flat_logits = logits.movedim(1, -1).reshape(-1, c).numpy()
    flat_target = (
        target.movedim(1, -1).reshape(-1, c).numpy() if target.dim() == logits.dim()
        else target.reshape(-1).numpy()
    )
    expected = ref.cross_entropy(
        flat_logits, flat_target, weight=None if case["weight"] is None else
        case["weight"].numpy(), ignore_index=case["ignore_index"],
        label_smoothing=case["label_smoothing"], smoothing=smoothing, reduction="none",
    )
    np.testing.assert_allclose(ours.reshape(-1).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_off_target_smoothing_puts_eps_over_c_minus_1_on_each_other_class() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.5, -1.0]], dtype=torch.float64)
    log_q = torch.log_softmax(logits, 1)[0]
    eps = 0.3
    expected = -((1 - eps) * log_q[1] + eps / 3 * (log_q[0] + log_q[2] + log_q[3]))
    ours = crossent.cross_entropy(
        logits, torch.tensor([1]), label_smoothing=eps, smoothing="off_target"
    )
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("input_kind", ["log_probs", "probs"])
def test_log_probs_and_probs_inputs_equal_logits_input(input_kind: str) -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 5, 2, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 5, (6, 2), generator=gen)
    scores = torch.log_softmax(logits, 1)
    if input_kind == "probs":
        scores = scores.exp()
    options = {"weight": torch.rand(5, dtype=torch.float64), "label_smoothing": 0.2}
    torch.testing.assert_close(
        crossent.cross_entropy(scores, target, input_kind=input_kind, **options),
        crossent.cross_entropy(logits, target, **options),
    )


def test_one_hot_targets_equal_index_targets_without_weights() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    index = torch.randint(0, 4, (7,), generator=gen)
    one_hot = F.one_hot(index, 4)
    for target in (one_hot, one_hot.double()):  # integer one-hot is accepted too
        torch.testing.assert_close(
            crossent.cross_entropy(logits, target, label_smoothing=0.1),
            crossent.cross_entropy(logits, index, label_smoothing=0.1),
        )


def test_unbatched_input_matches_torch() -> None:
    logits = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    for target in (torch.tensor(2), torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)):
        for reduction in ("none", "mean"):
            torch.testing.assert_close(
                crossent.cross_entropy(logits, target, reduction=reduction),
                F.cross_entropy(logits, target, reduction=reduction),
            )


@st.composite
def binary_case(draw: st.DrawFn) -> dict:
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 4
    target = torch.rand(shape, generator=gen, dtype=torch.float64)
    if draw(st.booleans()):
        target = target.round()
    weight_shape = draw(st.sampled_from([None, shape, shape[-1:]]))
    weight = (
        None if weight_shape is None
        else torch.rand(weight_shape, generator=gen, dtype=torch.float64) * 2
    )
    pos_weight = (
        torch.rand(shape[-1:], generator=gen, dtype=torch.float64) * 3
        if draw(st.booleans()) else None
    )
    return {
        "logits": logits, "target": target, "weight": weight, "pos_weight": pos_weight,
        "reduction": draw(st.sampled_from(["none", "sum", "mean"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.2, 1.0])),
        "upstream": torch.rand(shape, generator=gen, dtype=torch.float64),
    }


@FAST
@given(case=binary_case())
def test_binary_cross_entropy_matches_torch_with_logits(case: dict) -> None:
    eps = case["label_smoothing"]
    # docs/ARCHITECTURE.md, "Exact definitions": y' = y (1 - eps) + eps / 2
    smoothed = case["target"] * (1 - eps) + eps / 2
    ours, our_grad = _value_and_grad(
        crossent.binary_cross_entropy, case["logits"], case["upstream"], target=case["target"],
        weight=case["weight"], pos_weight=case["pos_weight"], reduction=case["reduction"],
        label_smoothing=eps,
    )
    theirs, their_grad = _value_and_grad(
        F.binary_cross_entropy_with_logits, case["logits"], case["upstream"], target=smoothed,
        weight=case["weight"], pos_weight=case["pos_weight"], reduction=case["reduction"],
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-10, atol=1e-10)


@FAST
@given(case=binary_case())
def test_binary_cross_entropy_on_probabilities_matches_torch(case: dict) -> None:
    probs = torch.sigmoid(case["logits"].clamp(-6, 6))  # inside torch's -100 log clamp
    ours, our_grad = _value_and_grad(
        crossent.binary_cross_entropy, probs, case["upstream"], target=case["target"],
        weight=case["weight"], reduction=case["reduction"], input_kind="probs",
    )
    theirs, their_grad = _value_and_grad(
        F.binary_cross_entropy, probs, case["upstream"], target=case["target"],
        weight=case["weight"], reduction=case["reduction"],
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-9, atol=1e-10)


@FAST
@given(case=binary_case())
def test_binary_cross_entropy_matches_numpy_definition(case: dict) -> None:
    probs = torch.sigmoid(case["logits"])
    ours = crossent.binary_cross_entropy(
        case["logits"], case["target"], weight=case["weight"], pos_weight=case["pos_weight"],
        reduction="none",
    )
    expected = ref.binary_cross_entropy(
        probs.numpy(), case["target"].numpy(),
        weight=None if case["weight"] is None else case["weight"].numpy(),
        pos_weight=None if case["pos_weight"] is None else case["pos_weight"].numpy(),
        reduction="none",
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("num_classes", [1, 2, 3, 10, 1000])
def test_uniform_logits_give_ln_c_nats_and_log2_c_bits(num_classes: int) -> None:
    logits = torch.full((4, num_classes), 1.7)
    target = torch.arange(4) % num_classes
    for implementation in IMPLEMENTATIONS:
        nats = crossent.cross_entropy(logits, target, implementation=implementation)
        bits = crossent.cross_entropy(logits, target, base="bits", implementation=implementation)
        assert float(nats) == pytest.approx(math.log(num_classes), abs=1e-6)
        assert float(bits) == pytest.approx(math.log2(num_classes), abs=1e-6)


def test_known_probability_gives_minus_log_of_it() -> None:
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7]], dtype=torch.float64))
    assert float(crossent.cross_entropy(logits, torch.tensor([2]))) == pytest.approx(
        -math.log(0.7), rel=1e-12
    )


@pytest.mark.parametrize("base", ["bits", 10.0, 3])
def test_any_base_is_nats_divided_by_ln_base_in_value_and_gradient(base: object) -> None:
    divisor = math.log(2.0) if base == "bits" else math.log(float(base))  # type: ignore[arg-type]
    logits = torch.randn(5, 4, dtype=torch.float64)
    target = torch.randint(0, 4, (5,))
    upstream = torch.ones(())
    nats, nats_grad = _value_and_grad(crossent.cross_entropy, logits, upstream, target=target)
    other, other_grad = _value_and_grad(
        crossent.cross_entropy, logits, upstream, target=target, base=base
    )
    torch.testing.assert_close(other, nats / divisor)
    torch.testing.assert_close(other_grad, nats_grad / divisor)
    assert float(crossent.binary_cross_entropy(
        torch.zeros(3), torch.ones(3), base="bits")) == pytest.approx(1.0)


def test_focal_loss_multiclass_matches_numpy_definition() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(9, 4, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(0, 4, (9,), generator=gen)
    target[2] = -100
    alpha = torch.tensor([0.25, 1.0, 2.0, 0.5], dtype=torch.float64)
    for gamma in (0.5, 2.0, 5.0):
        for alpha_option, alpha_np in ((None, None), (0.25, 0.25), (alpha, alpha.numpy())):
            for reduction in ("none", "sum", "mean"):
                ours = crossent.focal_loss(
                    logits, target, gamma=gamma, alpha=alpha_option, reduction=reduction
                )
                expected = ref.focal_loss(
                    logits.numpy(), target.numpy(), gamma=gamma, alpha=alpha_np,
                    reduction=reduction,
                )
                np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


def test_focal_loss_hand_vector_two_equal_logits() -> None:
    # q = 1/2 for the true class: (1 - 1/2)^1 * ln 2
    loss = crossent.focal_loss(torch.zeros(1, 2), torch.tensor([0]), gamma=1.0)
    assert float(loss) == pytest.approx(0.5 * math.log(2.0))


@pytest.mark.parametrize("alpha", [None, 0.25, 0.8])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_binary_focal_equals_torchvision_sigmoid_focal_loss_formula(
    alpha: float | None, reduction: str
) -> None:
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(5, 7, generator=gen, dtype=torch.float64) * 3
    for target in (torch.randint(0, 2, (5, 7), generator=gen).double(),
                   torch.rand(5, 7, generator=gen, dtype=torch.float64)):
        ours = crossent.focal_loss(
            logits, target, gamma=2.0, alpha=alpha, mode="binary", reduction=reduction
        )
        expected = ref.sigmoid_focal_loss(
            logits.numpy(), target.numpy(), alpha=-1.0 if alpha is None else alpha, gamma=2.0,
            reduction=reduction,
        )
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)


def test_focal_with_gamma_0_and_no_alpha_is_exactly_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(6, 5, 3, generator=gen)
    target = torch.randint(0, 5, (6, 3), generator=gen)
    target[0, 1] = -100
    for reduction in ("none", "sum", "mean"):
        for smoothing in ("uniform", "off_target"):
            options = {"reduction": reduction, "label_smoothing": 0.1, "smoothing": smoothing}
            assert torch.equal(
                crossent.focal_loss(logits, target, gamma=0.0, **options),
                crossent.cross_entropy(logits, target, implementation="reference", **options),
            )
    binary_target = torch.rand(6, 5, generator=gen)
    assert torch.equal(
        crossent.focal_loss(logits[:, :, 0], binary_target, gamma=0.0, mode="binary"),
        crossent.binary_cross_entropy(logits[:, :, 0], binary_target),
    )


def test_class_balanced_weights_follow_cui_et_al_and_sum_to_c() -> None:
    counts = np.array([1, 10, 100, 5000])
    beta = 0.99
    raw = (1 - beta) / (1 - beta ** counts.astype(np.float64))
    expected = raw / raw.sum() * len(counts)
    weights = crossent.class_balanced_weights(counts.tolist(), beta=beta, dtype=torch.float64)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-12)
    assert float(weights.sum()) == pytest.approx(4.0)
    assert crossent.class_balanced_weights(torch.tensor([3, 700]), beta=0.0).tolist() == [1, 1]
