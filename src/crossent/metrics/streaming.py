"""Mergeable accumulators: score data larger than memory, and combine partial results.

Each accumulator keeps a fixed-size state of sums, built from the same row-level functions as
the functional metrics. ``update(...)`` adds a batch, ``merge(other)`` adds another
accumulator's state into this one (and returns ``self``), ``result()`` gives the metric.
Scoring a file in batches, or its halves on two machines and merging, gives the same numbers
as the functional form on the whole data, up to float summation order, with two documented
exceptions:

- :class:`RocAuc` keeps a fixed histogram of scores, so it is within :meth:`RocAuc.max_error`
  of the exact AUC (see :mod:`crossent.metrics.ranking_streaming`);
- :class:`Calibration` with ``strategy="quantile"`` puts its edges on a fine uniform grid, within
  1/16,384 of the weighted quantiles (see :mod:`crossent.metrics.calibration_streaming`).
  Uniform bins are exact.

``validate=False`` on ``update`` skips the input checks for hot loops whose inputs are known
to be valid (for example when :mod:`crossent.io` has already checked them).

The accumulators live beside the functions they stream: :mod:`.probabilistic_streaming`
(log loss, normalized entropy, perplexity, Brier score, entropy), :mod:`.calibration_streaming`
and :mod:`.ranking_streaming` (ROC AUC, hit rate, recall, NDCG, MRR); this module gathers them.
"""

from __future__ import annotations

from crossent.metrics.calibration_streaming import FINE_BINS as FINE_BINS
from crossent.metrics.calibration_streaming import Calibration
from crossent.metrics.probabilistic_streaming import (
    BrierScore,
    Entropy,
    LogLoss,
    NormalizedEntropy,
    Perplexity,
)
from crossent.metrics.ranking_streaming import AUC_BINS as AUC_BINS
from crossent.metrics.ranking_streaming import AUC_LOGIT_RANGE as AUC_LOGIT_RANGE
from crossent.metrics.ranking_streaming import (
    HitRateAtK,
    Mrr,
    NdcgAtK,
    RankingMetrics,
    RecallAtK,
    RocAuc,
)

__all__ = [
    "BrierScore",
    "Calibration",
    "Entropy",
    "HitRateAtK",
    "LogLoss",
    "Mrr",
    "NdcgAtK",
    "NormalizedEntropy",
    "Perplexity",
    "RankingMetrics",
    "RecallAtK",
    "RocAuc",
]
