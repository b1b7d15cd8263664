"""Ranking examples from a real watch log: no future watches, leave-last-out stages, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from crossent.cli import app
from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions, leave_last_out
from crossent.recsys.models.logged_ranking import (
    STAGES,
    history_windows,
    holdout_rows,
    holdout_split,
    logged_examples,
)
from crossent.recsys.ranking_stage import evaluate_logged_ranking
from crossent.recsys.serving.checkpoint import load_checkpoint

runner = CliRunner()


def _log(n_users: int = 12, n_items: int = 15, seed: int = 0) -> Interactions:
    """Random watch log with repeated timestamps (ties) and users of 2 to 9 watches."""
    rng = np.random.default_rng(seed)
    user, item, time = [], [], []
    for u in range(n_users):
        length = int(rng.integers(2, 10))
        watched = rng.choice(n_items, size=length, replace=False)
        stamps = np.sort(rng.integers(0, 30, size=length))
        user += [u] * length
        item += watched.tolist()
        time += stamps.tolist()
    shuffle = rng.permutation(len(user))  # rows out of time order
    return Interactions.from_arrays(
        np.array(user)[shuffle], np.array(item)[shuffle], np.array(time)[shuffle]
    )


def _ordered_watches(log: Interactions) -> dict[int, list[tuple[int, int]]]:
    """Per user, (item, timestamp) in time order (stable on ties), written independently."""
    out: dict[int, list[tuple[int, int, int]]] = {}
    for row, (u, i, t) in enumerate(zip(log.user, log.item, log.timestamp, strict=True)):
        out.setdefault(int(u), []).append((int(t), row, int(i)))
    return {u: [(i, t) for t, _, i in sorted(rows)] for u, rows in out.items()}


def test_examples_never_use_future_watches():
    log = _log()
    examples = logged_examples(log, negatives=3, seed=1)
    ordered = _ordered_watches(log)
    history = 4
    window = history_windows(log, examples.user, examples.position, history, log.n_items).numpy()
    for row in range(len(examples)):
        u, t = int(examples.user[row]), int(examples.position[row])
        sequence = [i for i, _ in ordered[u]]
        when = ordered[u][t][1]
        assert examples.time[row] == when
        # the user vector's window: exactly the last `history` watches before position t
        earlier = sequence[max(0, t - history) : t]
        assert window[row].tolist() == earlier + [log.n_items] * (history - len(earlier))
        # popularity: watches of the video by anyone strictly earlier in time
        expected = sum(
            1
            for i, stamp in zip(log.item, log.timestamp, strict=True)
            if i == examples.item[row] and stamp < when
        )
        assert examples.earlier_watches[row] == expected
        if examples.label[row] == 1:
            assert examples.item[row] == sequence[t]
        else:  # a negative was not watched by the user up to then
            assert examples.item[row] not in sequence[: t + 1]


def test_stages_follow_leave_last_out_with_negatives_per_positive():
    log = _log()
    examples = logged_examples(log, negatives=3, seed=1)
    ordered = _ordered_watches(log)
    for u, watches in ordered.items():
        mine = examples.user == u
        positives = mine & (examples.label == 1)
        assert positives.sum() == len(watches)
        assert (mine & (examples.label == 0)).sum() == 3 * len(watches)
        for stage, from_end in (("test", 1), ("valid", 2)):
            rows = mine & (examples.stage == STAGES[stage])
            if len(watches) < 3:
                assert not rows.any()
                continue
            assert rows.sum() == 4  # the watch and its 3 negatives
            assert set(examples.position[rows]) == {len(watches) - from_end}
            assert examples.item[rows & (examples.label == 1)][0] == watches[-from_end][0]


@pytest.mark.statistical
def test_negatives_are_seeded_and_drawn_by_popularity_among_unwatched_videos():
    log = _log(n_users=40, n_items=10, seed=2)
    first = logged_examples(log, negatives=50, seed=7)
    again = logged_examples(log, negatives=50, seed=7)
    other = logged_examples(log, negatives=50, seed=8)
    np.testing.assert_array_equal(first.item, again.item)
    assert not np.array_equal(first.item, other.item)
    # a false alarm has probability 1e-6 for a correct sampler, whatever the seed or the CPU
    assert negatives_chi_square_p(log, first) > 1e-6


def negatives_chi_square_p(log, examples) -> float:
    """Chi-square p-value of the drawn negatives' counts against their expected counts.

    Each negative of (u, t) is drawn from q_j ∝ (training watches of j) + 1 restricted to the
    videos u had not watched up to position t; the expected counts sum those distributions.
    """
    ordered = _ordered_watches(log)
    train_positive = (examples.label == 1) & (examples.stage == STAGES["train"])
    proposal = np.bincount(examples.item[train_positive], minlength=10) + 1.0
    expected = np.zeros(10)
    negative = np.flatnonzero(examples.label == 0)
    for row in negative:
        sequence = [i for i, _ in ordered[int(examples.user[row])]]
        allowed = proposal.copy()
        allowed[sequence[: int(examples.position[row]) + 1]] = 0.0
        expected += allowed / allowed.sum()
    observed = np.bincount(examples.item[negative], minlength=10)
    return float(stats.chisquare(observed, expected).pvalue)


def measure_negatives(seed: int) -> dict[str, float]:
    log = _log(n_users=40, n_items=10, seed=seed)
    examples = logged_examples(log, negatives=50, seed=seed)
    return {"chi-square p": negatives_chi_square_p(log, examples)}


def test_zero_negatives_is_a_named_error():
    with pytest.raises(CrossentError, match=r"negatives = 0 must be an integer >= 1"):
        logged_examples(_log(), negatives=0)


def _ratings_file(path: Path) -> Path:
    """A tiny MovieLens-style ratings.csv: 25 users x 8 watches over 20 movies."""
    rng = np.random.default_rng(3)
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, 26):
        movies = rng.choice(np.arange(500, 520), size=8, replace=False)
        for step, movie in enumerate(movies):
            lines.append(f"{user},{movie},5.0,{2_000_000 + 50 * step + user}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _two_tastes_file(path: Path) -> Path:
    """ratings.csv of two tastes: users 1-40 watch 10 of movies 500-514, users 41-80 of 515-529.

    A watch is predictable from the user's earlier watches, so the candidate features carry
    signal into validation and a calibration with a positive scale exists.
    """
    rng = np.random.default_rng(4)
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, 81):
        first = 500 if user <= 40 else 515
        for step, movie in enumerate(rng.choice(np.arange(first, first + 15), 10, replace=False)):
            lines.append(f"{user},{movie},5.0,{2_000_000 + 50 * step + user}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_ranking_on_a_file_then_evaluate_report_the_metrics(tmp_path):
    data = _two_tastes_file(tmp_path / "ratings.csv")
    out = tmp_path / "model"
    common = ["--epochs", "3", "--dim", "8", "--negatives", "2"]
    result = runner.invoke(
        app, ["train", "--data", str(data), "--stage", "ranking", "--out", str(out), *common]
    )
    assert result.exit_code == 0, result.output
    for text in ("log loss", "(bits)", "NE", "AUC", "ECE", "watch rate", "popularity"):
        assert text in result.output
    assert "uncalibrated" in result.output and "Platt scaling on" in result.output
    assert (out / "manifest.json").is_file()
    again = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(data)])
    assert again.exit_code == 0, again.output
    assert "Ranking: P(watch)" in again.output and "popularity" in again.output
    # the checkpoint carries the calibration and the features' generator: evaluate shows the
    # same two model rows
    assert "uncalibrated" in again.output
    assert load_checkpoint(out).ranking_candidate is not None


def test_logged_ranking_is_platt_scaled_on_the_validation_examples(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from crossent.recsys.data.loaders import load_interactions
    from crossent.recsys.models.logged_ranking import logged_ranking_inputs
    from crossent.recsys.ranking_stage import train_logged_ranking
    from crossent.recsys.retrieval import train_retrieval
    from crossent.recsys.spec import ModelSpec
    from crossent.recsys.training.loop import TrainConfig

    watches = load_interactions(_two_tastes_file(tmp_path / "ratings.csv"))
    result = train_retrieval(
        watches,
        model=ModelSpec(dim=8),
        train_config=TrainConfig(epochs=5, lr=0.01, weight_decay=0.1, batch_size=512),
        baselines=False,
        progress=False,
    )
    ranking_config = TrainConfig(epochs=5, lr=3e-3)
    for bad, message in ((-1, "holdout = -1 must be an integer >= 0"), (8, "more than 8")):
        with pytest.raises(CrossentError, match=message):  # 8 training watches per user
            train_logged_ranking(result, holdout=bad, negatives=2, progress=False)
    result = train_logged_ranking(
        result,
        negatives=2,
        holdout=3,
        train_config=ranking_config,
        # every user has 8 training watches: one window length, nothing to bucket
        candidate_train_config=TrainConfig(epochs=5, lr=0.01, weight_decay=0.1, bucket=False),
        progress=False,
    )
    model, features = result.ranking, result.ranking_candidate
    assert model is not None and result.info["ranking_calibration"].startswith("Platt")
    assert features is not None and features is not result.candidate
    assert result.info["ranking_examples"]["train_examples"] == 80 * 3 * (1 + 2)
    examples = logged_examples(watches, negatives=2, seed=0)
    valid = logged_ranking_inputs(features, watches, examples, examples.rows("valid"))
    with torch.no_grad():
        raw = model.uncalibrated_logits(valid.user, valid.item, valid.dense).double().numpy()
    label = valid.label.numpy().astype(int)
    reference = LogisticRegression(C=1e12, solver="newton-cholesky", tol=1e-12).fit(
        raw[:, None], label
    )
    assert float(model.calibration_scale) == pytest.approx(reference.coef_[0, 0], abs=1e-5)
    assert float(model.calibration_shift) == pytest.approx(reference.intercept_[0], abs=1e-5)
    calibrated = 1 / (1 + np.exp(-(reference.coef_[0, 0] * raw + reference.intercept_[0])))
    assert log_loss(label, calibrated) <= log_loss(label, 1 / (1 + np.exp(-raw))) + 1e-12
    metrics = result.ranking_metrics
    assert metrics["model"]["auc"] == pytest.approx(metrics["model, uncalibrated"]["auc"])
    # evaluating the trained model again, with the features' generator, gives the same numbers
    # (to float32 rounding: user vectors are encoded in groups that need not be the same)
    trained = dict(metrics)
    result = evaluate_logged_ranking(result, model, negatives=2, seed=0, candidate=features)
    for name in ("model", "model, uncalibrated"):
        assert result.ranking_metrics[name] == pytest.approx(trained[name], rel=1e-6)


def test_holdout_removes_each_users_last_training_watches_and_ranks_exactly_those():
    log = _log(n_users=30, seed=5)
    holdout = 2
    examples = logged_examples(log, negatives=3, seed=1)
    inner = holdout_split(leave_last_out(log), holdout)
    rows = holdout_rows(examples, holdout)
    held, kept = set(), []
    for u, watches in _ordered_watches(log).items():
        training = watches[:-2] if len(watches) >= 3 else watches
        cut = len(training) - holdout if len(training) > holdout else len(training)
        kept += [(u, i, t) for i, t in training[:cut]]
        held |= {(u, position) for position in range(cut, len(training))}
    assert sorted(zip(inner.train.user, inner.train.item, inner.train.timestamp, strict=True)) == (
        sorted(kept)
    )
    assert set(zip(examples.user[rows], examples.position[rows], strict=True)) == held
    assert (examples.stage[rows] == STAGES["train"]).all()
    assert (examples.label[rows] == 1).sum() == len(held)
    assert (examples.label[rows] == 0).sum() == 3 * len(held)
