r"""Training objectives of the candidate models, each built on crossent's own losses.

Every objective scores positions ``states (B, Q, d)`` against the output table
``weight (V, d)`` and ``bias (V,)`` (logit ``s_j = h \cdot w_j + b_j``) and returns the
per-position loss ``(B, Q)`` in nats, 0 where the target is :data:`IGNORE` (padding). The bag
model has one position per example (``Q = 1``); the sequence model one per watch.

- :func:`full_softmax`: the exact softmax over the whole catalogue (:func:`linear_cross_entropy`,
  the ``(B Q, V)`` logits never exist).
- :func:`sampled_softmax`: ``k`` negatives shared by the batch, drawn from the unigram ``Q``,
  with the log Q correction (Yi et al. 2019).
- :func:`in_batch_softmax`: the batch's own targets as negatives, log Q corrected.
- :func:`bce_one_negative`: one uniform negative per position (SASRec, Kang & McAuley 2018).
- :func:`gbce`: ``k`` uniform negatives and the positive's probability raised to ``beta``
  (gSASRec, Petrov & Macdonald 2023).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from crossent.errors import CrossentError
from crossent.losses import binary_cross_entropy
from crossent.losses.linear import linear_cross_entropy

#: Target of a padded position: the ``ignore_index`` of crossent's losses.
IGNORE = -100

#: gSASRec's default calibration parameter ``t`` (Petrov & Macdonald 2023).
GBCE_T = 0.75


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-x))`` for ``x > 0``, accurate at both ends (Mächler's log1mexp)."""
    x = x.clamp_min(1e-6)  # keeps both branches finite, so torch.where has no NaN gradient
    return torch.where(x < math.log(2.0), torch.log(-torch.expm1(-x)), torch.log1p(-torch.exp(-x)))


