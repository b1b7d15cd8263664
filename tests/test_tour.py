"""`crossent tour`: the loss table of one fixed batch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from crossent.cli import _tour_rows as tour_module
from crossent.cli import app


def test_tour_prints_every_option_in_nats_and_bits() -> None:
    result = CliRunner().invoke(app, ["tour"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for option in ("cross_entropy", "label_smoothing=0.1", "off_target", "weight", "ignore_index",
                   "soft targets", "focal_loss gamma=2", "binary_cross_entropy", "nats", "bits"):
        assert option in result.output


def test_tour_numbers_agree_with_torch_and_bits_are_nats_over_ln_2() -> None:
    rows = {row.option.strip(): row for row in tour_module.tour_rows()}
    logits, target = tour_module.LOGITS, tour_module.TARGET
    expected = {
        "uniform guess": math.log(5),
        "cross_entropy": F.cross_entropy(logits, target),
        "label_smoothing=0.1": F.cross_entropy(logits, target, label_smoothing=0.1),
        "weight (fox x3)": F.cross_entropy(logits, target, weight=tour_module.CLASS_WEIGHT),
        "ignore_index (row 2)": F.cross_entropy(logits[[0, 1, 3]], target[[0, 1, 3]]),
        "soft targets": F.cross_entropy(logits, tour_module.SOFT_TARGET),
        "binary_cross_entropy": F.binary_cross_entropy_with_logits(
            logits, F.one_hot(target, 5).double()
        ),
    }
    for option, value in expected.items():
        assert rows[option].nats == pytest.approx(float(value), rel=1e-12)
        assert rows[option].bits == pytest.approx(float(value) / math.log(2), rel=1e-12)
    # the soft-target cross-entropy sits above the target's entropy (Gibbs' inequality)
    assert rows["soft targets"].nats > rows["entropy of the soft targets"].nats
    # focal down-weights every term: below plain cross-entropy
    assert 0 < rows["focal_loss gamma=2"].nats < rows["cross_entropy"].nats
    assert torch.is_tensor(logits)
