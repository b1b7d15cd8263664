"""z_loss, softcap and return_lse on every CPU path, against the definition on materialised logits.

The expected numbers come from :func:`_materialised`, which writes the definition out in float64
torch operations on the full logits (soft-cap, log-softmax, smoothed target, class weights,
z-loss, PyTorch's mean convention): no crossent code is involved.
"""

from __future__ import annotations

import math

import pytest
import torch

import crossent
from crossent.kernels import cpu, linear, linear_blocked, linear_sweep

pytestmark = pytest.mark.skipif(not cpu.available(), reason="numba kernel unavailable")


def _materialised(logits, target, *, weight=None, label_smoothing=0.0, smoothing="uniform",
                  reduction="mean", z_loss=0.0, softcap=None, divisor=1.0):
    """(loss, lse) of the definition; differentiable in ``logits``."""
    capped = logits if softcap is None else softcap * torch.tanh(logits / softcap)
    lse = torch.logsumexp(capped, dim=1)
    log_q = capped - lse[:, None]
    rows, classes = logits.shape
    if target.dim() == 1:
        keep = target != -100
        y = torch.nn.functional.one_hot(target.clamp_min(0), classes).double()
    else:
        keep = torch.ones(rows, dtype=torch.bool)
        y = target.double()
    eps = label_smoothing
    if smoothing == "uniform":
        t = (1 - eps) * y + eps / classes
    else:
        t = (1 - eps) * y + eps * (1 - y) / (classes - 1)
    t = t * keep[:, None]
    w = torch.ones(classes, dtype=torch.float64) if weight is None else weight
    row = -(w * t * log_q).sum(1) + torch.where(keep, z_loss * lse**2, 0.0)
    if reduction == "none":
        loss = row
    elif reduction == "sum":
        loss = row.sum()
    else:
        denominator = (w[target.clamp_min(0)] * keep).sum() if target.dim() == 1 else rows
        loss = row.sum() / denominator
    return loss / divisor, lse


def _target(rows, classes, soft, generator):
    if soft:
        return torch.softmax(torch.randn(rows, classes, dtype=torch.float64,
                                         generator=generator), 1)
    target = torch.randint(0, classes, (rows,), generator=generator)
    target[1] = -100
    return target


@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("soft", "weighted", "smoothing"),
                         [(False, False, "uniform"), (False, True, "off_target"),
                          (True, True, "uniform")])
def test_cross_entropy_options_match_the_definition(implementation, reduction, soft, weighted,
                                                    smoothing):
    generator = torch.Generator().manual_seed(7)
    logits = 4 * torch.randn(6, 37, dtype=torch.float64, generator=generator)
    target = _target(6, 37, soft, generator)
    weight = torch.rand(37, dtype=torch.float64, generator=generator) + 0.2 if weighted else None
    options = {"weight": weight, "label_smoothing": 0.1, "smoothing": smoothing,
               "reduction": reduction, "z_loss": 0.03, "softcap": 3.0}
    ours_in = logits.clone().requires_grad_()
    loss, lse = crossent.cross_entropy(ours_in, target, implementation=implementation,
                                       base="bits", return_lse=True, **options)
    ref_in = logits.clone().requires_grad_()
    expected, expected_lse = _materialised(ref_in, target, divisor=math.log(2.0), **options)
    grad_output = torch.rand_like(expected) + 0.5
    loss.backward(grad_output)
    expected.backward(grad_output)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lse, expected_lse, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-12, atol=1e-12)
    assert not lse.requires_grad and lse.shape == (6,)


def test_inplace_fused_kernel_takes_the_options_too():
    generator = torch.Generator().manual_seed(3)
    logits = 5 * torch.randn(5, 300, generator=generator)
    target = torch.randint(0, 300, (5,), generator=generator)
    ours_in = logits.clone().requires_grad_()
    loss, lse = crossent.cross_entropy(ours_in, target, inplace=True, z_loss=1e-3,
                                       softcap=4.0, return_lse=True)
    loss.backward()
    ref_in = logits.double().requires_grad_()
    expected, expected_lse = _materialised(ref_in, target, z_loss=1e-3, softcap=4.0)
    expected.backward()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lse.double(), expected_lse, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_in.grad.double(), ref_in.grad, rtol=1e-4, atol=1e-7)


def test_ignored_rows_still_report_their_log_sum_exp():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]], dtype=torch.float64)
    _, lse = crossent.cross_entropy(logits, torch.tensor([0, -100]), implementation="fused",
                                    return_lse=True)
    torch.testing.assert_close(lse, torch.logsumexp(logits, 1))


