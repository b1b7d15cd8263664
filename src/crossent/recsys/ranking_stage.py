"""The ranking stage: P(watch | user, video) trained on candidates' features, calibrated and
scored beside honest baselines.

On the simulated log (:func:`train_simulated_ranking`) the impressions and their labels come
from the simulator; on a real watch log (:func:`train_logged_ranking`) the positives are the
time-ordered watches and the negatives are sampled (:mod:`crossent.recsys.models.logged_ranking`).
Either way the model is fitted by :func:`~crossent.recsys.training.ranking.fit_ranking`,
Platt-scaled
on the validation examples (:func:`~crossent.recsys.training.ranking.calibrate_ranking`) and
scored on the test examples beside the base rate and popularity.
"""

from __future__ import annotations

import numpy as np
import torch

from crossent._validation.choices import RankingLoss
from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.recsys.data.simulate import SimulatedWatchLog
from crossent.recsys.events import Listener, note
from crossent.recsys.models.logged_ranking import (
    LoggedExamples,
    holdout_rows,
    holdout_split,
    logged_examples,
    logged_ranking_inputs,
)
from crossent.recsys.models.networks import CandidateModel
from crossent.recsys.models.ranker import RankingConfig, RankingModel
from crossent.recsys.models.ranking_inputs import (
    DENSE_FEATURES,
    RankingInputs,
    evaluate_ranking,
    ranking_inputs,
    split_rows,
)
from crossent.recsys.results import RunResult
from crossent.recsys.training.loop import TrainConfig, fit_candidate
from crossent.recsys.training.ranking import calibrate_ranking, fit_ranking


