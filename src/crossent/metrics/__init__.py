"""Metrics for probabilistic predictions and rankings (NumPy; no torch needed).

Functional forms (``log_loss(probs, target, ...)``: predictions first, then target) and, in
:mod:`crossent.metrics.streaming`, mergeable accumulators built on them for data larger than
memory.
"""

from crossent.metrics import streaming
from crossent.metrics.calibration import (
    ReliabilityCurve,
    calibration_ratio,
    expected_calibration_error,
    reliability_curve,
)
from crossent.metrics.probabilistic import (
    brier_score,
    entropy,
    log_loss,
    normalized_entropy,
    perplexity,
    probs_from_logits,
)
from crossent.metrics.ranking import (
    hit_rate_at_k,
    mrr,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
    roc_auc,
)

__all__ = [
    "ReliabilityCurve",
    "brier_score",
    "calibration_ratio",
    "entropy",
    "expected_calibration_error",
    "hit_rate_at_k",
    "log_loss",
    "mrr",
    "ndcg_at_k",
    "normalized_entropy",
    "perplexity",
    "probs_from_logits",
    "ranking_metrics",
    "recall_at_k",
    "reliability_curve",
    "roc_auc",
    "streaming",
]
