"""Training: no future leakage, the loss falls toward the Bayes limit, checkpoints round-trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions, leave_last_out
from crossent.recsys.data.simulate import SimulationConfig, simulate
from crossent.recsys.evaluation.next_watch import retrieval_cross_entropy
from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.models.networks import CandidateConfig, CandidateModel, bag_examples
from crossent.recsys.models.objectives import IGNORE
from crossent.recsys.models.sequence import bucketed
from crossent.recsys.run import run
from crossent.recsys.serving.checkpoint import load_checkpoint, save_checkpoint
from crossent.recsys.serving.recommend import recommend_users
from crossent.recsys.spec import ModelSpec, RunSpec, TrainingSpec
from crossent.recsys.training.loop import TrainConfig, fit_candidate, refit_candidate


def _shuffled_log() -> Interactions:
    rng = np.random.default_rng(0)
    rows = []
    for user in (10, 20, 30):
        times = rng.permutation(50)[: 6 + user // 10]
        rows += [(user, 100 + int(rng.integers(40)), int(t)) for t in times]
    order = rng.permutation(len(rows))
    user, item, time = (np.array([rows[i][k] for i in order]) for k in range(3))
    return Interactions.from_arrays(user, item, time)


def test_training_examples_see_only_strictly_earlier_watches_of_the_same_user():
    log = _shuffled_log()
    history = 3
    windows, targets = bag_examples(log, history)
    expected_windows, expected_targets = [], []
    for user in range(log.n_users):  # independent: sort each user's rows by time by hand
        mine = sorted(
            (t, i) for u, i, t in zip(log.user, log.item, log.timestamp, strict=True) if u == user
        )
        items = [i for _, i in mine]
        for k, item in enumerate(items):
            earlier = items[max(0, k - history) : k]
            expected_windows.append(earlier + [log.n_items] * (history - len(earlier)))
            expected_targets.append(item)
    assert windows.tolist() == expected_windows
    assert targets.tolist() == expected_targets


def test_test_cross_entropy_matches_a_direct_masked_softmax():
    log = _shuffled_log()
    split = leave_last_out(log)
    torch.manual_seed(0)
    config = CandidateConfig(n_items=log.n_items, model="bag", dim=4, hidden=8, history=2)
    model = CandidateModel(config)
    indptr, items = split.watched("test")
    users = split.users("test")
    losses = []
    for user in users:
        seen = items[indptr[user] : indptr[user + 1]]
        window = torch.full((1, 2), log.n_items)
        tail = torch.as_tensor(seen[-2:])
        window[0, : len(tail)] = tail
        logits = model.scores(window)[0].detach().double().numpy()
        target = split.test_target[user]
        logits[[i for i in seen if i != target]] = -np.inf
        top = logits.max()
        losses.append(top + np.log(np.exp(logits - top).sum()) - logits[target])
    got = retrieval_cross_entropy(model, split, "test")
    assert got["nats"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert got["bits"] == pytest.approx(np.mean(losses) / math.log(2), rel=1e-5)


def train_small_world(seed: int):
    config = SimulationConfig(
        n_users=300, n_videos=40, max_watches=12, taste_scale=8.0, seed=seed
    )
    spec = RunSpec(
        stage="ranking",
        # pinned, not the defaults: the bounds below were measured with this model
        # the encoder the bounds were measured with (docs/TESTING.md, "small-world")
        model=ModelSpec(
            dim=16, hidden=32, history=12, dropout=0.2, tie_embeddings=False, block="pre-norm",
            item_bias=True,
        ),
        training=TrainingSpec(
            # 14 real targets: 2 windows of this world's 7 on average, as the bounds were
            # measured
            schedule=TrainConfig(epochs=12, lr=0.01, batch_size=14, patience=3, seed=seed),
            ranking=TrainConfig(epochs=4, lr=0.01, batch_size=256, seed=seed),
        ),
    )
    return run(spec, config, progress=False), simulate(config)


@pytest.fixture(scope="module")
def trained():
    return train_small_world(5)


def measure_training(result) -> dict[str, float]:
    history = result.curves["retrieval"]
    ce = result.cross_entropy
    bag = result.baseline_cross_entropy["bag model"]
    ranking = result.ranking_metrics["model"]
    constant = result.ranking_metrics["watch rate (constant)"]
    return {
        "best / first valid bits": history.valid_bits[history.best_epoch - 1]
        / history.valid_bits[0],
        "nats / log(40)": ce["nats"] / math.log(40),
        "expected nats - Bayes": ce["expected_nats"] - ce["bayes_nats"],
        "nats / Bayes": ce["nats"] / ce["bayes_nats"],
        "HR@10 model - most popular": result.retrieval["model"]["HR@10"]
        - result.retrieval["most popular"]["HR@10"],
        "expected nats bag / model": bag["expected_nats"] / ce["expected_nats"],
        "ranking log loss model / constant": ranking["log_loss_nats"]
        / constant["log_loss_nats"],
    }


@pytest.mark.statistical
def test_training_lowers_the_loss_and_approaches_the_bayes_limit(trained):
    values = measure_training(trained[0])
    assert values["best / first valid bits"] < 1
    assert values["nats / log(40)"] < 1  # better than uniform over the catalogue
    assert values["expected nats - Bayes"] >= -1e-9  # Gibbs: H(p) <= H(p, q)
    # a short schedule on 300 users: the README's demo measurement is the close one. 20 seeds
    # (docs/TESTING.md): 1.29 +- 0.06 (1.3 failed 9 of them); the bound is 4 std out
    assert values["nats / Bayes"] < 1.55
    assert values["HR@10 model - most popular"] > 0  # 0.24 +- 0.057
    # the simulated order is signal only the sequence model sees
    assert values["expected nats bag / model"] > 1  # 1.20 +- 0.05
    # not asserted: the ranking model's log loss below the constant's (0.97 +- 0.03, above 1
    # for 4 seeds in 20) needs more than 600 test impressions; test_recsys_ranking_losses.py
    # asserts the ranking stage on 40,000


def test_simulated_ranking_keeps_the_identity_calibration(trained):
    # random 80/10/10 split of impressions: nothing to correct, so nothing is fitted
    result, _ = trained
    assert result.info["ranking_calibration"].startswith("identity")
    assert float(result.ranking.calibration_scale) == 1.0
    assert float(result.ranking.calibration_shift) == 0.0
    assert "model, uncalibrated" not in result.ranking_metrics
    assert result.ranking_test_uncalibrated is None


def test_checkpoint_round_trip_gives_identical_scores_and_recommendations(trained, tmp_path):
    result, _ = trained
    save_checkpoint(
        tmp_path, result.candidate, result.watches, ranking=result.ranking, curves=result.curves
    )
    loaded = load_checkpoint(tmp_path)
    window = torch.tensor([[1, 2, 3], [40, 40, 40]])
    torch.testing.assert_close(loaded.candidate.scores(window), result.candidate.scores(window))
    assert loaded.ranking is not None
    user = loaded.user_index("7")
    batch = recommend_users(loaded, np.array([user]), 5, rank=False)
    items, scores = loaded.item_ids[batch.items[0]], batch.scores[0]
    watched = result.watches.item[result.watches.user == user]
    assert len(items) == 5 and not set(items.tolist()) & set(watched.tolist())
    assert np.all(np.diff(scores) <= 0)


def test_unknown_user_and_missing_checkpoint_are_named(trained, tmp_path):
    with pytest.raises(CrossentError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "nowhere")
    result, _ = trained
    save_checkpoint(tmp_path, result.candidate, result.watches)
    with pytest.raises(CrossentError, match="user 'nobody' is not in the model's data"):
        load_checkpoint(tmp_path).user_index("nobody")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_bytes(b"not a checkpoint")
    with pytest.raises(CrossentError, match="not a crossent checkpoint"):
        load_checkpoint(tmp_path / "bad")


def test_the_same_seed_gives_the_same_metrics():
    split = leave_last_out(
        simulate(SimulationConfig(n_users=120, n_videos=50, max_watches=10, seed=4)).interactions
    )
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = CandidateModel(CandidateConfig(n_items=50, dim=8, history=8))
        history = fit_candidate(model, split, TrainConfig(epochs=2, batch_size=16), progress=False)
        runs.append((history.valid_ndcg, evaluate_retrieval(model, split, progress=False)))
    assert runs[0] == runs[1]


def test_bad_training_configuration_is_named():
    with pytest.raises(CrossentError, match="epochs = 0"):
        TrainConfig(epochs=0)
    with pytest.raises(CrossentError, match="lr = -1"):
        TrainConfig(lr=-1.0)


def measure_bucketing(seed: int) -> dict[str, float]:
    """Mean within-batch length spread, bucketed over random, for 990 of 1000 random lengths."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 200, (1000,), generator=generator)
    order = torch.randperm(1000, generator=generator)[:990]
    batch = 4
    got = bucketed(order, lengths, batch, torch.Generator().manual_seed(seed + 1))
    assert sorted(got.tolist()) == sorted(order.tolist())  # a permutation of the epoch
    spread = [
        int(lengths[rows].max() - lengths[rows].min()) for rows in got[: 990 // batch * batch]
        .view(-1, batch)
    ]
    random_spread = [
        int(lengths[rows].max() - lengths[rows].min())
        for rows in order[: 990 // batch * batch].view(-1, batch)
    ]
    return {"bucketed / random spread": float(np.mean(spread) / np.mean(random_spread))}


@pytest.mark.statistical
def test_bucketed_batches_hold_every_example_once_among_alike_lengths():
    # sorted pools of 64 batches: within-batch spread is about 200 / 64, not about 120
    # (20 seeds: 0.0200 +- 0.0006 of the random spread, docs/TESTING.md)
    assert measure_bucketing(0)["bucketed / random spread"] < 0.03


@pytest.mark.parametrize("epochs, steps", [(1, 10), (3, 7)])
def test_cosine_schedule_follows_its_formula_and_reaches_zero_at_the_last_step(
    epochs: int, steps: int
):
    config = TrainConfig(epochs=epochs, lr=0.2, lr_schedule="cosine")
    total = epochs * steps
    for epoch in range(1, epochs + 1):
        for step in range(steps):
            done = ((epoch - 1) * steps + step) / total
            assert config.lr_at(epoch, step, steps) == pytest.approx(
                0.1 * (1 + np.cos(np.pi * done))
            )
    assert config.lr_at(1, 0, steps) == pytest.approx(0.2)
    assert config.lr_at(epochs, steps - 1, steps) < 0.2 * (np.pi / total) ** 2
    assert TrainConfig(lr=0.2).lr_at(epochs, steps - 1, steps) == 0.2  # constant


def test_an_unknown_schedule_is_named():
    with pytest.raises(CrossentError, match="lr_schedule = 'linear' is not one of"):
        TrainConfig(lr_schedule="linear")  # type: ignore[arg-type]


def test_bucket_must_be_a_bool():
    with pytest.raises(CrossentError, match="bucket = 'no' must be True or False"):
        TrainConfig(bucket="no")  # type: ignore[arg-type]


def test_refit_runs_exactly_its_epochs_on_every_watch() -> None:
    log = simulate(SimulationConfig(n_users=40, n_videos=60, seed=1)).interactions
    model = CandidateModel(CandidateConfig(n_items=log.n_items, dim=8, history=8))
    history = refit_candidate(model, log, TrainConfig(epochs=3, batch_size=64), progress=False)
    assert len(history.train_bits) == 3 and history.best_epoch == 3
    assert not history.stopped_early and all(math.isnan(b) for b in history.valid_bits)
    # every watch but each user's first is a training target: none is held out
    _, targets = model.examples(log)
    assert int((targets != IGNORE).sum()) == len(log) - len(np.unique(log.user))


def test_catch_up_continues_the_kept_model_on_every_watch_with_a_decaying_rate(monkeypatch):
    from crossent.recsys import saved_model
    from crossent.recsys.retrieval import train_retrieval
    from crossent.recsys.saved_model import catch_up_on_all_watches

    log = simulate(SimulationConfig(n_users=40, n_videos=60, seed=1)).interactions
    config = TrainConfig(epochs=2, batch_size=64, patience=2)
    result = train_retrieval(
        log, model=ModelSpec(dim=8, history=8), train_config=config, baselines=False
    )
    kept = result.candidate
    before = {k: v.clone() for k, v in kept.state_dict().items()}
    reported = dict(result.retrieval["model"])
    seen: list[tuple[int, float]] = []
    original = saved_model.refit_candidate

    def spy(model, watches, train_config, **kwargs):
        seen.append((len(watches), train_config.lr_at(2, 10**9, 1)))
        assert train_config.lr_schedule == "cosine" and train_config.epochs == 3
        return original(model, watches, train_config, **kwargs)

    monkeypatch.setattr(saved_model, "refit_candidate", spy)
    kept_result = result
    result = catch_up_on_all_watches(result, config, 3)
    assert "catch-up" not in kept_result.curves  # a new result; the first is unchanged
    # every watch of the run, the held-out validation and test ones included
    assert seen[0][0] == len(log) > len(result.split.train)
    assert seen[0][1] == pytest.approx(0.0, abs=1e-12)  # cos decay reaches 0 at its horizon
    assert result.info["catch_up_epochs"] == 3
    assert len(result.curves["catch-up"].train_bits) == 3
    assert result.retrieval["model"] == reported  # the table keeps the model that never saw test
    # the kept model is left as it was; the saved one went on from its weights
    assert all(torch.equal(before[k], v) for k, v in kept.state_dict().items())
    assert result.candidate is not kept
    assert any(not torch.equal(before[k], v) for k, v in result.candidate.state_dict().items())


@pytest.mark.parametrize(
    ("curve", "gain", "best", "epochs_run"),
    [
        # a 0.1% gain is no improvement at a 0.5% margin: patience 2 ends the run at epoch 4
        ([0.040, 0.050, 0.05005, 0.0501, 0.06], 0.005, 2, 4),
        # without a margin the same gains restart the patience, and epoch 5's 0.06 is reached
        ([0.040, 0.050, 0.05005, 0.0501, 0.06], 0.0, 5, 5),
        # a gain above the margin (0.050 -> 0.0503 is 0.6%) counts
        ([0.040, 0.050, 0.0503, 0.0400, 0.0400], 0.005, 3, 5),
    ],
)
def test_early_stopping_counts_only_ndcg_gains_above_the_margin(curve, gain, best, epochs_run):
    from crossent.recsys.training.loop import run_epochs

    weight = torch.nn.Parameter(torch.zeros(1))
    module = torch.nn.Module()
    module.register_parameter("w", weight)
    scores = iter(curve)

    def step(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        return (weight - 1.0).pow(2).sum(), len(rows)

    config = TrainConfig(epochs=len(curve), patience=2, batch_size=4, min_gain_ndcg=gain)
    curves = run_epochs(
        step, 8, lambda: {"bits": 1.0, "ndcg": next(scores)}, module, config,
        label="test", criterion="ndcg", progress=False, listener=None,
    )
    assert curves.best_epoch == best
    assert len(curves.valid_ndcg) == epochs_run
