"""The saved blend of a sequence model and its bag model: the weight validation chooses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from crossent.errors import OptionError
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.blend import BlendedCandidate
from crossent.recsys.models.networks import CandidateShape
from crossent.recsys.retrieval import train_retrieval
from crossent.recsys.saved_model import choose_blend, saved_model
from crossent.recsys.spec import TrainingSpec
from crossent.recsys.training.loop import TrainConfig


def _watches() -> Interactions:
    """40 users, 30 items: each user walks a random cycle, so order carries the signal."""
    rng = np.random.default_rng(5)
    users, items = [], []
    for user in range(40):
        start, step = rng.integers(30), rng.integers(1, 4)
        for position in range(8):
            users.append(user)
            items.append(int((start + step * position) % 30))
    return Interactions.from_arrays(users, items, np.arange(len(users)))


def _validation_ndcg(result, weight: float) -> float:
    """NDCG@10 on the validation targets, from the definition: each member's log-softmax over
    the catalogue, mixed ``(1 - w, w)``, the user's training watches excluded."""
    split, history = result.split, result.candidate.config.history
    n_items = split.n_items
    indptr, items = split.train.sequences()
    gains = []
    for user in split.users("valid"):
        watched = items[indptr[user] : indptr[user + 1]]
        window = np.full((1, history), n_items)
        recent = watched[-history:]
        window[0, history - len(recent) :] = recent
        with torch.no_grad():
            parts = [
                torch.log_softmax(model.scores(torch.from_numpy(window)).double(), 1)[0].numpy()
                for model in (result.candidate, result.bag)
            ]
        mixed = (1 - weight) * parts[0] + weight * parts[1]
        mixed[np.unique(watched)] = -np.inf
        target = split.valid_target[user]
        rank = int((mixed > mixed[target]).sum()) if np.isfinite(mixed[target]) else 10**9
        gains.append(1 / np.log2(rank + 2) if rank < 10 else 0.0)
    return float(np.mean(gains))


def test_validation_chooses_the_weight_with_the_best_ndcg_of_the_definition():
    model = CandidateShape(dim=8, hidden=16, history=6, blocks=1)
    result = train_retrieval(
        _watches(), model=model, train_config=TrainConfig(epochs=3, seed=2),
        progress=False, eval_users=0,
    )
    assert result.bag is not None
    chosen = choose_blend(result, (0.0, 0.25, 0.5), progress=False)
    grid = chosen.info["blend_validation_ndcg@10"]
    for weight in (0.0, 0.25, 0.5):
        assert abs(grid[f"{weight:g}"] - _validation_ndcg(result, weight)) < 1e-9
    best = max((0.0, 0.25, 0.5), key=lambda w: (grid[f"{w:g}"], -w))
    assert chosen.info["blend"] == best
    # a chosen blend is the "model" row (what is saved), the sequence model its own row
    assert ("sequence model" in chosen.retrieval) == (best > 0)
    if best == 0:
        assert chosen.retrieval["model"] == result.retrieval["model"]
    else:
        assert chosen.retrieval["sequence model"] == result.retrieval["model"]
    # one weight given: no choice to make, no validation scored
    fixed = choose_blend(result, (0.25,), progress=False)
    assert fixed.info["blend"] == 0.25 and fixed.info["blend_validation_ndcg@10"] == {}


def test_each_member_of_a_refitted_blend_trains_for_its_own_chosen_epochs():
    model = CandidateShape(dim=8, hidden=16, history=6, blocks=1)
    schedule = TrainConfig(epochs=3, seed=2)
    result = train_retrieval(
        _watches(), model=model, train_config=schedule, progress=False, eval_users=0
    )
    # as if early stopping had chosen epoch 1 for the sequence model and 3 for the bag
    curves = dict(result.curves)
    curves["retrieval"] = dataclasses.replace(curves["retrieval"], best_epoch=1)
    curves["retrieval (bag)"] = dataclasses.replace(curves["retrieval (bag)"], best_epoch=3)
    result = result.replacing(curves=curves)
    saved = saved_model(
        TrainingSpec(schedule=schedule, refit=True, blend=0.5), result, progress=False
    )
    assert isinstance(saved.candidate, BlendedCandidate)
    assert len(saved.curves["refit"].train_bits) == 1
    assert len(saved.curves["refit (bag)"].train_bits) == 3


def test_a_blend_is_not_trained_and_the_error_says_what_to_train():
    message = "model = 'blend' is saved, not trained: train 'sequence'"
    with pytest.raises(OptionError, match=message):
        train_retrieval(
            _watches(), model=CandidateShape(model="blend", bag_weight=0.5, dim=8, blocks=1),
            train_config=TrainConfig(epochs=1), progress=False,
        )
