"""Candidate generation and ranking models against plain-torch formulations."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crossent.errors import CrossentError
from crossent.recsys.models.blend import BlendedCandidate, bag_companion
from crossent.recsys.models.networks import CandidateConfig, CandidateModel, windows_from_csr
from crossent.recsys.models.ranker import RankingConfig, RankingModel

N_ITEMS = 40


def _model(**options) -> CandidateModel:
    torch.manual_seed(0)
    config = CandidateConfig(n_items=N_ITEMS, model="bag", dim=8, hidden=16, history=5, **options)
    model = CandidateModel(config)
    with torch.no_grad():
        model.item_bias.normal_()
    return model.double()


def _batch():
    generator = torch.Generator().manual_seed(1)
    window = torch.randint(0, N_ITEMS + 1, (12, 5), generator=generator)  # N_ITEMS = padding
    window[0] = N_ITEMS  # an empty history
    window[1, :2] = torch.tensor([7, 7])  # a duplicate in the window
    target = torch.randint(0, N_ITEMS, (12,), generator=generator)
    window[2, 0] = target[2]  # a re-watch: the target is in the window
    return window, target


def _reference_user(model: CandidateModel, window: torch.Tensor) -> torch.Tensor:
    rows = []
    for row in window:
        items = row[row < N_ITEMS]
        mean = model.item_in.weight[items].mean(0) if len(items) else model.empty
        rows.append(mean)
    mean = torch.stack(rows)
    return model.tower(mean) + model.skip(mean)


def test_full_softmax_equals_torch_cross_entropy_over_all_logits():
    model = _model(mask_history=False)
    window, target = _batch()
    logits = _reference_user(model, window) @ model.item_out.T + model.item_bias
    expected = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(model.loss(window, target), expected)


def test_masked_softmax_equals_cross_entropy_with_window_items_removed():
    model = _model(mask_history=True)
    window, target = _batch()
    logits = _reference_user(model, window) @ model.item_out.T + model.item_bias
    for row in range(len(window)):
        for item in window[row]:
            if item < N_ITEMS and item != target[row]:
                logits[row, item] = -math.inf
    expected = F.cross_entropy(logits, target, reduction="none")
    got = model.loss(window, target)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _corrected_softmax_loss(model, window, target, item_log_prob, columns, draws):
    """Per-row CE of a softmax over ``columns`` only, each logit corrected by ``-log Q`` with
    ``Q = 1 - (1 - p)^draws`` the probability that the item is among the batch's draws."""
    q = 1 - (1 - item_log_prob.exp()[columns]) ** draws
    logits = (
        _reference_user(model, window) @ model.item_out[columns].T
        + model.item_bias[columns]
        - torch.log(q)
    )
    return F.cross_entropy(
        logits, torch.tensor([columns.index(t) for t in target.tolist()]), reduction="none"
    )


def test_in_batch_softmax_applies_the_log_q_correction_of_yi_et_al():
    model = _model(objective="in-batch")
    window, target = _batch()
    item_log_prob = torch.log_softmax(torch.randn(N_ITEMS, dtype=torch.float64), 0)
    columns = sorted(set(target.tolist()))
    expected = _corrected_softmax_loss(
        model, window, target, item_log_prob, columns, draws=len(target)
    )
    torch.testing.assert_close(model.loss(window, target, item_log_prob=item_log_prob), expected)


def test_sampled_softmax_is_the_corrected_softmax_over_targets_and_unigram_draws():
    model = _model(objective="sampled", n_negatives=16)
    window, target = _batch()
    item_log_prob = torch.log_softmax(torch.randn(N_ITEMS, dtype=torch.float64), 0)
    loss = model.loss(
        window, target, item_log_prob=item_log_prob, generator=torch.Generator().manual_seed(0)
    )
    # the same 16 unigram draws, then the definition: a softmax over the distinct items among
    # the 12 targets and 16 draws, each logit corrected by -log Q, Q = 1 - (1 - p)^28
    extra = torch.multinomial(
        item_log_prob.exp(), 16, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    columns = sorted(set(target.tolist()) | set(extra.tolist()))
    expected = _corrected_softmax_loss(model, window, target, item_log_prob, columns, draws=28)
    torch.testing.assert_close(loss, expected)
    with pytest.raises(CrossentError, match="needs item_log_prob"):
        model.loss(window, target)


def test_sampled_softmax_becomes_the_full_softmax_when_every_item_is_drawn():
    # with enough draws every item is a column and Q -> 1 for all, so log Q -> 0 and the
    # sampled loss is the exact softmax over the catalogue (value and gradient)
    sampled, full = _model(objective="sampled", n_negatives=200_000), _model(mask_history=False)
    window, target = _batch()
    item_log_prob = torch.log_softmax(0.5 * torch.randn(N_ITEMS, dtype=torch.float64), 0)
    got = sampled.loss(
        window, target, item_log_prob=item_log_prob, generator=torch.Generator().manual_seed(0)
    )
    expected = full.loss(window, target)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    got.sum().backward()
    expected.sum().backward()
    for ours, exact in zip(sampled.parameters(), full.parameters(), strict=True):
        if exact.grad is not None:
            torch.testing.assert_close(ours.grad, exact.grad, rtol=1e-8, atol=1e-9)


def test_windows_from_csr_keeps_the_last_items_of_each_row():
    indptr = np.array([0, 0, 3, 10])
    items = np.arange(10)
    window = windows_from_csr(indptr, items, history=4, pad=99).numpy()
    # oldest first, right-aligned: the most recent watch is always the last column
    assert window.tolist() == [[99, 99, 99, 99], [99, 0, 1, 2], [6, 7, 8, 9]]


def test_scorer_protocol_gives_the_catalogue_scores():
    model = _model()
    scores = model.float().score(np.array([0, 1]), (np.array([0, 2, 3]), np.array([4, 5, 6])))
    assert scores.shape == (2, N_ITEMS) and np.isfinite(scores).all()


def test_ranking_model_maps_features_to_one_logit_per_row():
    model = RankingModel(RankingConfig(dim=8, n_dense=5))
    logits = model(torch.randn(7, 8), torch.randn(7, 8), torch.randn(7, 5))
    assert logits.shape == (7,)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CandidateConfig(n_items=0), "n_items = 0"),
        (lambda: CandidateConfig(n_items=5, objective="neg"), "objective = 'neg' is not one of"),
        (lambda: CandidateConfig(n_items=5, model="rnn"), "model = 'rnn' is not one of"),
        (lambda: CandidateConfig(n_items=5, dim=10, heads=3), "multiple of heads = 3"),
        (lambda: CandidateConfig(n_items=5, dropout=1.0), "dropout = 1.0"),
        (lambda: RankingConfig(dim=4, n_dense=2, loss="mse"), "loss = 'mse'"),
    ],
)
def test_bad_model_configuration_is_named(build, message):
    with pytest.raises(CrossentError, match=message):
        build()


