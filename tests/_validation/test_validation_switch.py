"""Validation on and off: the same numbers on valid input, no host synchronisation when off,
a NaN (never a silent number, never an out-of-bounds read) for a bad index when off."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import crossent
from crossent._validation.switch import validation_enabled
from crossent.errors import CrossentError

GEN = torch.Generator().manual_seed(0)
LOGITS = torch.randn(6, 5, generator=GEN, dtype=torch.float64) * 3
TARGET = torch.tensor([0, 4, 2, -100, 1, 3])
SOFT = torch.softmax(torch.randn(6, 5, generator=GEN, dtype=torch.float64), 1)
LABELS = torch.rand(6, 5, generator=GEN, dtype=torch.float64)
HIDDEN = torch.randn(6, 4, generator=GEN, dtype=torch.float64)
WEIGHT = torch.randn(5, 4, generator=GEN, dtype=torch.float64)

# (crossent loss taking validate=..., its torch.nn.functional reference), on (LOGITS, target)
CASES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor], Any]] = {
    "cross_entropy_fused": (
        lambda z, y, **kw: crossent.cross_entropy(z, y, **kw), F.cross_entropy, TARGET
    ),
    "cross_entropy_reference": (
        lambda z, y, **kw: crossent.cross_entropy(z, y, implementation="reference", **kw),
        F.cross_entropy,
        TARGET,
    ),
    "cross_entropy_soft_smoothed": (
        lambda z, y, **kw: crossent.cross_entropy(z, y, label_smoothing=0.2, **kw),
        lambda z, y: F.cross_entropy(z, y, label_smoothing=0.2),
        SOFT,
    ),
    "focal_gamma_0": (
        lambda z, y, **kw: crossent.focal_loss(z, y, gamma=0.0, reduction="sum", **kw),
        lambda z, y: F.cross_entropy(z, y, reduction="sum"),
        TARGET,
    ),
    "binary": (
        lambda z, y, **kw: crossent.binary_cross_entropy(z, y, reduction="none", **kw),
        lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none"),
        LABELS,
    ),
    "linear": (
        lambda h, y, **kw: crossent.linear_cross_entropy(h, WEIGHT, y, **kw),
        lambda h, y: F.cross_entropy(h @ WEIGHT.T, y),
        TARGET,
    ),
    "module": (
        lambda z, y, **kw: crossent.nn.CrossEntropyLoss(**kw)(z, y),
        F.cross_entropy,
        TARGET,
    ),
}


@pytest.fixture(autouse=True)
def _restore_setting() -> Iterator[None]:
    yield
    crossent.set_validation(True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_validation_off_gives_torchs_value_and_gradient(name: str) -> None:
    loss_fn, reference, target = CASES[name]
    data = HIDDEN if name == "linear" else LOGITS
    expected_input = data.clone().requires_grad_()
    expected = reference(expected_input, target)
    expected.sum().backward()
    for validate in (True, False):
        given = data.clone().requires_grad_()
        loss = loss_fn(given, target, validate=validate)
        loss.sum().backward()
        torch.testing.assert_close(loss, expected, msg=f"validate={validate}")
        torch.testing.assert_close(given.grad, expected_input.grad, msg=f"validate={validate}")


def test_validate_false_skips_the_value_checks_but_not_the_shape_checks() -> None:
    bad = LOGITS.clone()
    bad[2, 1] = math.nan
    with pytest.raises(CrossentError, match=r"input row 2 is not finite: input\[2, 1\] = nan"):
        crossent.cross_entropy(bad, TARGET)
    unchecked = crossent.cross_entropy(bad, TARGET, implementation="reference", validate=False)
    assert math.isnan(float(unchecked))  # as torch: NaN in, NaN out
    with pytest.raises(CrossentError, match=r"target has shape \(5,\)"):
        crossent.cross_entropy(LOGITS, TARGET[:5], validate=False)
    with pytest.raises(CrossentError, match="reduction = 'avg' is not one of"):
        crossent.cross_entropy(LOGITS, TARGET, reduction="avg", validate=False)  # type: ignore[arg-type]
    with pytest.raises(CrossentError, match="validate = 1 must be True or False"):
        crossent.cross_entropy(LOGITS, TARGET, validate=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", ["cross_entropy_fused", "cross_entropy_reference", "linear"])
def test_out_of_range_index_with_validation_off_gives_nan_not_a_number(
    name: str, reduction: str
) -> None:
    loss_fn = CASES[name][0]
    data = HIDDEN if name == "linear" else LOGITS
    target = TARGET.clone()
    target[1] = 7  # outside [0, 5): must never reach a kernel
    with pytest.raises(CrossentError, match=r"target\[1\] = 7 is outside \[0, 5\)"):
        loss_fn(data, target, reduction=reduction)
    loss = loss_fn(data, target, reduction=reduction, validate=False)
    if reduction == "none":
        assert torch.isnan(loss).tolist() == [False, True, False, False, False, False]
        valid = target != 7
        expected = F.cross_entropy(data if name != "linear" else data @ WEIGHT.T, TARGET,
                                   reduction="none")
        torch.testing.assert_close(loss[valid], expected[valid])
    else:
        assert math.isnan(float(loss))


def test_global_switch_and_context_manager() -> None:
    bad_target = torch.tensor([0, 9, 1, 1, 1, 1])
    assert validation_enabled()
    with crossent.validation(False):
        assert not validation_enabled()
        assert math.isnan(float(crossent.cross_entropy(LOGITS, bad_target)))
        with crossent.validation(True):  # blocks nest
            with pytest.raises(CrossentError, match=r"target\[1\] = 9"):
                crossent.cross_entropy(LOGITS, bad_target)
        assert not validation_enabled()
        with pytest.raises(CrossentError, match=r"target\[1\] = 9"):  # per call wins
            crossent.cross_entropy(LOGITS, bad_target, validate=True)
    assert validation_enabled()
    with pytest.raises(ZeroDivisionError), crossent.validation(False):
        raise ZeroDivisionError  # the setting comes back on an exception too
    assert validation_enabled()
    crossent.set_validation(False)
    assert math.isnan(float(crossent.focal_loss(LOGITS, bad_target)))
    crossent.set_validation(True)
    with pytest.raises(CrossentError, match="enabled = 'no' must be True or False"):
        crossent.set_validation("no")  # type: ignore[arg-type]


def test_nn_modules_take_validate() -> None:
    bad_target = torch.tensor([0, 9, 1, 1, 1, 1])
    module = crossent.nn.FocalLoss(gamma=1.0, validate=False)
    assert math.isnan(float(module(LOGITS, bad_target)))
    with pytest.raises(CrossentError, match=r"target\[1\] = 9"):
        crossent.nn.FocalLoss(gamma=1.0)(LOGITS, bad_target)
    probs_over_one = torch.full((2, 3), 1.5)
    with pytest.raises(CrossentError, match=r"input\[0, 0\] = 1.5 is outside \[0, 1\]"):
        crossent.nn.BinaryCrossEntropyLoss(input_kind="probs")(probs_over_one, torch.ones(2, 3))
    crossent.nn.BinaryCrossEntropyLoss(input_kind="probs", validate=False)(
        probs_over_one, torch.ones(2, 3)
    )


class _HostSync(AssertionError):
    pass


@pytest.fixture
def no_host_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way of reading a tensor's data into Python raise."""

    def forbid(name: str) -> Callable[..., Any]:
        def read(*args: Any, **kwargs: Any) -> Any:
            raise _HostSync(f"Tensor.{name} was called")

        return read

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbid(name))


