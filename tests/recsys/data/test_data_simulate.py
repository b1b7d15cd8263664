"""The simulator: true distributions are proper, draws follow them, errors are named."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from crossent.errors import CrossentError
from crossent.recsys.data.simulate import SimulationConfig, simulate


@pytest.fixture(scope="module")
def small_log():
    return simulate(SimulationConfig(n_users=300, n_videos=60, max_watches=12, seed=3))


def test_true_next_watch_probabilities_sum_to_one_and_exclude_watched(small_log):
    users = np.arange(300)
    lengths = (small_log.watches >= 0).sum(1).numpy()
    position = lengths - 1
    log_probs = small_log.next_watch_log_probs(users, position)
    probs = log_probs.double().exp()
    np.testing.assert_allclose(probs.sum(1).numpy(), 1.0, atol=1e-5)
    for user in range(0, 300, 37):
        earlier = small_log.watches[user, : position[user]]
        assert torch.all(probs[user, earlier] == 0)
        assert probs[user, small_log.watches[user, position[user]]] > 0


def test_truth_matches_an_independent_numpy_formula(small_log):
    config = small_log.config
    taste = small_log.video_taste.double().numpy()
    bias = small_log.popularity_logit.double().numpy()
    user, position = 5, 7
    earlier = small_log.watches[user, :position].numpy()
    state = taste[earlier[-config.history :]].mean(0)
    rotation = small_log.transition.double().numpy()
    # taste of the recent history, plus the transition from the previous watch R v_prev
    query = config.taste_scale * state + config.transition_scale * rotation @ taste[earlier[-1]]
    logits = taste @ query + bias
    logits[earlier] = -np.inf
    expected = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    got = small_log.next_watch_log_probs(np.array([user]), np.array([position]))[0].double()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got.numpy()[finite], expected[finite], rtol=1e-4, atol=1e-4)


def test_transition_is_a_rotation_and_makes_the_order_matter(small_log):
    rotation = small_log.transition.double().numpy()
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(len(rotation)), atol=1e-6)
    # the same watches in another order: the same taste, another previous watch
    user, position = 5, 7
    log_probs = small_log.next_watch_log_probs(np.array([user]), np.array([position]))[0]
    swapped = small_log.watches.clone()
    swapped[user, [position - 2, position - 1]] = swapped[user, [position - 1, position - 2]]
    other = dataclasses.replace(small_log, watches=swapped)
    reordered = other.next_watch_log_probs(np.array([user]), np.array([position]))[0]
    finite = torch.isfinite(log_probs)
    assert torch.equal(finite, torch.isfinite(reordered))
    assert (log_probs[finite] - reordered[finite]).abs().max() > 0.1


def measure_sampled_watches(seed: int) -> dict[str, float]:
    """Chi-square p-values of the drawn watch counts at positions 0 and 4 against the truth.

    The expected count of video j at position p is sum_u p_u(j); the statistic compares the
    drawn counts with it (variance of a sum of Bernoullis: sum_u p (1 - p)).
    """
    log = simulate(
        SimulationConfig(
            n_users=4000, n_videos=25, min_watches=5, max_watches=6, impressions_per_user=5,
            seed=seed,
        )
    )
    users = np.arange(4000)
    values = {}
    for position in (0, 4):
        probs = log.next_watch_log_probs(users, np.full(4000, position)).double().exp().numpy()
        expected = probs.sum(0)
        variance = (probs * (1 - probs)).sum(0)
        observed = np.bincount(log.watches[:, position].numpy(), minlength=25)
        statistic = float(((observed - expected) ** 2 / variance).sum())
        values[f"chi-square p, position {position}"] = float(stats.chi2.sf(statistic, df=24))
    return values


@pytest.mark.statistical
def test_sampled_watches_follow_the_true_distribution():
    # a false alarm has probability 1e-6 per position for a correct simulator, whatever the
    # seed or the CPU; a wrong distribution at 4000 users gives p far below it
    for name, p_value in measure_sampled_watches(11).items():
        assert p_value > 1e-6, name


def test_entropy_at_is_the_entropy_of_the_true_distribution(small_log):
    users, position = np.array([0, 1, 2]), np.array([3, 0, 5])
    probs = small_log.next_watch_log_probs(users, position).double().exp().numpy()
    expected = np.array([stats.entropy(row) for row in probs])
    np.testing.assert_allclose(small_log.entropy_at(users, position), expected, rtol=1e-5)


@pytest.mark.statistical
def test_impression_probabilities_follow_the_documented_formula(small_log):
    config = small_log.config
    imp = small_log.impressions
    taste = small_log.video_taste.double().numpy()
    bias = small_log.popularity_logit.double().numpy()
    c0, c1, c2, c3, c4 = config.impression_coef
    for row in (0, 17, 999):
        user = imp.user[row]
        watches = small_log.watches[user].numpy()
        watches = watches[watches >= 0]
        state = taste[watches[-config.history :]].mean(0)
        logit = (
            c0
            + c1 * state @ taste[imp.item[row]]
            + c2 * (bias[imp.item[row]] - bias.mean())
            - c3 * imp.n_previous[row]
            - c4 * np.log1p(imp.slot[row])
        )
        assert imp.true_prob[row] == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-5)
        assert imp.item[row] not in watches
    # labels are Bernoulli(true_prob): the watch count is within 5 standard deviations
    assert abs(watch_count_z(small_log)) < 5.0


def watch_count_z(log) -> float:
    """(watches drawn - sum of true_prob) / its standard deviation: N(0, 1) for a right draw."""
    imp = log.impressions
    mean, sd = imp.true_prob.sum(), np.sqrt((imp.true_prob * (1 - imp.true_prob)).sum())
    return float((imp.watched.sum() - mean) / sd)


def measure_watch_count(seed: int) -> dict[str, float]:
    log = simulate(SimulationConfig(n_users=300, n_videos=60, max_watches=12, seed=seed))
    return {"watch count z": watch_count_z(log)}


def test_simulation_is_seeded_and_returns_interactions():
    a = simulate(SimulationConfig(n_users=40, n_videos=30, max_watches=10, seed=2))
    b = simulate(SimulationConfig(n_users=40, n_videos=30, max_watches=10, seed=2))
    assert np.array_equal(a.interactions.item, b.interactions.item)
    counts = np.bincount(a.interactions.user, minlength=40)
    assert counts.min() >= 8 and counts.max() <= 10
    for user in range(40):  # every user watches each video at most once
        items = a.interactions.item[a.interactions.user == user]
        assert len(set(items.tolist())) == len(items)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_watches": 2}, "min_watches = 2"),
        ({"n_videos": 10, "max_watches": 20}, "max_watches = 20 exceeds n_videos = 10"),
        ({"n_users": 0}, "n_users = 0"),
        ({"n_videos": 30, "max_watches": 20}, "impressions_per_user = 20 exceeds"),
        ({"taste_scale": float("nan")}, "taste_scale = nan"),
    ],
)
def test_bad_configuration_is_named(options, message):
    with pytest.raises(CrossentError, match=message):
        SimulationConfig(**options)


def test_position_outside_the_watches_is_named(small_log):
    with pytest.raises(CrossentError, match=r"position\[0\] = 99 is outside"):
        small_log.next_watch_log_probs(np.array([0]), np.array([99]))


def test_small_catalogue_where_users_watch_every_video_works_without_impressions():
    # regression: a user who watched all 40 videos left an all -inf softmax row (NaN probs)
    log = simulate(
        SimulationConfig(n_users=60, n_videos=40, seed=1, max_watches=40, impressions_per_user=0)
    )
    lengths = (log.watches >= 0).sum(1).numpy()
    assert lengths.max() == 40
    for row in log.watches.numpy():
        watched = row[row >= 0]
        assert len(np.unique(watched)) == len(watched)
    assert len(log.impressions) == 0


def test_impressions_that_cannot_fit_the_unwatched_videos_are_a_named_error():
    with pytest.raises(
        CrossentError, match=r"impressions_per_user = 20 exceeds n_videos - max_watches = 0"
    ):
        SimulationConfig(n_users=60, n_videos=40, seed=1, max_watches=40)


@pytest.mark.parametrize("taste_scale", [12.0, 2000.0])
def test_nearly_exhausted_catalogue_draws_distinct_unwatched_videos_even_for_sharp_taste(
    taste_scale,
):
    # 30 watches + 10 impressions out of 40 videos: the last impressions take every video left.
    # A sharp taste once underflowed every float32 weight to 0 (draws fell on video 0).
    log = simulate(
        SimulationConfig(
            n_users=60,
            n_videos=40,
            min_watches=30,
            max_watches=30,
            impressions_per_user=10,
            taste_scale=taste_scale,
            seed=1,
        )
    )
    watches = log.watches.numpy()
    for user in range(60):
        assert len(np.unique(watches[user])) == 30
        shown = log.impressions.item[log.impressions.user == user]
        assert len(shown) == 10
        assert sorted(set(range(40)) - set(watches[user])) == sorted(shown)
