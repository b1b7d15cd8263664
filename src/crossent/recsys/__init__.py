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
:mod:`~crossent.recsys.pipeline` (the ranking stage and whole simulated runs) and
:mod:`~crossent.recsys.run` (what ``crossent train`` runs).
"""

from crossent.recsys.baselines import EASE, MostPopular
from crossent.recsys.checkpoint import load_checkpoint, save_checkpoint
from crossent.recsys.data import Interactions, Split, csr_rows, implicit, k_core, leave_last_out
from crossent.recsys.evaluate import Scorer, evaluate_retrieval, retrieval_metrics
from crossent.recsys.loaders import (
    load_interactions,
    load_movielens,
    load_recbole,
    load_table,
)
from crossent.recsys.logged_ranking import LoggedExamples, logged_examples
from crossent.recsys.models import CandidateConfig, CandidateModel, RankingConfig, RankingModel
from crossent.recsys.ranking_train import fit_ranking
from crossent.recsys.simulate import SimulatedWatchLog, SimulationConfig, simulate
from crossent.recsys.train import TrainConfig, fit_candidate, retrieval_cross_entropy

__all__ = [
    "EASE",
    "CandidateConfig",
    "CandidateModel",
    "Interactions",
    "LoggedExamples",
    "MostPopular",
    "RankingConfig",
    "RankingModel",
    "Scorer",
    "SimulatedWatchLog",
    "SimulationConfig",
    "Split",
    "TrainConfig",
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
    "load_table",
    "logged_examples",
    "retrieval_cross_entropy",
    "retrieval_metrics",
    "save_checkpoint",
    "simulate",
]
