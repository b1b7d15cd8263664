"""The sequence candidate model and the four objectives, against plain-torch definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.objectives import IGNORE, gbce_beta
from crossent.recsys.models.sequence import example_lengths, leading_padding, sequence_examples

N_ITEMS = 30
LENGTH = 6


def _model(**options) -> CandidateModel:
    torch.manual_seed(0)
    config = CandidateConfig(
        n_items=N_ITEMS, model="sequence", dim=8, history=LENGTH, heads=2, **options
    )
    model = CandidateModel(config)
    with torch.no_grad():
        model.item_bias.normal_()
    return model.double().eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Right-aligned windows with padding in front, and each position's next watch."""
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randint(0, N_ITEMS, (5, LENGTH), generator=generator)
    targets = torch.randint(0, N_ITEMS, (5, LENGTH), generator=generator)
    inputs[0, :4] = N_ITEMS  # a short history
    targets[0, :4] = IGNORE
    inputs[1, 3] = inputs[1, 1]  # a repeat inside the window
    targets[2, 4] = inputs[2, 2]  # a re-watch: the target was watched before
    return inputs, targets


def test_examples_cover_every_watch_after_the_first_once_from_strictly_earlier_watches():
    sequences = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [7], [2, 7, 1], [8, 2, 8, 1, 8, 2, 8, 4]]
    user = np.concatenate([[u] * len(s) for u, s in enumerate(sequences)])
    item = np.concatenate(sequences)
    order = np.concatenate([np.arange(len(s)) for s in sequences])
    watches = Interactions.from_arrays(user, item, timestamp=order)
    inputs, targets = sequence_examples(watches, history=4)
    original = watches.item_ids  # contiguous id -> original id
    pairs = []  # (target, the real inputs up to its position), original ids
    for row_inputs, row_targets in zip(inputs.tolist(), targets.tolist(), strict=True):
        context: list[int] = []
        for given, target in zip(row_inputs, row_targets, strict=True):
            if given == watches.n_items:  # padding: no target
                assert target == IGNORE and not context
                continue
            context.append(int(original[given]))
            pairs.append((int(original[target]), list(context)))
    expected_targets = [s[p] for s in sequences for p in range(1, len(s))]
    assert sorted(t for t, _ in pairs) == sorted(expected_targets)
    # each context is a run of consecutive watches of one user ending right before the target
    for target, context in pairs:
        assert any(
            s[p] == target and s[p - len(context) : p] == context
            for s in sequences for p in range(len(context), len(s))
        )


def test_padding_does_not_change_the_states_of_real_watches():
    model = _model()
    window = torch.tensor([[N_ITEMS, N_ITEMS, 4, 9, 2, 7]])
    padded = model.user_vector(window)
    # the same watches without the padding, with the same (right-aligned) positions
    trimmed = model.encoder(window[:, 2:])[:, -1]
    torch.testing.assert_close(padded, trimmed)


def test_states_are_causal():
    model = _model()
    inputs, _ = _batch()
    states = model.states(inputs)
    changed = inputs.clone()
    changed[:, -1] = (changed[:, -1] + 1) % N_ITEMS
    torch.testing.assert_close(model.states(changed)[:, :-1], states[:, :-1])
    assert not torch.allclose(model.states(changed)[:, -1], states[:, -1])


def _logits(model: CandidateModel, inputs: torch.Tensor) -> torch.Tensor:
    return model.states(inputs) @ model.output_table().T + model.item_bias  # (B, L, V)


@pytest.mark.parametrize("tied", [False, True])
def test_full_softmax_is_torch_cross_entropy_at_every_real_position(tied: bool):
    model = _model(mask_history=False, tie_embeddings=tied)
    if tied:  # the output table is the input embeddings
        assert torch.equal(model.output_table(), model.encoder.item_in.weight[:N_ITEMS])
    inputs, targets = _batch()
    expected = F.cross_entropy(
        _logits(model, inputs).transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
    )
    got = model.loss(inputs, targets)
    torch.testing.assert_close(got, expected)
    assert torch.all(got[targets == IGNORE] == 0)


def test_masked_softmax_leaves_earlier_watches_out_of_each_position():
    model = _model(mask_history=True)
    inputs, targets = _batch()
    logits = _logits(model, inputs)
    for b in range(len(inputs)):
        for t in range(LENGTH):
            for item in inputs[b, : t + 1].tolist():
                if item < N_ITEMS and item != targets[b, t]:
                    logits[b, t, item] = -math.inf
    expected = F.cross_entropy(
        logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
    )
    got = model.loss(inputs, targets)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bce_is_the_positive_and_one_uniform_negative_that_is_not_the_target():
    model = _model(objective="bce")
    inputs, targets = _batch()
    got = model.loss(inputs, targets, generator=torch.Generator().manual_seed(5))
    # the same draws: uniform over the 29 other items, shifted past the target
    seeded = torch.Generator().manual_seed(5)
    draws = torch.randint(0, N_ITEMS - 1, targets.shape, generator=seeded)
    safe = targets.clamp_min(0)
    negative = draws + (draws >= safe).long()
    assert not torch.any(negative == safe)
    logits = _logits(model, inputs)
    positive_score = logits.gather(2, safe[..., None])[..., 0]
    negative_score = logits.gather(2, negative[..., None])[..., 0]
    expected = -F.logsigmoid(positive_score) - F.logsigmoid(-negative_score)
    expected = torch.where(targets == IGNORE, 0.0, expected)
    torch.testing.assert_close(got, expected)


