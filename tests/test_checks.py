"""crossent._validation.tensors: the shared validators name argument, value and position."""

from __future__ import annotations

import math
import re

import pytest
import torch

from crossent._validation import tensors as _checks
from crossent.errors import CrossentError


def _raises(message: str):  # type: ignore[no-untyped-def]
    return pytest.raises(CrossentError, match=re.escape(message))


def test_probability_tolerance_is_documented_value_per_dtype() -> None:
    assert _checks.probability_tolerance(torch.float64) == 1e-3
    assert _checks.probability_tolerance(torch.float32) == 1e-3
    assert _checks.probability_tolerance(torch.float16) == 2 * 2**-10
    assert _checks.probability_tolerance(torch.bfloat16) == 2 * 2**-7


def test_check_floating_rejects_integer_and_bool_tensors() -> None:
    _checks.check_floating(torch.zeros(2, dtype=torch.bfloat16), "input")
    with _raises("hidden has dtype torch.bool, expected a floating dtype"):
        _checks.check_floating(torch.zeros(2, dtype=torch.bool), "hidden")


def test_check_finite_names_first_row_and_element() -> None:
    values = torch.zeros(4, 3)
    values[2, 2] = math.inf
    values[3, 0] = math.nan
    with _raises("hidden row 2 is not finite: hidden[2, 2] = inf"):
        _checks.check_finite(values, "hidden")


def test_check_finite_allows_minus_inf_when_asked_and_reports_it() -> None:
    values = torch.zeros(2, 3)
    assert _checks.check_finite(values, "input", allow_neg_inf=True) is False
    values[1, 0] = -math.inf
    assert _checks.check_finite(values, "input", allow_neg_inf=True) is True
    with _raises("input row 1 is not finite: input[1, 0] = -inf"):
        _checks.check_finite(values, "input")


def test_check_finite_does_not_flag_finite_values_whose_sum_overflows() -> None:
    _checks.check_finite(torch.full((4, 2), 3e38), "input")
    _checks.check_finite(torch.full((4, 2), 6e4, dtype=torch.float16), "input")


def test_check_finite_uses_row_dim_for_the_row_number() -> None:
    values = torch.zeros(3, 5)
    values[1, 4] = math.nan
    with _raises("input row 4 is not finite: input[1, 4] = nan"):
        _checks.check_finite(values, "input", row_dim=1)


def test_check_rows_not_all_neg_inf_names_the_dead_row() -> None:
    values = torch.zeros(2, 3, 2)
    values[1, :, 0] = -math.inf
    with _raises("input[1, :, 0] is -inf in every class"):
        _checks.check_rows_not_all_neg_inf(values, "input", class_dim=1)


def test_check_index_target_accepts_ignore_index_and_names_bad_entry() -> None:
    _checks.check_index_target(torch.tensor([0, -100, 2]), 3, -100)
    _checks.check_index_target(torch.tensor([0, 7, 2]), 3, 7)
    with _raises("target[1] = 3 is outside [0, 3) (C = 3)"):
        _checks.check_index_target(torch.tensor([0, 3, -100]), 3, -100)
    with _raises("labels[2] = -100 is outside [0, 3) (C = 3)"):
        _checks.check_index_target(torch.tensor([0, 1, -100]), 3, None, name="labels")
    with _raises("target has dtype torch.float32: class indices must be an integer tensor"):
        _checks.check_index_target(torch.tensor([0.0]), 3, -100)


def test_check_class_weight_checks_shape_dtype_finiteness_and_sign() -> None:
    like = torch.zeros(1, 3)
    _checks.check_class_weight(torch.ones(3), 3, like)
    with _raises("weight has shape (3, 1), expected (3,)"):
        _checks.check_class_weight(torch.ones(3, 1), 3, like)
    with _raises("weight has dtype torch.int64"):
        _checks.check_class_weight(torch.ones(3, dtype=torch.long), 3, like)
    with _raises("weight row 1 is not finite: weight[1] = nan"):
        _checks.check_class_weight(torch.tensor([1.0, math.nan, 1.0]), 3, like)
    with _raises("weight[2] = -3 is negative"):
        _checks.check_class_weight(torch.tensor([1.0, 1.0, -3.0]), 3, like)
    with _raises("weight must be a torch.Tensor, got list"):
        _checks.check_class_weight([1.0, 1.0, 1.0], 3, like)


def test_check_target_shape_classifies_index_and_probability_targets() -> None:
    logits = torch.zeros(4, 3, 2)
    assert _checks.check_target_shape(logits, torch.zeros(4, 2)) == "index"
    assert _checks.check_target_shape(logits, torch.zeros(4, 3, 2)) == "probs"
    with _raises("target has shape (4, 3), but input has shape (4, 3, 2)"):
        _checks.check_target_shape(logits, torch.zeros(4, 3))


def test_check_probabilities_checks_range_and_row_sums() -> None:
    _checks.check_probabilities(torch.tensor([[0.25, 0.75], [1.0, 0.0]]), "probs")
    with _raises("probs[0, 1] = 1.25 is outside [0, 1]"):
        _checks.check_probabilities(torch.tensor([[0.25, 1.25]]), "probs")
    with _raises("probs row 1 sums to 0.9, expected probabilities summing to 1 (tolerance 0.001)"):
        _checks.check_probabilities(torch.tensor([[0.5, 0.5], [0.4, 0.5]]), "probs")
    # bfloat16 rounding is within its wider tolerance
    _checks.check_probabilities(torch.full((1, 3), 1 / 3, dtype=torch.bfloat16), "probs")


def test_scalar_option_checks() -> None:
    assert _checks.check_label_smoothing(0) == 0.0
    with _raises("label_smoothing = True must be a number in [0, 1]"):
        _checks.check_label_smoothing(True)
    with _raises("reduction = 'avg' is not one of 'none', 'sum', 'mean'"):
        _checks.check_reduction("avg")
    assert _checks.check_eps(None, torch.float32) == torch.finfo(torch.float32).eps
    with _raises("eps = 0.7 is outside (0, 0.5)"):
        _checks.check_eps(0.7, torch.float32)
    with _raises("gamma = inf must be a finite number >= 0"):
        _checks.check_nonnegative_number(math.inf, "gamma")


def test_check_not_nan_allows_infinities() -> None:
    _checks.check_not_nan(torch.tensor([math.inf, -math.inf, 0.0]), "input")
    with _raises("input row 1 is not finite: input[1, 0] = nan"):
        _checks.check_not_nan(torch.tensor([[0.0], [math.nan]]), "input")


def test_check_same_device_names_both_devices() -> None:
    meta = torch.zeros(2, device="meta")
    with _raises("weight is on meta, but input is on cpu"):
        _checks.check_same_device(meta, "weight", torch.zeros(2))
