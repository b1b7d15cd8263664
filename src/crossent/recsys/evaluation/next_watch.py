"""The next watch's cross-entropy under a candidate model's softmax over unwatched videos.

The evaluation's probabilistic counterpart of HR@K and NDCG@K: ``-log q(target)``, where
``q`` is the model's softmax over the catalogue without the user's earlier watches (evaluation
excludes them from the ranking too). On the simulated log, where the true next-watch
distribution ``p`` is known, it also gives the Bayes limit (the entropy of ``p``, the lowest
expected cross-entropy any model can reach) and the model's exact expected cross-entropy
``H(p, q)``, free of sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from crossent.losses import cross_entropy
from crossent.recsys.data.interactions import Split, Stage, csr_rows
from crossent.recsys.data.simulate import SimulatedWatchLog
from crossent.recsys.models.networks import CandidateModel, windows_from_csr

LN2 = math.log(2.0)

#: The true next-watch log-probabilities ``(B, n_items)`` of a batch of users, when known.
TruthFn = Callable[[np.ndarray], torch.Tensor]



def simulated_truth(log: SimulatedWatchLog) -> TruthFn:
    """The true next-watch log-probabilities ``(B, n_items)`` of each user's test watch."""
    lengths = (log.watches >= 0).sum(1).numpy()

    def truth(users: np.ndarray) -> torch.Tensor:
        # test target = each user's last watch; its distribution depends on the earlier ones
        return log.next_watch_log_probs(users, lengths[users] - 1).double()

    return truth


class TruthScorer:
    """The simulator's true next-watch log-probabilities as a retrieval scorer (test stage):
    the oracle, what a perfect model ranks."""

    def __init__(self, truth: TruthFn) -> None:
        self.truth = truth

    def score(self, users: np.ndarray, watched: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        # watched videos have log-probability -inf; the evaluator excludes them anyway
        return self.truth(users).clamp_min(-1e30).numpy()


#: Stands in for -inf on masked logits: exp() of it is 0, yet it is finite for the checks.
_MASKED = -1e30


def retrieval_cross_entropy(
    model: CandidateModel,
    split: Split,
    stage: Stage = "test",
    *,
    users: np.ndarray | None = None,
    truth: TruthFn | None = None,
    cells_per_batch: int = 2**22,
) -> dict[str, float]:
    """Cross-entropy of the ``stage`` watch under the model's softmax over unwatched videos.

    The past watches (except the target itself, should it be a re-watch) are removed from
    the softmax, as the retrieval metrics remove them from the ranking. With ``truth`` (the
    true next-watch log-probabilities, e.g. from the simulator) the result also has the
    Bayes limit — the mean entropy of the truth, the lowest expected cross-entropy any model
    can reach — the truth's own cross-entropy on the drawn targets, and the exact expected
    cross-entropy ``H(p, q) = -sum_j p_j log q_j`` of the model (free of sampling noise).

    Returns:
        ``{"nats", "bits", "users"}`` and with ``truth`` also ``"bayes_nats"``,
        ``"truth_nats"``, ``"expected_nats"`` and their ``"_bits"`` versions.
    """
    users = split.users(stage) if users is None else np.asarray(users, dtype=np.int64)
    target = torch.from_numpy(split.target(stage)[users])
    indptr, items = split.watched(stage)
    batch = max(1, cells_per_batch // split.n_items)
    sums = {"nats": 0.0, "bayes_nats": 0.0, "truth_nats": 0.0, "expected_nats": 0.0}
    with torch.no_grad():
        for start in range(0, len(users), batch):
            rows = users[start : start + batch]
            row_target = target[start : start + batch]
            hist_indptr, hist_items = csr_rows(indptr, items, rows)
            window = windows_from_csr(
                hist_indptr, hist_items, model.config.history, model.config.n_items
            )
            logits = model.scores(window)  # (B, V)
            seen_rows = torch.from_numpy(np.repeat(np.arange(len(rows)), np.diff(hist_indptr)))
            seen_items = torch.from_numpy(hist_items.astype(np.int64))
            not_target = seen_items != row_target[seen_rows]
            logits[seen_rows[not_target], seen_items[not_target]] = _MASKED
            sums["nats"] += float(cross_entropy(logits, row_target, reduction="sum"))
            if truth is not None:
                true_log = truth(rows)  # (B, V)
                true_prob = true_log.exp()
                model_log = torch.log_softmax(logits.double(), 1)
                support = true_prob > 0
                sums["bayes_nats"] -= float(torch.where(support, true_prob * true_log, 0).sum())
                sums["truth_nats"] -= float(true_log.gather(1, row_target[:, None]).sum())
                sums["expected_nats"] -= float(torch.where(support, true_prob * model_log, 0).sum())
    keys = ("nats", "bayes_nats", "truth_nats", "expected_nats") if truth else ("nats",)
    result = {"users": float(len(users))}
    for key in keys:
        result[key] = sums[key] / max(len(users), 1)
        result[key.replace("nats", "bits")] = result[key] / LN2
    return result
