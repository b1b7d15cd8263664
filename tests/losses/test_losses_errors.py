"""Every bad input to the public losses raises CrossentError naming argument, value, position."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import crossent
from crossent import CrossentError


def _logits(n: int = 4, c: int = 3) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(0))


def _raises(message: str) -> pytest.RaisesExc:
    """pytest.raises for a CrossentError whose message contains ``message`` literally."""
    return pytest.raises(CrossentError, match=re.escape(message))


def test_crossent_error_is_a_value_error() -> None:
    assert issubclass(CrossentError, ValueError)


def test_target_index_outside_range_names_position_value_and_c() -> None:
    target = torch.zeros(20, dtype=torch.long)
    target[17] = 12
    with _raises("target[17] = 12 is outside [0, 10) (C = 10)"):
        crossent.cross_entropy(torch.randn(20, 10), target)


def test_negative_target_index_that_is_not_ignore_index_is_an_error() -> None:
    target = torch.tensor([[0, 1], [2, -1]])
    with _raises("target[1, 1] = -1 is outside [0, 3)"):
        crossent.cross_entropy(torch.randn(2, 3, 2), target)
    # the same value is fine once it is the ignore_index
    crossent.cross_entropy(torch.randn(2, 3, 2), target, ignore_index=-1)


def test_floating_class_indices_are_rejected() -> None:
    with _raises("target has dtype torch.float32: class indices"):
        crossent.cross_entropy(_logits(), torch.tensor([0.0, 1.0, 2.0, 1.0]))


def test_input_and_target_shape_mismatch_names_both_shapes() -> None:
    with _raises(
        (
            "target has shape (5,), but input has shape (4, 3): expected class "
            "indices of shape (4,) or class probabilities of shape (4, 3)"
        ),
    ):
        crossent.cross_entropy(_logits(), torch.zeros(5, dtype=torch.long))


def test_weight_of_wrong_shape_is_an_error() -> None:
    with _raises("weight has shape (2,), expected (3,)"):
        crossent.cross_entropy(_logits(), torch.tensor([0, 1, 2, 0]), weight=torch.ones(2))


def test_negative_class_weight_is_an_error() -> None:
    with _raises("weight[1] = -0.5 is negative"):
        crossent.cross_entropy(
            _logits(), torch.tensor([0, 1, 2, 0]), weight=torch.tensor([1.0, -0.5, 1.0])
        )


def test_probabilities_outside_unit_interval_are_an_error() -> None:
    probs = torch.full((2, 3), 1 / 3)
    probs[1, 2] = 1.5
    with _raises("input[1, 2] = 1.5 is outside [0, 1]"):
        crossent.cross_entropy(probs, torch.tensor([0, 1]), input_kind="probs")


def test_probability_row_not_summing_to_one_names_row_and_sum_and_hints_logits() -> None:
    probs = torch.full((5, 2), 0.5, dtype=torch.float64)
    probs[3] = torch.tensor([0.87, 0.5], dtype=torch.float64)
    with _raises(
        (
            "input row 3 sums to 1.37, expected probabilities summing to 1 "
            '(tolerance 0.001) (pass input_kind="logits" for raw scores)'
        ),
    ):
        crossent.cross_entropy(probs, torch.zeros(5, dtype=torch.long), input_kind="probs")


def test_probability_rows_within_documented_tolerance_are_accepted() -> None:
    probs = torch.tensor([[0.5, 0.5009], [0.2, 0.7992]])  # |sum - 1| < 1e-3
    crossent.cross_entropy(probs, torch.tensor([0, 1]), input_kind="probs")


def test_soft_targets_must_be_non_negative_and_sum_to_one() -> None:
    target = torch.tensor([[0.5, 0.5, 0.0], [0.6, -0.2, 0.6]])
    with _raises("target[1, 1] = -0.2 is outside [0, 1]"):
        crossent.cross_entropy(torch.randn(2, 3), target)
    target = torch.tensor([[0.5, 0.5, 0.0], [0.3, 0.3, 0.0]])
    with _raises("target row 1 sums to 0.6"):
        crossent.cross_entropy(torch.randn(2, 3), target)
    target = torch.full((2, 3, 4), 1 / 3)
    target[1, :, 2] = 0.0
    with _raises("target[1, :, 2] sums to 0"):
        crossent.cross_entropy(torch.randn(2, 3, 4), target)


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan])
def test_label_smoothing_outside_unit_interval_is_an_error(value: float) -> None:
    with pytest.raises(CrossentError, match=r"label_smoothing = .* is outside \[0, 1\]"):
        crossent.cross_entropy(_logits(), torch.tensor([0, 1, 2, 0]), label_smoothing=value)
    with pytest.raises(CrossentError, match="label_smoothing"):
        crossent.binary_cross_entropy(torch.zeros(2), torch.ones(2), label_smoothing=value)


@pytest.mark.parametrize("base", [1.0, 0.5, -2.0, "decibels"])
def test_base_at_most_one_or_unknown_is_an_error(base: object) -> None:
    with pytest.raises(CrossentError, match="base = "):
        crossent.cross_entropy(_logits(), torch.tensor([0, 1, 2, 0]), base=base)  # type: ignore[arg-type]


def test_non_floating_input_is_an_error() -> None:
    with _raises("input has dtype torch.int64, expected a floating"):
        crossent.cross_entropy(torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1]))
    with _raises("input has dtype torch.int64"):
        crossent.binary_cross_entropy(torch.ones(2, dtype=torch.long), torch.ones(2))


def test_non_tensor_input_is_an_error() -> None:
    with _raises("input must be a torch.Tensor, got list"):
        crossent.cross_entropy([[0.0, 1.0]], torch.tensor([0]))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_logits_name_the_first_offending_row(bad: float) -> None:
    logits = _logits(6, 3)
    logits[4, 1] = bad
    logits[5, 0] = bad
    with _raises(f"input row 4 is not finite: input[4, 1] = {bad}"):
        crossent.cross_entropy(logits, torch.zeros(6, dtype=torch.long))


def test_non_finite_logits_with_trailing_dims_name_the_row_and_position() -> None:
    logits = torch.zeros(3, 2, 4)
    logits[2, 1, 3] = math.nan
    with _raises("input row 2 is not finite: input[2, 1, 3]"):
        crossent.focal_loss(logits, torch.zeros(3, 4, dtype=torch.long))


def test_a_row_of_only_minus_inf_logits_is_an_error() -> None:
    logits = _logits(3, 2)
    logits[1] = -math.inf
    with pytest.raises(CrossentError, match="input row 1 is -inf in every class"):
        crossent.cross_entropy(logits, torch.tensor([0, 0, 1]))


def test_positive_log_probabilities_are_an_error_hinting_at_logits() -> None:
    with _raises("input[0, 1] = 2 is positive"):
        crossent.cross_entropy(
            torch.tensor([[-1.0, 2.0]]), torch.tensor([0]), input_kind="log_probs"
        )


def test_nan_binary_logits_and_out_of_range_binary_targets_are_errors() -> None:
    logits = torch.zeros(2, 3)
    logits[1, 2] = math.nan
    with _raises("input row 1 is not finite: input[1, 2]"):
        crossent.binary_cross_entropy(logits, torch.ones(2, 3))
    with _raises("target[0, 1] = 2 is outside [0, 1]"):
        crossent.binary_cross_entropy(torch.zeros(2, 3), torch.tensor([[0, 2, 1], [1, 1, 1]]))
    with _raises("input[0] = -0.1 is outside [0, 1]"):
        crossent.binary_cross_entropy(torch.tensor([-0.1, 0.5]), torch.ones(2), input_kind="probs")


def test_binary_shape_and_weight_broadcast_mismatches_are_errors() -> None:
    with _raises("target has shape (3,), but input has shape (2, 3)"):
        crossent.binary_cross_entropy(torch.zeros(2, 3), torch.ones(3))
    with _raises("pos_weight has shape (2,), which does not broadcast"):
        crossent.binary_cross_entropy(torch.zeros(2, 3), torch.ones(2, 3), pos_weight=torch.ones(2))
    with _raises("weight[0, 2] = -1 is negative"):
        crossent.binary_cross_entropy(
            torch.zeros(2, 3), torch.ones(2, 3), weight=torch.tensor([[1.0, 1.0, -1.0]])
        )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"reduction": "avg"}, "reduction = 'avg' is not one of 'none', 'sum', 'mean'"),
        ({"smoothing": "gaussian"}, "smoothing = 'gaussian' is not one of"),
        ({"input_kind": "scores"}, "input_kind = 'scores' is not one of"),
        ({"implementation": "fast"}, "implementation = 'fast' is not one of"),
        ({"eps": 0.0}, "eps = 0.0 is outside (0, 0.5)"),
        ({"ignore_index": 1.5}, "ignore_index = 1.5 must be an integer"),
        ({"inplace": "yes"}, "inplace = 'yes' must be True or False"),
    ],
)
def test_bad_options_are_named_with_their_value(option: dict, message: str) -> None:
    with _raises(message):
        crossent.cross_entropy(_logits(), torch.tensor([0, 1, 2, 0]), **option)


def test_off_target_smoothing_with_one_class_is_an_error() -> None:
    with _raises('smoothing="off_target" needs at least 2 classes'):
        crossent.cross_entropy(
            torch.zeros(3, 1),
            torch.zeros(3, dtype=torch.long),
            label_smoothing=0.1,
            smoothing="off_target",
        )


def test_ignore_index_with_probability_targets_is_an_error_as_in_torch() -> None:
    with pytest.raises(CrossentError, match="ignore_index = 0 applies to class-index targets"):
        crossent.cross_entropy(_logits(), torch.full((4, 3), 1 / 3), ignore_index=0)


def test_forcing_fused_where_it_cannot_run_says_why() -> None:
    with _raises('implementation = "fused" is not possible: input_kind = "probs"'):
        crossent.cross_entropy(
            torch.full((2, 2), 0.5),
            torch.tensor([0, 1]),
            input_kind="probs",
            implementation="fused",
        )
    with _raises("dtype torch.float16 (the fused kernels take float32/float64)"):
        crossent.cross_entropy(
            torch.zeros(2, 2, dtype=torch.float16), torch.tensor([0, 1]), implementation="fused"
        )


def test_weight_on_another_device_or_scalar_input_is_an_error() -> None:
    with pytest.raises(CrossentError, match="input is a scalar"):
        crossent.cross_entropy(torch.tensor(1.0), torch.tensor(0))


def test_focal_loss_option_errors() -> None:
    target = torch.tensor([0, 1, 2, 0])
    with _raises("gamma = -1.0 must be a finite number >= 0"):
        crossent.focal_loss(_logits(), target, gamma=-1.0)
    with _raises("alpha has shape (2,), expected (3,)"):
        crossent.focal_loss(_logits(), target, alpha=torch.ones(2))
    with _raises("alpha = 1.5 is outside [0, 1]"):
        crossent.focal_loss(torch.zeros(4), torch.ones(4), alpha=1.5, mode="binary")
    with pytest.raises(CrossentError, match="mode = 'softmax' is not one of"):
        crossent.focal_loss(_logits(), target, mode="softmax")  # type: ignore[arg-type]
    with _raises("input_kind (with mode='binary') = 'log_probs' is not one of 'logits', 'probs'"):
        crossent.focal_loss(torch.zeros(4), torch.ones(4), mode="binary", input_kind="log_probs")


@pytest.mark.parametrize(
    ("counts", "beta", "message"),
    [
        ([10, 0, 3], 0.9, "counts[1] = 0 must be a whole number >= 1"),
        ([10, 2.5], 0.9, "counts[1] = 2.5 must be a whole number >= 1"),
        ([], 0.9, "counts has shape (0,), expected (C,)"),
        (np.ones((2, 2)), 0.9, "counts has shape (2, 2)"),
        ([1, 2], 1.0, "beta = 1.0 is outside [0, 1)"),
        (["a"], 0.9, "counts = ['a'] is not a sequence of numbers"),
    ],
)
def test_class_balanced_weights_rejects_bad_counts_and_beta(
    counts: object, beta: float, message: str
) -> None:
    with _raises(message):
        crossent.class_balanced_weights(counts, beta=beta)  # type: ignore[arg-type]
