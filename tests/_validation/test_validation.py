"""crossent._validation: every rule accepts and rejects at its boundary, names the value and
its position, and says the same thing for a NumPy array as for a torch tensor."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from crossent._validation import arrays, masks, rules, tensors
from crossent._validation.choices import (
    BinaryInputKind,
    InputKind,
    Reduction,
    Smoothing,
    check_choice,
    choices_of,
)
from crossent._validation.numbers import check_bool, check_int, check_number
from crossent._validation.offender import format_position, format_value, slice_label
from crossent.errors import CrossentError

# the same data as a NumPy array and as a torch tensor: every value rule must treat both alike
AS_ARRAY: list[Callable[[Any], Any]] = [
    lambda values: np.asarray(values, dtype=np.float64),
    lambda values: torch.tensor(values, dtype=torch.float64),
]
KINDS = pytest.mark.parametrize("as_array", AS_ARRAY, ids=["numpy", "torch"])


def _raises(message: str):  # type: ignore[no-untyped-def]
    return pytest.raises(CrossentError, match=re.escape(message))


# choices ------------------------------------------------------------------------------------


def test_choices_come_from_the_literal_types() -> None:
    assert choices_of(Reduction) == ("none", "sum", "mean")
    assert choices_of(Smoothing) == ("uniform", "off_target")
    for value in choices_of(InputKind):
        assert check_choice(value, "input_kind", InputKind) == value
    with _raises("reduction = 'avg' is not one of 'none', 'sum', 'mean'"):
        check_choice("avg", "reduction", Reduction)
    with _raises("input_kind = 'log_probs' is not one of 'logits', 'probs'"):
        check_choice("log_probs", "input_kind", BinaryInputKind)
    with _raises("smoothing = None is not one of"):
        check_choice(None, "smoothing", Smoothing)


def test_every_module_uses_the_one_declaration_of_each_vocabulary() -> None:
    from crossent.distributed import sharded
    from crossent.kernels import linear, reference, rules
    from crossent.metrics import probabilistic, ranking

    for module in (reference, rules, linear, sharded, ranking, probabilistic):
        assert module.Reduction is Reduction, module.__name__
    for module in (reference, rules, linear, sharded):
        assert module.Smoothing is Smoothing, module.__name__
    assert reference.InputKind is InputKind


# numbers ------------------------------------------------------------------------------------


def test_check_int_accepts_the_bound_and_rejects_one_below() -> None:
    assert check_int(1, "k", low=1) == 1
    assert check_int(np.int64(3), "k", low=1) == 3
    with _raises("k = 0 must be an integer >= 1"):
        check_int(0, "k", low=1)
    with _raises("shard_offset = -1 must be an integer >= 0"):
        check_int(-1, "shard_offset", low=0)
    with _raises("chunk_size = 0 must be an integer >= 1 or None"):
        check_int(0, "chunk_size", low=1, none_ok=True)
    with _raises("ignore_index = 0.5 must be an integer"):
        check_int(0.5, "ignore_index")
    assert check_int(4, "bins", low=1, high=4) == 4
    with _raises("bins = 5 must be an integer in [1, 4]"):
        check_int(5, "bins", low=1, high=4)


@pytest.mark.parametrize("value", [True, 2.0, "3", None])
def test_check_int_rejects_booleans_floats_and_text(value: object) -> None:
    with _raises(f"n = {value!r} must be an integer >= 1"):
        check_int(value, "n", low=1)


def test_check_number_closed_and_open_bounds() -> None:
    assert check_number(0, "label_smoothing", low=0.0, high=1.0) == 0.0
    assert check_number(1.0, "label_smoothing", low=0.0, high=1.0) == 1.0
    with _raises("label_smoothing = 1.0001 is outside [0, 1]"):
        check_number(1.0001, "label_smoothing", low=0.0, high=1.0)
    with _raises("label_smoothing = nan is outside [0, 1]"):
        check_number(math.nan, "label_smoothing", low=0.0, high=1.0)
    with _raises("label_smoothing = True must be a number in [0, 1]"):
        check_number(True, "label_smoothing", low=0.0, high=1.0)
    assert check_number(0.999, "beta", low=0.0, high=1.0, high_open=True) == 0.999
    with _raises("beta = 1 is outside [0, 1)"):
        check_number(1, "beta", low=0.0, high=1.0, high_open=True)
    with _raises("eps = 0 is outside (0, 0.5)"):
        check_number(0, "eps", low=0.0, high=0.5, low_open=True, high_open=True)
    with _raises("eps = 'x' must be a number in (0, 0.5) or None"):
        check_number("x", "eps", low=0.0, high=0.5, low_open=True, high_open=True, none_ok=True)


def test_check_number_with_one_bound_wants_a_finite_number() -> None:
    assert check_number(0, "gamma", low=0.0) == 0.0
    assert check_number(np.float32(2.5), "gamma", low=0.0) == 2.5
    with _raises("gamma = -1 must be a finite number >= 0"):
        check_number(-1, "gamma", low=0.0)
    with _raises("gamma = inf must be a finite number >= 0"):
        check_number(math.inf, "gamma", low=0.0)
    assert check_number(1e-9, "temperature", low=0.0, low_open=True) == 1e-9
    with _raises("temperature = 0.0 must be a finite number > 0"):
        check_number(0.0, "temperature", low=0.0, low_open=True)


def test_check_bool() -> None:
    assert check_bool(False, "inplace") is False
    with _raises("inplace = 1 must be True or False"):
        check_bool(1, "inplace")


# the first offender -------------------------------------------------------------------------


def test_offender_wording() -> None:
    assert format_position("input", (3, 1)) == "input[3, 1]"
    assert format_position("x", ()) == "x"
    assert [format_value(v) for v in (1.5, -3.0, math.nan, -math.inf, 1 / 3)] == [
        "1.5", "-3", "nan", "-inf", "0.333333"
    ]
    assert slice_label("input", (3,), 1, 2) == "input row 3"
    assert slice_label("input", (3, 2), 1, 3) == "input[3, :, 2]"


# masks --------------------------------------------------------------------------------------


def test_masks_agree_between_numpy_and_torch() -> None:
    values = [[0.0, -0.5, math.nan], [1.0, math.inf, -math.inf], [0.25, 1.5, 1e-300]]
    numpy_values, torch_values = (convert(values) for convert in AS_ARRAY)
    for mask in (masks.not_finite, masks.nan, masks.nan_or_pos_inf,
                 masks.outside_unit_interval, masks.negative):
        np.testing.assert_array_equal(mask(numpy_values), mask(torch_values).numpy(),
                                      err_msg=mask.__name__)
    np.testing.assert_array_equal(
        masks.not_finite(numpy_values),
        [[False, False, True], [False, True, True], [False, False, False]],
    )
    np.testing.assert_array_equal(  # NaN is not in [0, 1]; -inf and 1.5 neither
        masks.outside_unit_interval(numpy_values),
        [[False, True, True], [False, True, True], [False, True, False]],
    )
    assert masks.first_true(masks.not_finite(numpy_values)) == (0, 2)
    assert masks.first_true(masks.not_finite(torch_values)) == (0, 2)


def test_sum_tolerance_is_one_formula_for_numpy_and_torch_dtypes() -> None:
    assert masks.sum_tolerance(np.dtype(np.float64)) == 1e-3
    assert masks.sum_tolerance(np.dtype(np.float32)) == 1e-3
    assert masks.sum_tolerance(torch.float32) == 1e-3
    assert masks.sum_tolerance(np.dtype(np.float16)) == 2 * 2**-10
    assert masks.sum_tolerance(torch.float16) == 2 * 2**-10
    assert masks.sum_tolerance(torch.bfloat16) == 2 * 2**-7


@KINDS
def test_off_simplex_on_both_sides_of_the_tolerance(as_array: Callable[[Any], Any]) -> None:
    inside = as_array([[0.5, 0.5 + 0.9e-3], [0.5, 0.5 - 0.9e-3], [1.0, 0.0]])
    outside = as_array([[0.5, 0.5 + 1.1e-3], [0.5, 0.5 - 1.1e-3], [0.3, 0.3]])
    assert not bool(masks.off_simplex(inside, axis=1).any())
    assert [bool(off) for off in masks.off_simplex(outside, axis=1)] == [True, True, True]


# rules: the same message for NumPy and torch ------------------------------------------------


@KINDS
def test_check_finite_names_first_row_and_element(as_array: Callable[[Any], Any]) -> None:
    values = as_array([[0.0] * 3, [0.0] * 3, [0.0, 0.0, math.inf], [math.nan, 0.0, 0.0]])
    with _raises("hidden row 2 is not finite: hidden[2, 2] = inf"):
        rules.check_finite(values, "hidden")
    with _raises("hidden row 1 is not finite: hidden[2, 1] = inf"):
        rules.check_finite(as_array([[0.0] * 3] * 2 + [[0.0, math.inf, 0.0]]), "hidden",
                           row_dim=1)
    assert rules.check_finite(as_array([[0.0, 1.0]]), "input") is False


@KINDS
def test_check_finite_allows_minus_inf_when_asked_and_reports_it(
    as_array: Callable[[Any], Any],
) -> None:
    values = as_array([[0.0, 0.0], [-math.inf, 0.0]])
    assert rules.check_finite(values, "input", allow_neg_inf=True) is True
    with _raises("input row 1 is not finite: input[1, 0] = -inf"):
        rules.check_finite(values, "input")
    with _raises("input row 0 is not finite: input[0, 1] = inf (-inf is allowed"):
        rules.check_finite(as_array([[-math.inf, math.inf]]), "input", allow_neg_inf=True)


def test_check_finite_does_not_flag_finite_values_whose_sum_overflows() -> None:
    rules.check_finite(torch.full((4, 2), 3e38), "input")
    rules.check_finite(torch.full((4, 2), 6e4, dtype=torch.float16), "input")
    rules.check_finite(np.full((4, 2), 3e38, dtype=np.float32), "input")


@KINDS
def test_check_not_nan_allows_infinities(as_array: Callable[[Any], Any]) -> None:
    rules.check_not_nan(as_array([math.inf, -math.inf, 0.0]), "input")
    with _raises("input row 1 is not finite: input[1, 0] = nan"):
        rules.check_not_nan(as_array([[0.0], [math.nan]]), "input")


@KINDS
def test_check_unit_interval_boundaries(as_array: Callable[[Any], Any]) -> None:
    rules.check_unit_interval(as_array([0.0, 1.0, 0.5]), "probs")
    with _raises("probs[0, 1] = 1.25 is outside [0, 1]; expected"):
        rules.check_unit_interval(as_array([[0.25, 1.25]]), "probs", hint="; expected")
    with _raises("probs[2] = -1e-12 is outside [0, 1]"):
        rules.check_unit_interval(as_array([0.0, 1.0, -1e-12]), "probs")
    with _raises("probs row 0 is not finite: probs[0] = nan"):
        rules.check_unit_interval(as_array([math.nan]), "probs")


@KINDS
def test_check_nonnegative_boundaries(as_array: Callable[[Any], Any]) -> None:
    rules.check_nonnegative(as_array([0.0, 3.0]), "weight")
    with _raises("weight[2] = -3 is negative; class weights must be >= 0"):
        rules.check_nonnegative(as_array([1.0, 0.0, -3.0]), "weight",
                                hint="; class weights must be >= 0")


@KINDS
def test_check_probabilities_checks_range_and_row_sums(as_array: Callable[[Any], Any]) -> None:
    rules.check_probabilities(as_array([[0.25, 0.75], [1.0, 0.0]]), "probs")
    rules.check_probabilities(as_array([[0.5, 0.5009]]), "probs")
    with _raises("probs row 0 sums to 1.0011, expected probabilities summing to 1 "
                 "(tolerance 0.001)"):
        rules.check_probabilities(as_array([[0.5, 0.5011]]), "probs")
    with _raises("probs row 1 sums to 0.9, expected probabilities summing to 1"):
        rules.check_probabilities(as_array([[0.5, 0.5], [0.4, 0.5]]), "probs")
    with _raises("probs[1, :, 0] sums to 0.5"):
        rules.check_probabilities(as_array([[[1.0], [0.0]], [[0.25], [0.25]]]), "probs")


def test_check_probabilities_bfloat16_rounding_is_within_its_wider_tolerance() -> None:
    rules.check_probabilities(torch.full((1, 3), 1 / 3, dtype=torch.bfloat16), "probs")


@KINDS
def test_check_rows_not_all_neg_inf_names_the_dead_row(as_array: Callable[[Any], Any]) -> None:
    values = as_array([[[0.0, 0.0]] * 3, [[-math.inf, 0.0]] * 3])  # (2, 3, 2)
    with _raises("input[1, :, 0] is -inf in every class"):
        rules.check_rows_not_all_neg_inf(values, "input", class_dim=1)
    with _raises("input row 1 is -inf in every class"):
        rules.check_rows_not_all_neg_inf(as_array([[0.0, -math.inf], [-math.inf] * 2]), "input")


# torch-only rules ---------------------------------------------------------------------------


def test_check_floating_rejects_integer_and_bool_tensors() -> None:
    tensors.check_floating(torch.zeros(2, dtype=torch.bfloat16), "input")
    with _raises("hidden has dtype torch.bool, expected a floating dtype"):
        tensors.check_floating(torch.zeros(2, dtype=torch.bool), "hidden")
    with _raises("weight must be a torch.Tensor, got list"):
        tensors.check_floating([1.0], "weight")  # type: ignore[arg-type]


def test_check_index_target_accepts_ignore_index_and_names_bad_entry() -> None:
    tensors.check_index_target(torch.tensor([0, -100, 2]), 3, -100)
    tensors.check_index_target(torch.tensor([0, 7, 2]), 3, 7)
    with _raises("target[1] = 3 is outside [0, 3) (C = 3)"):
        tensors.check_index_target(torch.tensor([0, 3, -100]), 3, -100)
    with _raises("labels[2] = -100 is outside [0, 3) (C = 3)"):
        tensors.check_index_target(torch.tensor([0, 1, -100]), 3, None, name="labels")
    with _raises("target has dtype torch.float32: class indices must be an integer tensor"):
        tensors.check_index_target(torch.tensor([0.0]), 3, -100)


def test_check_class_weight_checks_shape_dtype_and_with_validate_the_values() -> None:
    like = torch.zeros(1, 3)
    tensors.check_class_weight(torch.ones(3), 3, like)
    with _raises("weight has shape (3, 1), expected (3,)"):
        tensors.check_class_weight(torch.ones(3, 1), 3, like)
    with _raises("weight has dtype torch.int64"):
        tensors.check_class_weight(torch.ones(3, dtype=torch.long), 3, like)
    with _raises("weight row 1 is not finite: weight[1] = nan"):
        tensors.check_class_weight(torch.tensor([1.0, math.nan, 1.0]), 3, like)
    with _raises("weight[2] = -3 is negative; class weights must be >= 0"):
        tensors.check_class_weight(torch.tensor([1.0, 1.0, -3.0]), 3, like)
    tensors.check_class_weight(torch.tensor([1.0, 1.0, -3.0]), 3, like, validate=False)


def test_check_target_shape_classifies_index_and_probability_targets() -> None:
    logits = torch.zeros(4, 3, 2)
    assert tensors.check_target_shape(logits, torch.zeros(4, 2)) == "index"
    assert tensors.check_target_shape(logits, torch.zeros(4, 3, 2)) == "probs"
    with _raises("target has shape (4, 3), but input has shape (4, 3, 2)"):
        tensors.check_target_shape(logits, torch.zeros(4, 3))


def test_check_eps_and_log_probabilities_and_device() -> None:
    assert tensors.check_eps(None, torch.float32) == torch.finfo(torch.float32).eps
    with _raises("eps = 0.7 is outside (0, 0.5)"):
        tensors.check_eps(0.7, torch.float32)
    assert tensors.check_log_probabilities(torch.tensor([[0.0, -math.inf]]), "input") is True
    tensors.check_log_probabilities(torch.tensor([[1e-4, -1.0]]), "input")
    with _raises("input[0, 0] = 0.0002 is positive, so it is not a log-probability"):
        tensors.check_log_probabilities(torch.tensor([[2e-4, -1.0]]), "input")
    with _raises("weight is on meta, but input is on cpu"):
        tensors.check_same_device(torch.zeros(2, device="meta"), "weight", torch.zeros(2))


# NumPy-only rules ---------------------------------------------------------------------------


def test_metrics_warn_on_rows_off_the_simplex_with_the_loss_tolerance() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arrays.probabilities([[0.5, 0.5009]], "probs")  # inside: the losses accept it too
    with pytest.warns(UserWarning, match=re.escape("probs row 0 sums to 1.0011, expected")):
        arrays.probabilities([[0.5, 0.5011]], "probs")
    with _raises("probs row 0 sums to 1.0011"):
        rules.check_probabilities(torch.tensor([[0.5, 0.5011]], dtype=torch.float64), "probs")


def test_array_rules_name_value_and_position() -> None:
    with _raises("probs[1, 0] = 1.5 is outside [0, 1]; expected probabilities"):
        arrays.probabilities([[0.5, 0.5], [1.5, 0.0]], "probs")
    with _raises("sample_weight[1] = -1 is negative"):
        arrays.sample_weight([1.0, -1.0], 2)
    with _raises("target[1] = 2.5 is not an integer class label"):
        arrays.class_indices(np.array([1.0, 2.5]), 3)
    with _raises("target has 2 rows but probs has 3"):
        arrays.check_length(np.zeros(2), "target", 3, "probs")


# the sharded checks reuse the same rules ----------------------------------------------------


def test_sharded_option_checks_return_the_single_process_messages() -> None:
    from crossent.distributed._checks import check_options

    assert check_options(-100, 0.1, "uniform", "mean", None) is None
    with pytest.raises(CrossentError) as single:
        check_choice("avg", "reduction", Reduction)
    assert check_options(-100, 0.1, "uniform", "avg", None) == str(single.value)
    assert check_options(-100, 0.1, "uniform", "mean", 0) == (
        "chunk_size = 0 must be an integer >= 1 or None"
    )