LOSS_PATHS: dict[str, Callable[[], torch.Tensor]] = {
    "cross_entropy": lambda: crossent.cross_entropy(
        LOGITS, TARGET, implementation="reference", validate=False
    ),
    "cross_entropy_soft_weighted": lambda: crossent.cross_entropy(
        LOGITS, SOFT, weight=torch.rand(5, dtype=torch.float64), implementation="reference",
        validate=False,
    ),
    "focal": lambda: crossent.focal_loss(
        LOGITS, TARGET, alpha=torch.ones(5, dtype=torch.float64), validate=False
    ),
    "binary_focal": lambda: crossent.focal_loss(
        LOGITS, LABELS, mode="binary", alpha=0.25, validate=False
    ),
    "binary": lambda: crossent.binary_cross_entropy(
        LOGITS, LABELS, pos_weight=torch.ones(5, dtype=torch.float64), validate=False
    ),
    "module": lambda: crossent.nn.CrossEntropyLoss(implementation="reference", validate=False)(
        LOGITS, TARGET
    ),
}


@pytest.mark.parametrize("name", sorted(LOSS_PATHS))
def test_validation_off_reads_nothing_on_the_host(name: str, no_host_reads: None) -> None:
    LOSS_PATHS[name]()


def test_validation_on_does_read_on_the_host(no_host_reads: None) -> None:
    # the fixture can catch a read: with validation on the checks do read
    with pytest.raises(_HostSync):
        crossent.cross_entropy(LOGITS, TARGET, implementation="reference")


@pytest.mark.parametrize("name", ["cross_entropy", "focal", "binary"])
def test_validation_off_compiles_without_graph_breaks(name: str) -> None:
    compiled = torch.compile(LOSS_PATHS[name], fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(), LOSS_PATHS[name]())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(LOSS_PATHS))
def test_validation_off_never_synchronises_with_the_gpu(name: str) -> None:
    global LOGITS, TARGET, SOFT, LABELS
    saved = LOGITS, TARGET, SOFT, LABELS
    LOGITS, TARGET, SOFT, LABELS = (t.cuda() for t in saved)
    try:
        LOSS_PATHS[name]()  # warm-up: first calls may synchronise while loading kernels
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            LOSS_PATHS[name]()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    finally:
        LOGITS, TARGET, SOFT, LABELS = saved
