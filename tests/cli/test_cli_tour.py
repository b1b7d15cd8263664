"""`crossent tour`: the loss table of one fixed batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
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


def test_tour_rows_not_in_torch_match_their_definitions() -> None:
    rows = {row.option.strip(): row for row in tour_module.tour_rows()}
    logits, target = tour_module.LOGITS.numpy(), tour_module.TARGET.numpy()
    log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # log-softmax
    true_log_q = log_q[np.arange(4), target]
    # off_target smoothing: the target keeps 1 - 0.1, each of the 4 other classes gets 0.1 / 4
    smoothed = np.full((4, 5), 0.1 / 4)
    smoothed[np.arange(4), target] = 0.9
    assert rows["smoothing=off_target"].nats == pytest.approx(
        float(-(smoothed * log_q).sum(axis=1).mean()), rel=1e-12
    )
    # focal loss (Lin et al. 2017): -(1 - q_y)^gamma log q_y with gamma = 2
    focal = -((1 - np.exp(true_log_q)) ** 2) * true_log_q
    assert rows["focal_loss gamma=2"].nats == pytest.approx(float(focal.mean()), rel=1e-12)
    soft = tour_module.SOFT_TARGET.numpy()
    assert rows["entropy of the soft targets"].nats == pytest.approx(
        float(np.mean([scipy.stats.entropy(row) for row in soft])), rel=1e-12
    )


def test_tour_rejects_an_unknown_option_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["tour", "--bogus"])
    assert result.exit_code == 2
    assert "No such option: --bogus" in result.output
