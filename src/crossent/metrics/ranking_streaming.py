"""Streaming ranking metrics: accumulate hit/recall/NDCG/MRR over row chunks of a score matrix.

Ranking metrics are means over users, so the state is one sum per metric and a row count;
merging adds them and the result equals one call of
:func:`crossent.metrics.ranking_metrics` on all rows (exact, no approximation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.metrics.ranking import ExcludeInput, ranking_metrics


def _check_same(name: str, mine: Any, theirs: Any) -> None:
    if mine != theirs:
        raise CrossentError(f"cannot merge accumulators with different {name}: {mine} vs {theirs}")


class RankingMetrics:
    """Streaming :func:`crossent.metrics.ranking_metrics` over row chunks of a score matrix.

    ``update(scores_chunk, target_chunk, exclude=exclude_chunk)`` with any number of rows;
    ``result()`` gives ``{"hit@k": ..., "recall@k": ..., "ndcg@k": ..., "mrr": ...}`` averaged
    over all rows seen, exactly as one call on the whole matrix.
    """

    def __init__(self, ks: Sequence[int] = (10,)):
        self.ks = tuple(check_int(k, "k", low=1) for k in ks)
        if not self.ks:
            raise CrossentError("ks is empty; pass at least one cut-off k")
        self.sums: dict[str, float] = {}
        self.rows = 0

    def update(self, scores: ArrayLike, target: ArrayLike, *, exclude: ExcludeInput = None) -> None:
        batch = ranking_metrics(scores, target, ks=self.ks, exclude=exclude, reduction="sum")
        for name, value in batch.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.rows += int(np.shape(scores)[0])

    def merge(self, other: RankingMetrics) -> RankingMetrics:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        _check_same("ks", self.ks, other.ks)
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.rows += other.rows
        return self

    def result(self) -> dict[str, float]:
        if self.rows == 0:
            raise CrossentError("no rows were added; nothing to score")
        return {name: value / self.rows for name, value in self.sums.items()}


class _OneRankingMetric(RankingMetrics):
    key = ""

    def __init__(self, k: int = 10):
        super().__init__((k,))
        self.k = k

    def result(self) -> float:  # type: ignore[override]
        return super().result()[self.key.format(k=self.k)]


class HitRateAtK(_OneRankingMetric):
    """Streaming :func:`crossent.metrics.hit_rate_at_k`."""

    key = "hit@{k}"


class RecallAtK(_OneRankingMetric):
    """Streaming :func:`crossent.metrics.recall_at_k`."""

    key = "recall@{k}"


class NdcgAtK(_OneRankingMetric):
    """Streaming :func:`crossent.metrics.ndcg_at_k`."""

    key = "ndcg@{k}"


class Mrr(_OneRankingMetric):
    """Streaming :func:`crossent.metrics.mrr` (over the whole catalogue)."""

    key = "mrr"

    def __init__(self) -> None:
        super().__init__(1)
