"""What a recommender run produced: :class:`RunResult`, shared by the training pipelines,
the report and the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from crossent.recsys.data.interactions import Interactions, Split
from crossent.recsys.models.networks import CandidateModel
from crossent.recsys.models.ranker import RankingModel
from crossent.recsys.training.loop import TrainingCurves

#: One line stating the retrieval protocol, printed under every retrieval table.
PROTOCOL = (
    "protocol: time-ordered leave-last-out (test = each user's last watch), full ranking over "
    "the catalogue, already-watched items excluded"
)


_MAPPINGS = (
    "curves", "retrieval", "cross_entropy", "baseline_cross_entropy", "objectives",
    "ranking_metrics", "info",
)


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced: models, training curves and metrics (name -> metric -> value).

    Immutable: each stage of a run returns a new result (:meth:`adding`, :meth:`replacing`)
    instead of filling one in, so what a function returns is all it did. The mapping fields are
    read-only views.

    Attributes:
        retrieval: test HR/NDCG/MRR of the model and every baseline, by name.
        cross_entropy: the model's test next-watch cross-entropy (and, on simulated data, the
            Bayes limit; see :func:`crossent.recsys.evaluation.next_watch.retrieval_cross_entropy`).
        baseline_cross_entropy: the same for the other trained candidate models (the bag).
        objectives: one row per training objective of the same model (``compare_objectives``):
            test metrics, ``test_bits``, ``train_seconds`` and ``peak_bytes``.
        info: the chosen EASE λ (``ease_lambda``) and its validation grid, and more.

    Example:
        >>> from crossent.recsys.data.interactions import Interactions, leave_last_out
        >>> from crossent.recsys.models.networks import CandidateConfig, CandidateModel
        >>> watches = Interactions.from_arrays([0, 0, 0], [0, 1, 2])
        >>> model = CandidateModel(CandidateConfig(n_items=3, dim=4, history=2))
        >>> first = RunResult(watches, leave_last_out(watches), model)
        >>> second = first.adding(info={"ease_lambda": 200.0})
        >>> dict(first.info), dict(second.info)
        ({}, {'ease_lambda': 200.0})
    """

    watches: Interactions
    split: Split
    candidate: CandidateModel
    ranking: RankingModel | None = None
    #: the candidate generator that makes the ranking features, when not ``candidate``
    ranking_candidate: CandidateModel | None = None
    #: the bag model trained beside a sequence model (its baseline, and its blend's member)
    bag: CandidateModel | None = None
    curves: Mapping[str, TrainingCurves] = field(default_factory=dict)
    retrieval: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    cross_entropy: Mapping[str, float] = field(default_factory=dict)
    baseline_cross_entropy: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    objectives: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    ranking_metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    ranking_test: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
    #: the test P(watch) before calibration, when the model's calibration is not the identity
    ranking_test_uncalibrated: np.ndarray | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _MAPPINGS:
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def trained_kind(self) -> str:
        """The kind of the model the cross-entropy and the curves describe: for a saved blend,
        its sequence model (the retrieval table has the blend as ``model`` and the sequence
        model as ``sequence model``)."""
        kind = self.candidate.config.model
        return "sequence" if kind == "blend" else kind

    def adding(self, **parts: Mapping[str, Any]) -> RunResult:
        """A new result with each of ``parts`` merged into the mapping field of its name (its
        entries win)."""
        unknown = sorted(set(parts) - set(_MAPPINGS))
        if unknown:
            raise TypeError(f"RunResult.adding: {unknown} are not mapping fields")
        merged: dict[str, Any] = {
            name: {**getattr(self, name), **part} for name, part in parts.items()
        }
        return dataclasses.replace(self, **merged)

    def replacing(self, **fields: Any) -> RunResult:
        """A new result with ``fields`` replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **fields)