def test_gbce_raises_the_positive_probability_to_beta_over_k_uniform_negatives():
    model = _model(objective="gbce", n_negatives=7, gbce_t=0.75)
    inputs, targets = _batch()
    got = model.loss(inputs, targets, generator=torch.Generator().manual_seed(6))
    seeded = torch.Generator().manual_seed(6)
    negatives = torch.randint(0, N_ITEMS, (len(inputs), 7), generator=seeded)
    alpha = 7 / (N_ITEMS - 1)
    beta = alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha)
    logits = _logits(model, inputs)
    expected = torch.zeros_like(got)
    for b in range(len(inputs)):
        for t in range(LENGTH):
            y = int(targets[b, t])
            if y == IGNORE:
                continue
            # -log(sigmoid(s_y) ** beta) - sum over the negatives other than y
            loss = -torch.log(torch.sigmoid(logits[b, t, y]) ** beta)
            for n in negatives[b].tolist():
                if n != y:
                    loss = loss - torch.log(1 - torch.sigmoid(logits[b, t, n]))
            expected[b, t] = loss
    torch.testing.assert_close(got, expected)


def test_gbce_beta_matches_petrov_and_macdonald():
    # alpha = k / (V - 1); beta = alpha (t (1 - 1/alpha) + 1/alpha)
    assert gbce_beta(1, 3, 0.75) == pytest.approx(0.625)  # alpha = 1/2: 0.5 (0.75 (-1) + 2)
    assert gbce_beta(10, 101, 0.0) == pytest.approx(1.0)  # t = 0: plain BCE
    assert gbce_beta(10, 101, 1.0) == pytest.approx(0.1)  # t = 1: beta = alpha


def test_sampled_softmax_with_every_item_drawn_is_the_full_softmax():
    sampled = _model(objective="sampled", n_negatives=100_000)
    full = _model(mask_history=False)
    inputs, targets = _batch()
    item_log_prob = torch.log_softmax(0.3 * torch.randn(N_ITEMS, dtype=torch.float64), 0)
    got = sampled.loss(
        inputs, targets, item_log_prob=item_log_prob, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(got, full.loss(inputs, targets), rtol=1e-8, atol=1e-8)


def _short_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Every window starts with two padding columns, so the training step drops them."""
    inputs, targets = _batch()
    inputs[:, :2], targets[:, :2] = N_ITEMS, IGNORE
    return inputs, targets


def test_leading_padding_counts_the_columns_that_are_padding_in_every_row():
    inputs, _ = _short_batch()
    assert leading_padding(inputs, N_ITEMS) == 2
    assert leading_padding(_batch()[0], N_ITEMS) == 0
    assert leading_padding(torch.full((2, 4), N_ITEMS), N_ITEMS) == 3  # one column is kept
    lengths = example_lengths(inputs, N_ITEMS)
    assert lengths.tolist() == [int((row != N_ITEMS).sum()) for row in inputs]


@pytest.mark.parametrize("masked", [False, True])
def test_dropping_shared_padding_leaves_every_loss_unchanged(masked: bool):
    model = _model(mask_history=masked)
    inputs, targets = _short_batch()
    logits = _logits(model, inputs)  # from the whole window, padding included
    if masked:  # each position's earlier watches, other than its target, leave the softmax
        for row in range(len(inputs)):
            for query in range(LENGTH):
                for key in range(query + 1):
                    item = int(inputs[row, key])
                    if item < N_ITEMS and item != int(targets[row, query]):
                        logits[row, query, item] = -math.inf
    expected = F.cross_entropy(
        logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
    )
    got = model.loss(inputs, targets)
    assert got.shape == targets.shape
    torch.testing.assert_close(got, expected)
    assert torch.all(got[:, :2] == 0)


def test_user_vectors_of_many_windows_are_the_last_states_of_one_forward_pass(monkeypatch):
    """Inference encodes windows in length-sorted groups, each cut to its longest history;
    every user vector must still be the full forward pass's last state, row for row."""
    import crossent.recsys.models.sequence as sequence

    monkeypatch.setattr(sequence, "INFERENCE_ROWS", 3)  # several groups from 11 rows
    model = _model()
    generator = torch.Generator().manual_seed(5)
    window = torch.randint(0, N_ITEMS, (11, LENGTH), generator=generator)
    for row, length in enumerate([0, 1, 6, 2, 6, 3, 1, 5, 4, 0, 2]):
        window[row, : LENGTH - length] = N_ITEMS  # right-aligned histories of mixed lengths
    expected = model.encoder(window)[:, -1]
    torch.testing.assert_close(model.user_vector(window), expected)
    model.train()  # training mode: the plain forward pass (dropout would differ per group)
    assert model.user_vector(window).shape == expected.shape
