"""The watch-prediction recommender: data, baselines, models, training and evaluation.

Submodules: :mod:`~crossent.recsys.data` (the :class:`Interactions` table, filters, the
leave-last-out split), :mod:`~crossent.recsys.loaders` (MovieLens, RecBole, CSV/Parquet),
:mod:`~crossent.recsys.baselines` (most popular, EASE) and :mod:`~crossent.recsys.evaluate`
(full-catalogue retrieval metrics), :mod:`~crossent.recsys.simulate` (the simulated watch
log with known truth), :mod:`~crossent.recsys.models` (candidate generation and ranking),
:mod:`~crossent.recsys.sequence` (the self-attentive history encoder),
:mod:`~crossent.recsys.objectives` (full, sampled, BCE and gBCE training objectives),
:mod:`~crossent.recsys.train` (the training loop), :mod:`~crossent.recsys.ranking_train`
(ranking training and calibration), :mod:`~crossent.recsys.checkpoint` (saving and loading),
:mod:`~crossent.recsys.ranking` (ranking-stage features and metrics),
:mod:`~crossent.recsys.logged_ranking` (ranking examples from a real watch log: positives and
popularity-sampled negatives in time order), :mod:`~crossent.recsys.retrieval` (candidate
generation beside tuned baselines, and the objectives comparison),
:mod:`~crossent.recsys.ranking_stage` (the ranking stage), :mod:`~crossent.recsys.spec` (a
run's frozen, validated :class:`RunSpec`) and :mod:`~crossent.recsys.run` (:func:`run`: a spec
on a watch log or a simulated world, to an immutable :class:`RunResult`);
:mod:`~crossent.recsys.defaults` holds the one definition of the sequence model's and its
training's defaults.

The names below load on first use, so ``crossent.recsys.defaults`` (read by the command line to
show its defaults) imports without torch.
"""


from __future__ import annotations

from typing import TYPE_CHECKING

from crossent._lazy import lazy_names

if TYPE_CHECKING:
    from crossent.recsys.baselines import EASE, MostPopular
    from crossent.recsys.checkpoint import load_checkpoint, save_checkpoint
    from crossent.recsys.data import Interactions, Split, csr_rows, implicit, k_core, leave_last_out
    from crossent.recsys.evaluate import Scorer, evaluate_retrieval, retrieval_metrics
    from crossent.recsys.loaders import (
        load_interactions,
        load_movielens,
        load_recbole,
        load_sequences,
        load_table,
    )
    from crossent.recsys.logged_ranking import LoggedExamples, logged_examples
    from crossent.recsys.models import CandidateConfig, CandidateModel, RankingConfig, RankingModel
    from crossent.recsys.next_watch import retrieval_cross_entropy
    from crossent.recsys.ranking_train import fit_ranking
    from crossent.recsys.results import RunResult
    from crossent.recsys.run import run
    from crossent.recsys.simulate import SimulatedWatchLog, SimulationConfig, simulate
    from crossent.recsys.spec import DataSpec, ModelSpec, ObjectiveSpec, RunSpec, TrainingSpec
    from crossent.recsys.train import TrainConfig, fit_candidate, refit_candidate

# public name -> the submodule that defines it
_LAZY = {
    "CandidateConfig": "crossent.recsys.models",
    "CandidateModel": "crossent.recsys.models",
    "csr_rows": "crossent.recsys.data",
    "DataSpec": "crossent.recsys.spec",
    "ModelSpec": "crossent.recsys.spec",
    "ObjectiveSpec": "crossent.recsys.spec",
    "run": "crossent.recsys.run",
    "RunResult": "crossent.recsys.results",
    "RunSpec": "crossent.recsys.spec",
    "TrainingSpec": "crossent.recsys.spec",
    "EASE": "crossent.recsys.baselines",
    "evaluate_retrieval": "crossent.recsys.evaluate",
    "fit_candidate": "crossent.recsys.train",
    "fit_ranking": "crossent.recsys.ranking_train",
    "implicit": "crossent.recsys.data",
    "Interactions": "crossent.recsys.data",
    "k_core": "crossent.recsys.data",
    "leave_last_out": "crossent.recsys.data",
    "load_checkpoint": "crossent.recsys.checkpoint",
    "load_interactions": "crossent.recsys.loaders",
    "load_movielens": "crossent.recsys.loaders",
    "load_recbole": "crossent.recsys.loaders",
    "load_sequences": "crossent.recsys.loaders",
    "load_table": "crossent.recsys.loaders",
    "logged_examples": "crossent.recsys.logged_ranking",
    "LoggedExamples": "crossent.recsys.logged_ranking",
    "MostPopular": "crossent.recsys.baselines",
    "RankingConfig": "crossent.recsys.models",
    "RankingModel": "crossent.recsys.models",
    "refit_candidate": "crossent.recsys.train",
    "retrieval_cross_entropy": "crossent.recsys.next_watch",
    "retrieval_metrics": "crossent.recsys.evaluate",
    "save_checkpoint": "crossent.recsys.checkpoint",
    "Scorer": "crossent.recsys.evaluate",
    "simulate": "crossent.recsys.simulate",
    "SimulatedWatchLog": "crossent.recsys.simulate",
    "SimulationConfig": "crossent.recsys.simulate",
    "Split": "crossent.recsys.data",
    "TrainConfig": "crossent.recsys.train",
}


__getattr__ = lazy_names("crossent.recsys", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "EASE",
    "CandidateConfig",
    "CandidateModel",
    "DataSpec",
    "Interactions",
    "LoggedExamples",
    "ModelSpec",
    "MostPopular",
    "ObjectiveSpec",
    "RankingConfig",
    "RankingModel",
    "RunResult",
    "RunSpec",
    "Scorer",
    "SimulatedWatchLog",
    "SimulationConfig",
    "Split",
    "TrainConfig",
    "TrainingSpec",
    "csr_rows",
    "evaluate_retrieval",
    "fit_candidate",
    "fit_ranking",
    "implicit",
    "k_core",
    "leave_last_out",
    "load_checkpoint",
    "load_interactions",
    "load_movielens",
    "load_recbole",
    "load_sequences",
    "load_table",
    "logged_examples",
    "refit_candidate",
    "retrieval_cross_entropy",
    "retrieval_metrics",
    "run",
    "save_checkpoint",
    "simulate",
]
