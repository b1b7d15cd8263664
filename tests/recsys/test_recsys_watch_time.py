"""Watch-time-weighted ranking (Covington et al. 2016) against what it must converge to.

Weighted logistic regression with positives weighted by their watch time ``T`` and negatives
by 1 has, per feature value ``x``, the optimum ``odds(x) = E[T 1{watched} | x] / P(not watched
| x)``. The simulator knows ``P(watched)`` for every impression and logs ``T``, so
``T / (1 - p)`` is an unbiased per-impression estimate of that target: the model's odds are
compared with it in total and per decile of the prediction.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.recsys.pipeline import run_simulated
from crossent.recsys.ranking import split_rows
from crossent.recsys.simulate import SimulationConfig
from crossent.recsys.train import TrainConfig


@pytest.mark.slow
def test_watch_time_model_odds_estimate_expected_watch_time():
    config = SimulationConfig(
        n_users=2000, n_videos=500, max_watches=40, impressions_per_user=20, seed=0
    )
    result, log = run_simulated(
        config,
        train_config=TrainConfig(epochs=10, lr=0.03, batch_size=1024, patience=1),
        ranking_config=TrainConfig(epochs=10, lr=1e-2, batch_size=1024, patience=1),
        ranking_loss="watch-time",
        progress=False,
    )
    probs, label, true_prob = result.ranking_test
    _, _, test_rows = split_rows(len(log.impressions), seed=config.seed)
    assert np.array_equal(label, log.impressions.watched[test_rows])
    odds = probs / (1 - probs)
    target = log.impressions.watch_time[test_rows] / (1 - true_prob)
    assert odds.sum() / target.sum() == pytest.approx(1.0, abs=0.12)
    deciles = np.array_split(np.argsort(odds), 10)
    predicted = np.array([odds[rows].mean() for rows in deciles])
    observed = np.array([target[rows].mean() for rows in deciles])
    # the ordering carries over: the top decile's observed odds are several times the bottom's
    assert observed[-1] > 5 * observed[0]
    assert np.corrcoef(predicted, observed)[0, 1] > 0.95
    assert np.abs(np.log(predicted / observed)).max() < np.log(1.5)
