"""Focal and watch-time ranking against the simulator's truth.

* Watch time (Covington et al. 2016): weighted logistic regression with positives weighted by
  their watch time ``T`` and negatives by 1 has, per feature value ``x``, the optimum
  ``odds(x) = E[T 1{watched} | x] / P(not watched | x)``. The simulator draws
  ``T = M exp(a)`` for a watch, with ``M`` exponential of mean 4 and ``a`` the impression's
  taste affinity, so that optimum is known exactly per impression:
  ``p / (1 - p) * 4 exp(a)``. The model's odds are compared with it in total and per decile.
  (The logged ``T / (1 - p)`` is an unbiased but noisy estimate of the same target: per decile
  its standard error is ~30% of the mean, too noisy for a per-decile bound; the test checks
  it is unbiased, within 5 of its exact standard errors.)
* Focal loss pulls probabilities towards 1/2 by design; after Platt scaling on validation its
  P(watch) must be close to the truth's log loss (scikit-learn's ``log_loss`` of the true
  probabilities, the best any model can do in expectation).

Every bound is set from the spread over 20 seeds (``scripts/noise/sweep.py ranking-losses``,
docs/TESTING.md); the tests run seed 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss

from crossent.recsys.data.simulate import SimulatedWatchLog, SimulationConfig, simulate
from crossent.recsys.models.ranking_inputs import split_rows
from crossent.recsys.ranking_stage import train_simulated_ranking
from crossent.recsys.retrieval import train_retrieval
from crossent.recsys.spec import ModelSpec
from crossent.recsys.training.loop import TrainConfig

SEED = 0
#: pinned, not crossent train's defaults: the bounds below were measured with this model
#: the candidate generator whose features the ranking trains on; its encoder is the one the
#: bounds below were measured with (docs/TESTING.md), not the default's
RETRIEVAL_MODEL = ModelSpec(
    dim=64, history=50, blocks=2, dropout=0.2, tie_embeddings=False, block="pre-norm",
    item_bias=True,
)
#: the simulator's mean of M in T = M exp(a) (an exponential draw, see module docstring)
MEAN_MINUTES = 4.0


def _ranking(seed: int) -> TrainConfig:
    return TrainConfig(epochs=10, lr=1e-2, batch_size=1024, patience=1, seed=seed)


def retrieval_stage(seed: int):
    """The simulated world and its trained retrieval stage, on which the ranking trains."""
    config = SimulationConfig(
        n_users=2000, n_videos=500, max_watches=40, impressions_per_user=20, seed=seed
    )
    log = simulate(config)
    result = train_retrieval(
        log.interactions,
        # 421 real targets: 20 windows of this world's 21 on average, as the bounds were measured
        train_config=TrainConfig(epochs=10, lr=0.03, batch_size=421, patience=1, seed=seed),
        model=RETRIEVAL_MODEL,
        baselines=False,
        progress=False,
    )
    return result, log


@pytest.fixture(scope="module")
def retrieval():
    return retrieval_stage(SEED)


def _expected_watch_time(log: SimulatedWatchLog, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """E[T 1{watched}] and Var[T 1{watched}] per impression, from the simulator's formula.

    The affinity ``a`` is solved from the documented watch logit
    ``c0 + c1 a + c2 (b_j - mean b) - c3 n_previous - c4 log(1 + slot)``.
    """
    imp, (c0, c1, c2, c3, c4) = log.impressions, log.config.impression_coef
    bias = log.popularity_logit.double().numpy()
    prob = imp.true_prob[rows]
    logit = np.log(prob / (1 - prob))
    affinity = (
        logit - c0 - c2 * (bias[imp.item[rows]] - bias.mean())
        + c3 * imp.n_previous[rows] + c4 * np.log1p(imp.slot[rows])
    ) / c1
    scale = MEAN_MINUTES * np.exp(affinity)
    mean = prob * scale
    variance = prob * 2 * scale**2 - mean**2  # E[M^2] = 2 E[M]^2 for an exponential M
    return mean, variance


def measure_watch_time(result, log) -> dict[str, float]:
    result = train_simulated_ranking(
        result, log, loss="watch-time", train_config=_ranking(log.config.seed), progress=False
    )
    probs, label, true_prob = result.ranking_test
    _, _, test_rows = split_rows(len(log.impressions), seed=log.config.seed)
    assert np.array_equal(label, log.impressions.watched[test_rows])
    odds = probs / (1 - probs)
    mean, variance = _expected_watch_time(log, test_rows)
    expected = mean / (1 - true_prob)
    logged = log.impressions.watch_time[test_rows] / (1 - true_prob)
    deciles = np.array_split(np.argsort(odds), 10)
    predicted = np.array([odds[rows].mean() for rows in deciles])
    exact = np.array([expected[rows].mean() for rows in deciles])
    observed = np.array([logged[rows].mean() for rows in deciles])
    standard_error = np.array(
        [np.sqrt((variance[rows] / (1 - true_prob[rows]) ** 2).sum()) / len(rows)
         for rows in deciles]
    )
    return {
        "total odds / exact": odds.sum() / expected.sum(),
        "max |log(decile odds / exact)|": float(np.abs(np.log(predicted / exact)).max()),
        "corr(decile odds, exact)": float(np.corrcoef(predicted, exact)[0, 1]),
        "top / bottom decile exact": exact[-1] / exact[0],
        "max |logged - exact| / se per decile": float(
            np.abs((observed - exact) / standard_error).max()
        ),
        # the old question, kept for the sweep's record: not asserted (12 of 20 seeds fail it)
        "max |log(decile odds / logged)|": float(np.abs(np.log(predicted / observed)).max()),
    }


@pytest.mark.slow
@pytest.mark.statistical
def test_watch_time_model_odds_estimate_expected_watch_time(retrieval):
    result, log = retrieval
    values = measure_watch_time(result, log)
    # 20 seeds (docs/TESTING.md): 0.966 +- 0.063 (0.81 - 1.07); the trained level moves with
    # the seed by ~6%, the per-decile odds by ~9% more: bounds 4 std out. A model trained
    # without the watch-time weights sits near 1 / E[4 exp(a)], about 0.25 of the target.
    assert values["total odds / exact"] == pytest.approx(1.0, abs=0.3)
    # the ordering carries over: the top decile's expected odds are several times the bottom's
    assert values["top / bottom decile exact"] > 5  # 10.9 +- 0.8
    assert values["corr(decile odds, exact)"] > 0.95  # 0.996 +- 0.004
    assert values["max |log(decile odds / exact)|"] < np.log(1.8)  # 0.22 +- 0.09 (max 0.46)
    # the logged watch times agree with the formula: each decile within 5 standard errors
    assert values["max |logged - exact| / se per decile"] < 5.0


def measure_focal(result, log) -> dict[str, float]:
    result = train_simulated_ranking(
        result, log, loss="focal", train_config=_ranking(log.config.seed), progress=False
    )
    probs, label, true_prob = result.ranking_test
    assert result.info["ranking_calibration"].startswith("Platt scaling")
    raw = result.ranking_test_uncalibrated
    assert raw is not None
    truth = log_loss(label, true_prob)
    # Platt's intercept makes the mean prediction the validation watch rate; the test rate
    # differs from it by two binomial draws: its standard error over both sets
    _, valid_rows, test_rows = split_rows(len(log.impressions), seed=log.config.seed)
    rate = label.mean()
    standard_error = np.sqrt(rate * (1 - rate) * (1 / len(valid_rows) + 1 / len(test_rows)))
    return {
        "|raw mean - watch rate|": abs(raw.mean() - label.mean()),
        "raw log loss / truth": log_loss(label, raw) / truth,
        # kept for the record in the sweep: not asserted (it is 2.7 standard errors)
        "|calibrated mean - watch rate|": abs(probs.mean() - label.mean()),
        "|calibrated mean - watch rate| / se": abs(probs.mean() - rate) / standard_error,
        "calibrated log loss / truth": log_loss(label, probs) / truth,
    }


@pytest.mark.slow
@pytest.mark.statistical
def test_focal_ranking_is_platt_scaled_to_near_the_truths_log_loss(retrieval):
    values = measure_focal(*retrieval)
    # focal's raw probabilities sit far from P(watch) (mean ~0.32 for a watch rate ~0.13)
    assert values["|raw mean - watch rate|"] > 0.1  # 20 seeds: 0.186 +- 0.010
    assert values["raw log loss / truth"] > 1.15  # 1.32 +- 0.025
    # a 0.02 bound on the difference itself was 2.7 standard errors: 1 seed in 20 failed it
    assert values["|calibrated mean - watch rate| / se"] < 5.0
    assert values["calibrated log loss / truth"] < 1.06  # 1.029 +- 0.0065