def test_masked_softmax_gradients_are_bitwise_reproducible():
    # many rows sharing few items: the gathered rows' gradients are summed per item, and that
    # sum must not depend on the run (two seeded trainings must give the same model)
    model = CandidateModel(CandidateConfig(n_items=30, model="bag", dim=16, hidden=16, history=50))
    generator = torch.Generator().manual_seed(0)
    window = torch.randint(0, 31, (512, 50), generator=generator)
    target = torch.randint(0, 30, (512,), generator=generator)
    grads = []
    for _ in range(3):
        model.zero_grad()
        model.loss(window, target).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    for again in grads[1:]:
        for first, second in zip(grads[0], again, strict=True):
            assert torch.equal(first, second)


def test_configs_saved_before_the_sequence_model_load_as_bag_models():
    old = {"n_items": 9, "dim": 4, "hidden": 8, "history": 3, "negatives": "sampled",
           "n_sampled": 7, "mask_history": True}
    config = CandidateConfig.from_dict(old)
    assert (config.model, config.objective, config.n_negatives) == ("bag", "sampled", 7)
    with pytest.raises(CrossentError, match="unknown fields"):
        CandidateConfig.from_dict({"n_items": 9, "colour": "red"})


def test_an_unknown_encoder_block_is_named_with_its_choices():
    from crossent.recsys.models.networks import CandidateShape

    with pytest.raises(CrossentError, match=r"block = 'post-norm'.*sasrec.*pre-norm"):
        CandidateShape(block="post-norm")  # type: ignore[arg-type]
    with pytest.raises(CrossentError, match="item_bias"):
        CandidateShape(item_bias="yes")  # type: ignore[arg-type]


def _members() -> tuple[CandidateModel, CandidateModel]:
    torch.manual_seed(3)
    config = CandidateConfig(n_items=N_ITEMS, dim=8, hidden=16, history=5, blocks=1)
    sequence, bag = CandidateModel(config), CandidateModel(bag_companion(config))
    with torch.no_grad():
        bag.item_bias.normal_()
    return sequence.eval(), bag.eval()


@pytest.mark.parametrize("weight", [0.25, 0.5, 0.9])
def test_a_blend_is_the_weighted_mean_of_its_members_log_probabilities(weight):
    sequence, bag = _members()
    blend = BlendedCandidate.of(sequence, bag, weight).eval()
    window, _ = _batch()
    with torch.no_grad():
        seq_logits = sequence.encoder.user_states(window) @ sequence.encoder.item_in.weight[
            :N_ITEMS].T
        bag_logits = _reference_user(bag, window) @ bag.item_out.T + bag.item_bias
        blended = blend.scores(window)
    # from the definition: log p = (1 - w) log p_seq + w log p_bag, renormalised
    log_p = (1 - weight) * np.asarray(torch.log_softmax(seq_logits.double(), 1)) + weight * (
        np.asarray(torch.log_softmax(bag_logits.double(), 1))
    )
    expected = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    got = np.asarray(torch.log_softmax(blended.double(), 1))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # what recommending encodes (the last position only) is the same vector
    torch.testing.assert_close(blend.inference_vector(window), blend.user_vector(window))


def test_a_blend_is_saved_not_trained_and_its_bag_must_be_the_companion():
    sequence, bag = _members()
    blend = BlendedCandidate.of(sequence, bag, 0.5)
    window, target = _batch()
    with pytest.raises(CrossentError, match="a blend is not trained"):
        blend.loss(window, target)
    other = CandidateModel(replace(bag.config, hidden=32))
    with pytest.raises(CrossentError, match="is not the companion of the sequence model"):
        BlendedCandidate.of(sequence, other, 0.5)


@pytest.mark.parametrize(("options", "message"), [
    ({"model": "blend", "bag_weight": 0.0}, "bag_weight = 0.0 is outside (0, 1)"),
    ({"model": "blend", "bag_weight": 1.0}, "bag_weight = 1.0 is outside (0, 1)"),
    ({"model": "sequence", "bag_weight": 0.5}, "bag_weight needs model = 'blend'"),
])
def test_the_bag_weight_rules_are_named(options, message):
    with pytest.raises(CrossentError, match=re.escape(message)):
        CandidateConfig(n_items=N_ITEMS, **options)