@pytest.fixture(params=["chunked", "class_blocked"])
def route(request, monkeypatch):
    """The chunked sweep, or float64 routed through the class-blocked one with blocks of 3
    classes and tiny tiles; yields the name and a list that counts the blocked sweep's calls."""
    calls = []
    if request.param == "class_blocked":
        original = linear_blocked.class_sweep

        def counting(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        monkeypatch.setattr(linear, "LOW_PRECISION", (torch.float64,))
        monkeypatch.setattr(linear_sweep, "MIN_BLOCK_CLASSES", 3)
        monkeypatch.setattr(linear_sweep, "CHUNK_BUDGET_BYTES", 64)
        monkeypatch.setattr(linear_blocked, "class_sweep", counting)
    return request.param, calls


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("soft", [False, True])
def test_linear_options_match_the_definition(route, reduction, soft):
    name, calls = route
    generator = torch.Generator().manual_seed(11)
    hidden = torch.randn(9, 5, dtype=torch.float64, generator=generator)
    weight = torch.randn(23, 5, dtype=torch.float64, generator=generator)
    bias = torch.randn(23, dtype=torch.float64, generator=generator)
    class_weight = torch.rand(23, dtype=torch.float64, generator=generator) + 0.2
    target = _target(9, 23, soft, generator)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    options = {"class_weight": class_weight, "label_smoothing": 0.1, "reduction": reduction,
               "z_loss": 0.02, "softcap": 2.5}
    loss, lse = crossent.linear_cross_entropy(
        leaves[0], leaves[1], target, bias=leaves[2], temperature=0.8, chunk_size=4,
        return_lse=True, **options,
    )
    ref = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    options["weight"] = options.pop("class_weight")
    expected, expected_lse = _materialised((ref[0] @ ref[1].T + ref[2]) / 0.8, target, **options)
    grad_output = torch.rand_like(expected) + 0.5
    loss.backward(grad_output)
    expected.backward(grad_output)
    torch.testing.assert_close(loss, expected, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(lse, expected_lse, rtol=1e-11, atol=1e-11)
    for got, want in zip(leaves, ref, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-11, atol=1e-11)
    assert bool(calls) == (name == "class_blocked")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"z_loss": -1.0}, r"z_loss = -1.0 must be a finite number >= 0"),
     ({"softcap": 0.0}, r"softcap = 0.0 must be a finite number > 0 or None"),
     ({"return_lse": 1}, r"return_lse = 1 must be True or False")],
)
def test_bad_options_raise_naming_them(options, message):
    logits, target = torch.randn(2, 3), torch.tensor([0, 1])
    with pytest.raises(crossent.CrossentError, match=message):
        crossent.cross_entropy(logits, target, **options)
    with pytest.raises(crossent.CrossentError, match=message):
        crossent.linear_cross_entropy(logits, torch.randn(4, 3), target, **options)


def test_options_need_logits():
    with pytest.raises(crossent.CrossentError, match='need input_kind="logits"'):
        crossent.cross_entropy(torch.full((1, 2), 0.5), torch.tensor([0]), input_kind="probs",
                               z_loss=0.1)


# the non-finite check folded into the fused kernel's sweep ---------------------------------


def _bad_logits(case):
    logits = torch.randn(4, 3, 5, dtype=torch.float64) if case == "nd" else torch.randn(
        6, 5, dtype=torch.float64)
    if case == "unbatched":
        logits = logits[0]
    flat = logits.view(-1)
    if case == "neg_inf_row":
        logits[3] = float("-inf")
    else:
        flat[13 if case != "unbatched" else 2] = float("nan") if case != "pos_inf" else math.inf
        flat[-1] = float("nan")  # a later offender: the message names the first one
    return logits


@pytest.mark.parametrize("case", ["2d", "nd", "unbatched", "pos_inf", "neg_inf_row", "inplace",
                                  "soft"])
def test_fused_check_raises_the_separate_checks_message(case):
    logits = _bad_logits(case)
    if case == "soft":
        target = torch.softmax(torch.randn_like(logits), 1)
    else:
        shape = (logits.shape[0], *logits.shape[2:]) if logits.dim() > 1 else ()
        target = torch.zeros(shape, dtype=torch.long)
        if logits.dim() > 1:
            target[1] = -100  # an ignored row is checked too
    with pytest.raises(crossent.CrossentError) as separate:
        crossent.cross_entropy(logits.clone(), target, implementation="reference")
    with pytest.raises(crossent.CrossentError) as fused:
        crossent.cross_entropy(logits.clone(), target, implementation="fused",
                               inplace=case == "inplace")
    assert str(fused.value) == str(separate.value)
    assert "is not finite" in str(fused.value) or "every class" in str(fused.value)


def test_fused_path_makes_no_separate_pass_over_the_logits(monkeypatch):
    from crossent.losses import _fused, _inputs

    calls = []
    for module in (_inputs, _fused):
        monkeypatch.setattr(module, "check_multiclass_input_values",
                            lambda *args: calls.append(args))
    logits = torch.randn(5, 7)
    logits[0, 1] = -math.inf  # allowed: probability 0
    loss = crossent.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 4]), implementation="fused")
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 4]))
    torch.testing.assert_close(loss, expected)
    assert not calls
    assert crossent.cross_entropy(torch.full((2, 3), math.nan), torch.tensor([0, 1]),
                                  implementation="fused", validate=False) is not None
