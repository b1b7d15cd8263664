"""The ranking stage's data and evaluation: features of (user, video, context) -> P(watch).

Features come from the trained candidate generator (frozen): the user vector from the last
``history`` watches, the video's output embedding, the retrieval score ``u · v + b`` and the
video bias, plus the training watch count and the impression's context (times shown before,
slot on the page). :func:`evaluate_ranking` gives log loss (nats and bits), normalized
entropy, AUC and calibration, and — when the true probabilities are known — the log loss of
the truth and the model's distance from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from crossent.metrics.calibration import expected_calibration_error
from crossent.metrics.probabilistic import log_loss, normalized_entropy
from crossent.metrics.ranking import roc_auc
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.networks import CandidateModel, windows_from_csr

#: Names of the dense features, in column order.
DENSE_FEATURES = ("retrieval_score", "video_bias", "log_watch_count", "times_shown", "log_slot")


@dataclass(frozen=True, eq=False)
class RankingInputs:
    """Model-ready rows of impressions.

    Attributes:
        user: ``(N, dim)`` user vectors; ``item``: ``(N, dim)`` video vectors.
        dense: ``(N, len(DENSE_FEATURES))`` dense features.
        label: ``(N,)`` 1.0 if watched.
        watch_time: ``(N,)`` watch time (0 if not watched), or ``None``.
        true_prob: ``(N,)`` the true P(watch) where known (simulated data), else ``None``.
    """

    user: torch.Tensor
    item: torch.Tensor
    dense: torch.Tensor
    label: torch.Tensor
    watch_time: torch.Tensor | None = None
    true_prob: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> RankingInputs:
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return RankingInputs(
            self.user[index],
            self.item[index],
            self.dense[index],
            self.label[index],
            None if self.watch_time is None else self.watch_time[index],
            None if self.true_prob is None else self.true_prob[np.asarray(rows)],
        )

    def __len__(self) -> int:
        return len(self.label)


def ranking_inputs(
    candidate: CandidateModel,
    watches: Interactions,
    train: Interactions,
    user: np.ndarray,
    item: np.ndarray,
    label: np.ndarray,
    *,
    times_shown: np.ndarray | None = None,
    slot: np.ndarray | None = None,
    watch_time: np.ndarray | None = None,
    true_prob: np.ndarray | None = None,
) -> RankingInputs:
    """Features of impressions shown after each user's watches in ``watches``.

    Args:
        candidate: the trained candidate generator (used frozen).
        watches: the watch log up to the impressions (its last ``history`` watches per user
            make the user vector); same id space as ``train``.
        train: the rows the candidate model was trained on (for watch counts).
        user, item: ``(N,)`` contiguous ids of each impression.
        label: ``(N,)`` 0/1 watched.
        times_shown, slot: ``(N,)`` context features (zeros if not given).
    """
    indptr, items = watches.sequences()
    window = windows_from_csr(indptr, items, candidate.config.history, candidate.config.n_items)
    counts = np.bincount(train.item, minlength=train.n_items).astype(np.float64)
    return inputs_from_windows(
        candidate,
        window[torch.from_numpy(np.asarray(user, dtype=np.int64))],
        item,
        label,
        counts[np.asarray(item)],
        times_shown=times_shown,
        slot=slot,
        watch_time=watch_time,
        true_prob=true_prob,
    )


def inputs_from_windows(
    candidate: CandidateModel,
    window: torch.Tensor,
    item: np.ndarray,
    label: np.ndarray,
    watch_count: np.ndarray,
    *,
    times_shown: np.ndarray | None = None,
    slot: np.ndarray | None = None,
    watch_time: np.ndarray | None = None,
    true_prob: np.ndarray | None = None,
) -> RankingInputs:
    """Features of rows whose user histories are given as ``(N, history)`` padded windows.

    Args:
        window: each row's recent watches (padded with ``n_items``), making its user vector.
        item: ``(N,)`` contiguous video ids; ``label``: ``(N,)`` 0/1.
        watch_count: ``(N,)`` the video's watch count known at the time (feature
            ``log_watch_count``).
        times_shown, slot: ``(N,)`` context features (zeros if not given).
    """
    n = len(item)
    with torch.no_grad():
        # rows of one user share a window: encode each distinct window once
        distinct, row_of = (
            torch.unique(window, dim=0, return_inverse=True) if n else (window, None)
        )
        user_vectors = (
            torch.cat(
                [
                    candidate.user_vector(distinct[start : start + 8192])
                    for start in range(0, len(distinct), 8192)
                ]
            )[row_of]
            if n
            else torch.zeros(0, candidate.config.dim)
        )  # (N, d)
    return inputs_from_user_vectors(
        candidate,
        user_vectors,
        item,
        label,
        watch_count,
        times_shown=times_shown,
        slot=slot,
        watch_time=watch_time,
        true_prob=true_prob,
    )


def inputs_from_user_vectors(
    candidate: CandidateModel,
    user_vectors: torch.Tensor,
    item: np.ndarray,
    label: np.ndarray,
    watch_count: np.ndarray,
    *,
    times_shown: np.ndarray | None = None,
    slot: np.ndarray | None = None,
    watch_time: np.ndarray | None = None,
    true_prob: np.ndarray | None = None,
) -> RankingInputs:
    """:func:`inputs_from_windows` from each row's ``(N, dim)`` user vector, already encoded
    by ``candidate`` (a server encodes each user once and shares it among its candidates)."""
    n = len(item)
    item_t = torch.from_numpy(np.asarray(item, dtype=np.int64))
    with torch.no_grad():
        item_vectors = candidate.output_table()[item_t]  # (N, d)
        bias = candidate.item_bias[item_t]
        score = (user_vectors * item_vectors).sum(1) + bias
    zeros = np.zeros(n)
    dense = np.stack(
        [
            score.double().numpy(),
            bias.double().numpy(),
            np.log1p(np.asarray(watch_count, dtype=np.float64)),
            zeros if times_shown is None else np.asarray(times_shown, dtype=np.float64),
            zeros if slot is None else np.log1p(np.asarray(slot, dtype=np.float64)),
        ],
        axis=1,
    )  # (N, 5)
    return RankingInputs(
        user=user_vectors,
        item=item_vectors.detach(),
        dense=torch.from_numpy(dense).float(),
        label=torch.from_numpy(np.asarray(label, dtype=np.float32)),
        watch_time=None
        if watch_time is None
        else torch.from_numpy(np.asarray(watch_time, dtype=np.float32)),
        true_prob=None if true_prob is None else np.asarray(true_prob, dtype=np.float64),
    )


def split_rows(
    n: int, *, seed: int = 0, valid: float = 0.1, test: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random (train, valid, test) partition of ``range(n)``."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(n * test), round(n * valid)
    return order[n_test + n_valid :], order[n_test : n_test + n_valid], order[:n_test]


def evaluate_ranking(
    probs: np.ndarray,
    label: np.ndarray,
    *,
    true_prob: np.ndarray | None = None,
    bins: int = 15,
) -> dict[str, float]:
    """Log loss (nats, bits), normalized entropy, AUC and ECE of predicted P(watch).

    With ``true_prob`` also the log loss of the true probabilities on the same labels
    (``"truth_nats"``; the best any model can expect) and the model's gap to it in bits.
    """
    probs = np.asarray(probs, dtype=np.float64)
    label = np.asarray(label).astype(np.int64)
    result = {
        "log_loss_nats": float(log_loss(probs, label)),
        "log_loss_bits": float(log_loss(probs, label, base="bits")),
        "normalized_entropy": float(normalized_entropy(probs, label)),
        "auc": float(roc_auc(probs, label)),
        "ece": float(expected_calibration_error(probs, label, bins=bins)),
        "rows": float(len(label)),
    }
    if true_prob is not None:
        truth = float(log_loss(np.asarray(true_prob, dtype=np.float64), label))
        result["truth_nats"] = truth
        result["truth_bits"] = truth / math.log(2.0)
        result["truth_auc"] = float(roc_auc(true_prob, label))
        result["gap_bits"] = result["log_loss_bits"] - result["truth_bits"]
    return result