def full_softmax(
    states: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    r"""Exact softmax cross-entropy over the catalogue, ``(B, Q)``.

    .. math::
        \ell_{bq} = -s_{y} + \log \sum_{j=1}^{V} e^{s_j}

    Padded positions (target :data:`IGNORE`) are skipped through ``ignore_index`` and give 0.
    """
    batch, length, dim = states.shape
    per_row = linear_cross_entropy(
        states.reshape(batch * length, dim), weight, targets.reshape(-1), bias=bias,
        ignore_index=IGNORE, reduction="none",
    )
    return per_row.view(batch, length)


def mask_seen(
    states: torch.Tensor,
    targets: torch.Tensor,
    full_loss: torch.Tensor,
    keys: torch.Tensor,
    keep: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    r"""Turn :func:`full_softmax` into the softmax without the already-watched items.

    ``keys (B, K)`` item ids, ``keep (B, Q, K)`` which of them to leave out of position ``q``'s
    normaliser (distinct items, never the target itself). With ``S`` that set,

    .. math::
        \ell^{\text{masked}}
        = \ell + \log\Big(1 - \sum_{h \in S} \operatorname{softmax}(s)_h\Big)
        = \ell + \operatorname{log1mexp}\big(\operatorname{lse}(s)
            - \operatorname{lse}_{h \in S}(s_h)\big)

    with ``lse(s) = ell + s_y`` recovered from the full loss.
    """
    safe_keys = torch.where(keys < weight.shape[0], keys, 0)
    # rows gathered by F.embedding, not tensor[index]: the backward of advanced indexing adds
    # repeated rows in a varying order on the CPU, so two seeded runs would drift apart
    key_out = F.embedding(safe_keys, weight)  # (B, K, d)
    key_bias = F.embedding(safe_keys, bias.unsqueeze(1)).squeeze(2)  # (B, K)
    key_scores = torch.einsum("bqd,bkd->bqk", states, key_out) + key_bias[:, None, :]
    key_scores = torch.where(keep, key_scores, -1e4)  # finite: no inf - inf
    safe_targets = targets.clamp_min(0)
    target_scores = (states * F.embedding(safe_targets, weight)).sum(2) + F.embedding(
        safe_targets, bias.unsqueeze(1)
    ).squeeze(2)  # (B, Q)
    full_lse = full_loss + target_scores
    masked = full_loss + log1mexp(full_lse - torch.logsumexp(key_scores, 2))
    return torch.where(targets != IGNORE, masked, 0.0)


def _log_q_softmax(
    states: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    drawn: torch.Tensor,
    item_log_prob: torch.Tensor,
) -> torch.Tensor:
    """Softmax over the distinct ``drawn`` columns with logits corrected by ``-log Q``."""
    valid = targets != IGNORE
    columns, inverse = torch.unique(torch.cat([targets[valid], drawn]), return_inverse=True)
    # Q: the probability that an item is among the columns, 1 - (1 - p)^draws
    draws = len(inverse)
    log_q = torch.log(-torch.expm1(draws * torch.log1p(-item_log_prob[columns].exp())))
    local = torch.full_like(targets, IGNORE)
    local[valid] = inverse[: int(valid.sum())]
    batch, length, dim = states.shape
    per_row = linear_cross_entropy(
        states.reshape(-1, dim), weight[columns], local.reshape(-1), bias=bias[columns],
        logit_bias=-log_q, ignore_index=IGNORE, reduction="none",
    )
    return per_row.view(batch, length)


def sampled_softmax(
    states: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    item_log_prob: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Sampled softmax with ``k`` shared unigram negatives and the log Q correction.

    The columns ``C`` are the batch's targets plus ``k`` draws from the unigram distribution
    ``p`` (with replacement), made distinct; ``n`` draws in all put item ``j`` in ``C`` with
    probability ``Q_j = 1 - (1 - p_j)^n``, and every logit is corrected by ``-log Q_j``:

    .. math::
        \ell = -(s_y - \log Q_y) + \log \sum_{j \in C} e^{s_j - \log Q_j}

    References:
        Yi et al. Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
        Recommendations. RecSys 2019.
    """
    drawn = torch.multinomial(item_log_prob.exp(), k, replacement=True, generator=generator)
    return _log_q_softmax(states, targets, weight, bias, drawn, item_log_prob)


def in_batch_softmax(
    states: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    item_log_prob: torch.Tensor,
) -> torch.Tensor:
    r"""Softmax over the batch's distinct targets, log Q corrected as :func:`sampled_softmax`."""
    drawn = targets[:0].reshape(-1)
    return _log_q_softmax(states, targets, weight, bias, drawn, item_log_prob)


def gbce_beta(k: int, n_items: int, t: float = GBCE_T) -> float:
    r"""gSASRec's power ``beta`` for ``k`` uniform negatives out of ``V = n_items`` items.

    .. math::
        \alpha = \frac{k}{V - 1}, \qquad
        \beta = \alpha \left(t \left(1 - \frac{1}{\alpha}\right) + \frac{1}{\alpha}\right)

    ``t = 0`` gives ``beta = 1`` (plain BCE); ``t = 1`` gives ``beta = alpha``, the value whose
    gBCE optimum is the full softmax's (Petrov & Macdonald 2023, Theorem 4.1).
    """
    if n_items < 2:
        raise CrossentError(f"gBCE needs a catalogue of >= 2 items; n_items = {n_items}")
    alpha = k / (n_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def _uniform_other(targets: torch.Tensor, shape: tuple[int, ...], n_items: int,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Uniform draws from the ``n_items - 1`` items other than ``targets`` (broadcast)."""
    draws = torch.randint(0, n_items - 1, shape, generator=generator)
    return draws + (draws >= targets).long()  # skip the target: uniform over the others


def bce_one_negative(
    states: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Binary cross-entropy of the positive and one uniform negative ``n`` per position.

    .. math::
        \ell = -\log \sigma(s_y) - \log\big(1 - \sigma(s_n)\big),
        \qquad n \sim \mathcal{U}(\{1..V\} \setminus \{y\})

    References:
        Kang, McAuley. Self-Attentive Sequential Recommendation. ICDM 2018.
    """
    n_items = weight.shape[0]
    safe = targets.clamp_min(0)
    negative = _uniform_other(safe, tuple(targets.shape), n_items, generator)  # (B, Q)
    pair = torch.stack([safe, negative], 2)  # (B, Q, 2)
    scores = (states[:, :, None, :] * F.embedding(pair, weight)).sum(3) + F.embedding(
        pair, bias.unsqueeze(1)
    ).squeeze(3)  # (B, Q, 2)
    labels = torch.tensor([1.0, 0.0]).expand_as(scores)
    per_pair = binary_cross_entropy(scores, labels, reduction="none")
    return torch.where(targets != IGNORE, per_pair.sum(2), 0.0)


def gbce(
    states: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    k: int,
    t: float = GBCE_T,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Generalised binary cross-entropy (gBCE) with ``k`` uniform negatives per sequence.

    .. math::
        \ell = -\log \sigma(s_y)^{\beta} - \sum_{n \in N} \log\big(1 - \sigma(s_n)\big)
        = \beta\,\mathrm{bce}(s_y, 1) + \sum_{n \in N} \mathrm{bce}(s_n, 0)

    with ``beta`` from :func:`gbce_beta` (``alpha = k / (V - 1)``, default ``t = 0.75``). The
    ``k`` negatives are uniform over the catalogue and shared by the positions of one sequence
    (``(B, k)`` draws keep the memory at ``B k d``, not ``B Q k d``); a negative equal to a
    position's own target is dropped from that position's sum.

    References:
        Petrov, Macdonald. gSASRec: Reducing Overconfidence in Sequential Recommendation
        Trained with Negative Sampling. RecSys 2023.
    """
    n_items = weight.shape[0]
    beta = gbce_beta(k, n_items, t)
    negatives = torch.randint(0, n_items, (states.shape[0], k), generator=generator)  # (B, k)
    negative_scores = torch.einsum(
        "bqd,bkd->bqk", states, F.embedding(negatives, weight)
    ) + F.embedding(negatives, bias.unsqueeze(1)).squeeze(2)[:, None, :]  # (B, Q, k)
    safe = targets.clamp_min(0)
    positive_scores = (states * F.embedding(safe, weight)).sum(2) + F.embedding(
        safe, bias.unsqueeze(1)
    ).squeeze(2)  # (B, Q)
    positive = binary_cross_entropy(
        positive_scores, torch.ones_like(positive_scores), reduction="none"
    )
    negative = binary_cross_entropy(
        negative_scores, torch.zeros_like(negative_scores), reduction="none"
    )
    negative = torch.where(negatives[:, None, :] == safe[:, :, None], 0.0, negative).sum(2)
    return torch.where(targets != IGNORE, beta * positive + negative, 0.0)