def train_simulated_ranking(
    result: RunResult,
    log: SimulatedWatchLog,
    *,
    loss: RankingLoss = "bce",
    train_config: TrainConfig | None = None,
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """Ranking stage on the simulator's impressions (80/10/10 split), beside the truth."""
    impressions = log.impressions
    if len(impressions) == 0:
        raise CrossentError("the simulation has no impressions (impressions_per_user = 0)")
    inputs = ranking_inputs(
        result.candidate,
        log.interactions,
        result.split.train,
        impressions.user,
        impressions.item,
        impressions.watched,
        times_shown=impressions.n_previous,
        slot=impressions.slot,
        watch_time=impressions.watch_time,
        true_prob=impressions.true_prob,
    )
    train_rows, valid_rows, test_rows = split_rows(len(inputs), seed=log.config.seed)
    # impressions are split at random: training rows are distributed like test rows, so a
    # BCE model has no shift to correct, and a calibration fitted on validation only adds its
    # noise (demo: +0.0007 bits of test log loss). Focal loss is different: it pulls P(watch)
    # towards 1/2 by design (demo: mean prediction 0.30 for a watch rate of 0.13), so its
    # probabilities are Platt-scaled on validation before anyone reads them as P(watch).
    return _fit_and_evaluate_ranking(
        result,
        inputs,
        train_rows,
        valid_rows,
        test_rows,
        calibrate=loss == "focal",
        loss=loss,
        train_config=train_config,
        progress=progress,
        listener=listener,
    )


def _fit_and_evaluate_ranking(
    result: RunResult,
    inputs: RankingInputs,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    test_rows: np.ndarray,
    *,
    calibrate: bool,
    loss: RankingLoss,
    train_config: TrainConfig | None,
    progress: bool,
    listener: Listener | None,
) -> RunResult:
    """Fit the ranking model, optionally Platt-scale it on the validation rows, score the test."""
    train, valid, test = inputs.take(train_rows), inputs.take(valid_rows), inputs.take(test_rows)
    note(
        listener, "ranking", f"{len(train):,} training examples, "
        f"watch rate {float(train.label.mean()):.3f}, loss = {loss}",
    )
    model = RankingModel(
        RankingConfig(dim=result.candidate.config.dim, n_dense=len(DENSE_FEATURES), loss=loss)
    )
    curves = fit_ranking(model, train, valid, train_config, progress=progress, listener=listener)
    calibration = _calibrate(model, valid, listener) if calibrate else "identity (not requested)"
    base_rate = float(train.label.mean())
    result = _score_ranking(result, model, test).adding(
        curves={"ranking": curves},
        info={"ranking_calibration": calibration},
        ranking_metrics={
            "watch rate (constant)": evaluate_ranking(
                np.full(len(test), base_rate), test.label.numpy()
            )
        },
    )
    return result


def _calibrate(model: RankingModel, valid: RankingInputs, listener: Listener | None) -> str:
    """Platt-scale ``model`` on the validation examples; returns what was done, in words.

    Stays the identity for "watch-time" (its odds estimate watch time, not P(watch)) and when
    no calibration can be fitted (:func:`~crossent.recsys.training.ranking.calibrate_ranking`
    raises:
    the validation examples hold a single class, or the fit's scale is not positive).
    """
    if model.config.loss == "watch-time":
        return "identity (watch-time odds are not P(watch))"
    try:
        scale, shift = calibrate_ranking(model, valid)
    except CrossentError as error:
        done = f"identity ({error})"
        note(listener, "ranking calibration", done)
        return done
    done = f"Platt scaling on {len(valid):,} validation examples: {scale:.4g} z + {shift:.4g}"
    note(listener, "ranking calibration", done)
    return done


def _score_ranking(result: RunResult, model: RankingModel, test: RankingInputs) -> RunResult:
    """``result`` with ``model`` as its ranker and its test metrics; "model, uncalibrated"
    beside them when the model is calibrated."""
    with torch.no_grad():
        raw_logits = model.uncalibrated_logits(test.user, test.item, test.dense).double()
    scale, shift = float(model.calibration_scale), float(model.calibration_shift)
    # the calibrated logit in float64, as platt_scaling fitted it
    probs = torch.sigmoid(scale * raw_logits + shift).numpy()
    label = test.label.numpy()
    metrics = {"model": evaluate_ranking(probs, label, true_prob=test.true_prob)}
    raw_probs = None
    if (scale, shift) != (1.0, 0.0):
        raw_probs = torch.sigmoid(raw_logits).numpy()
        metrics["model, uncalibrated"] = evaluate_ranking(
            raw_probs, label, true_prob=test.true_prob
        )
    return result.replacing(
        ranking=model, ranking_test=(probs, label, test.true_prob),
        ranking_test_uncalibrated=raw_probs,
    ).adding(ranking_metrics=metrics)


def train_logged_ranking(
    result: RunResult,
    *,
    negatives: int = 4,
    seed: int = 0,
    holdout: int = 5,
    loss: RankingLoss = "bce",
    train_config: TrainConfig | None = None,
    candidate_train_config: TrainConfig | None = None,
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """Ranking stage on a real watch log: time-ordered positives + sampled negatives.

    Examples come from :func:`crossent.recsys.models.logged_ranking.logged_examples` (leave-last-out
    stages, features from strictly earlier watches). With ``holdout > 0`` the features come
    from a second candidate generator (``result.ranking_candidate``, trained with
    ``candidate_train_config``) that never saw each user's last ``holdout`` training watches,
    and the ranker trains on the examples at those positions only, so that its training
    features are as sharp as the validation and test ones (see
    :mod:`crossent.recsys.models.logged_ranking`); ``holdout = 0`` trains on every training example
    with ``result.candidate``'s features. The model is then Platt-scaled on the validation
    examples (:func:`~crossent.recsys.training.ranking.calibrate_ranking`); the metrics show it as
    "model" beside "model, uncalibrated", the training base rate (a constant) and popularity (a
    logistic fit of the label on ``log(1 + earlier watches)``).
    """
    check_int(holdout, "holdout", low=0)
    if loss == "watch-time":
        raise CrossentError(
            '--loss "watch-time" needs watch times per impression; a watch log has none '
            "(use bce or focal)"
        )
    examples = logged_examples(result.watches, negatives=negatives, seed=seed)
    rows = [examples.rows(stage) for stage in ("train", "valid", "test")]
    if len(rows[2]) == 0:
        raise CrossentError("no user has 3 or more watches; leave-last-out ranking needs 3")
    candidate, train_rows = result.candidate, rows[0]
    if holdout > 0:
        result, train_rows = _holdout_features(
            result, examples, holdout, seed, candidate_train_config, progress, listener
        )
        assert result.ranking_candidate is not None
        candidate = result.ranking_candidate
    used = np.concatenate([train_rows, rows[1], rows[2]])
    inputs = logged_ranking_inputs(candidate, result.watches, examples, used)
    ends = np.cumsum([len(train_rows), len(rows[1]), len(rows[2])])
    # validation examples are distributed like test ones: Platt scaling on them corrects what
    # the ranker's training examples still get wrong about unseen ones
    result = _fit_and_evaluate_ranking(
        result,
        inputs,
        np.arange(ends[0]),
        np.arange(ends[0], ends[1]),
        np.arange(ends[1], ends[2]),
        calibrate=True,
        loss=loss,
        train_config=train_config,
        progress=progress,
        listener=listener,
    )
    counts = {
        f"{stage}_examples": len(r)
        for stage, r in zip(("train", "valid", "test"), [train_rows, *rows[1:]], strict=True)
    }
    return _logged_baselines(result, examples, rows[0], rows[2]).adding(
        info={
            "ranking_examples": {
                "negatives": negatives, "seed": seed, "holdout": holdout, **counts
            }
        }
    )


def _holdout_features(
    result: RunResult,
    examples: LoggedExamples,
    holdout: int,
    seed: int,
    train_config: TrainConfig | None,
    progress: bool,
    listener: Listener | None,
) -> tuple[RunResult, np.ndarray]:
    """``result`` with the candidate generator retrained without each user's last ``holdout``
    training watches as its ``ranking_candidate``, and the training examples at those
    positions, which it never saw."""
    train_rows = holdout_rows(examples, holdout)
    if len(train_rows) == 0:
        raise CrossentError(
            f"holdout = {holdout}: no user has more than {holdout} training watches "
            "(use a smaller holdout, or 0)"
        )
    note(
        listener, "ranking features",
        f"candidate generator retrained without each user's last {holdout} training watches",
    )
    torch.manual_seed(seed)
    candidate = CandidateModel(result.candidate.config)
    curves = fit_candidate(
        candidate, holdout_split(result.split, holdout), train_config, progress=progress,
        listener=listener,
    )
    result = result.replacing(ranking_candidate=candidate)
    return result.adding(curves={"ranking_features": curves}), train_rows


def evaluate_logged_ranking(
    result: RunResult,
    model: RankingModel,
    *,
    negatives: int = 4,
    seed: int = 0,
    candidate: CandidateModel | None = None,
) -> RunResult:
    """Test metrics of a trained ranking ``model`` on ``result.watches``, beside the baselines.

    Rebuilds the examples :func:`train_logged_ranking` used (same ``negatives`` and ``seed``)
    with ``candidate`` (the ranking features' generator; default ``result.candidate``) for the
    features.
    """
    examples = logged_examples(result.watches, negatives=negatives, seed=seed)
    train_rows, test_rows = examples.rows("train"), examples.rows("test")
    if len(test_rows) == 0:
        raise CrossentError("no user has 3 or more watches; leave-last-out ranking needs 3")
    features = candidate if candidate is not None else result.candidate
    test = logged_ranking_inputs(features, result.watches, examples, test_rows)
    return _logged_baselines(
        _score_ranking(result, model, test), examples, train_rows, test_rows
    )


def _logged_baselines(
    result: RunResult, examples: LoggedExamples, train_rows: np.ndarray, test_rows: np.ndarray
) -> RunResult:
    """``result`` with the training base rate and a logistic fit on popularity, scored on the
    test rows."""
    label = examples.label[test_rows]
    base_rate = float(examples.label[train_rows].mean())
    popularity = np.log1p(examples.earlier_watches.astype(np.float64))
    probs = _popularity_probs(
        popularity[train_rows], examples.label[train_rows], popularity[test_rows]
    )
    return result.adding(
        ranking_metrics={
            "watch rate (constant)": evaluate_ranking(np.full(len(label), base_rate), label),
            "popularity (logistic)": evaluate_ranking(probs, label),
        }
    )


def _popularity_probs(
    train_feature: np.ndarray, train_label: np.ndarray, test_feature: np.ndarray
) -> np.ndarray:
    """P(watch) = sigmoid(a + b * feature), fitted by maximum likelihood on the training rows."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e6).fit(train_feature[:, None], train_label.astype(np.int64))
    return np.asarray(fit.predict_proba(test_feature[:, None])[:, 1], dtype=np.float64)
