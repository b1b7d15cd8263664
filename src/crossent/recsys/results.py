"""What a recommender run produced: :class:`RunResult`, shared by the training pipelines,
the report and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossent.recsys.data import Interactions, Split
from crossent.recsys.models import CandidateModel, RankingModel
from crossent.recsys.train import TrainHistory

#: One line stating the retrieval protocol, printed under every retrieval table.
PROTOCOL = (
    "protocol: time-ordered leave-last-out (test = each user's last watch), full ranking over "
    "the catalogue, already-watched items excluded"
)


@dataclass
class RunResult:
    """Everything a run produced: models, histories and metrics (name -> metric -> value).

    Attributes:
        retrieval: test HR/NDCG/MRR of the model and every baseline, by name.
        cross_entropy: the model's test next-watch cross-entropy (and, on simulated data, the
            Bayes limit; see :func:`crossent.recsys.next_watch.retrieval_cross_entropy`).
        baseline_cross_entropy: the same for the other trained candidate models (the bag).
        objectives: one row per training objective of the same model (``compare_objectives``):
            test metrics, ``test_bits``, ``train_seconds`` and ``peak_bytes``.
        info: the chosen EASE λ (``ease_lambda``) and its validation grid, and more.
    """

    watches: Interactions
    split: Split
    candidate: CandidateModel
    ranking: RankingModel | None = None
    #: the candidate generator that makes the ranking features, when not ``candidate``
    ranking_candidate: CandidateModel | None = None
    histories: dict[str, TrainHistory] = field(default_factory=dict)
    retrieval: dict[str, dict[str, float]] = field(default_factory=dict)
    cross_entropy: dict[str, float] = field(default_factory=dict)
    baseline_cross_entropy: dict[str, dict[str, float]] = field(default_factory=dict)
    objectives: dict[str, dict[str, float]] = field(default_factory=dict)
    ranking_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    ranking_test: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
    #: the test P(watch) before calibration, when the model's calibration is not the identity
    ranking_test_uncalibrated: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
