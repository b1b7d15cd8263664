"""The watch-prediction recommender, in the order a watch goes through it.

- :mod:`~crossent.recsys.data`: the interaction table and its leave-last-out split, file
  loaders, titles, the simulated watch log with known truth, a real log's ranking examples;
- :mod:`~crossent.recsys.models`: the candidate and ranking networks, the sequence encoder,
  the training objectives, the ranking stage's inputs, the baselines (most popular, EASE);
- :mod:`~crossent.recsys.training`: the epoch loop with early stopping, ranking fit and
  calibration, resumable training state, the sharded softmax under torchrun;
- :mod:`~crossent.recsys.evaluation`: the retrieval protocol, next-watch cross-entropy and the
  Bayes limit, a saved model scored again, the report;
- :mod:`~crossent.recsys.serving`: model files (checkpoints, the safe folder format,
  conversion), recommendations, and the HTTP server of ``crossent serve``.

The run itself sits at the top: :mod:`~crossent.recsys.defaults` (the one definition of the
defaults), :mod:`~crossent.recsys.spec` (a run's frozen, validated :class:`RunSpec`),
:mod:`~crossent.recsys.retrieval` and :mod:`~crossent.recsys.ranking_stage` (the two stages,
each from a result to a new one), :mod:`~crossent.recsys.run` (:func:`run`: a spec on a watch
log or a simulated world, to an immutable :class:`RunResult`), :mod:`~crossent.recsys.results`
and :mod:`~crossent.recsys.events` (what long work reports to its caller).

The names below load on first use, so ``crossent.recsys.defaults`` (read by the command line to
show its defaults) imports without torch.
"""


from __future__ import annotations

from typing import TYPE_CHECKING

from crossent._lazy import lazy_names

if TYPE_CHECKING:
    from crossent.recsys.data.interactions import (
        Interactions,
        Split,
        csr_rows,
        implicit,
        k_core,
        leave_last_out,
    )
    from crossent.recsys.data.loaders import (
        load_interactions,
        load_movielens,
        load_recbole,
        load_sequences,
        load_table,
    )
    from crossent.recsys.data.simulate import SimulatedWatchLog, SimulationConfig, simulate
    from crossent.recsys.evaluation.next_watch import retrieval_cross_entropy
    from crossent.recsys.evaluation.protocol import Scorer, evaluate_retrieval, retrieval_metrics
    from crossent.recsys.models.baselines import EASE, MostPopular
    from crossent.recsys.models.logged_ranking import LoggedExamples, logged_examples
    from crossent.recsys.models.networks import CandidateConfig, CandidateModel
    from crossent.recsys.models.ranker import RankingConfig, RankingModel
    from crossent.recsys.results import RunResult
    from crossent.recsys.run import run
    from crossent.recsys.serving.checkpoint import load_checkpoint, save_checkpoint
    from crossent.recsys.spec import DataSpec, ModelSpec, ObjectiveSpec, RunSpec, TrainingSpec
    from crossent.recsys.training.loop import TrainConfig, fit_candidate, refit_candidate
    from crossent.recsys.training.ranking import fit_ranking

# public name -> the submodule that defines it
_LAZY = {
    "CandidateConfig": "crossent.recsys.models.networks",
    "CandidateModel": "crossent.recsys.models.networks",
    "csr_rows": "crossent.recsys.data.interactions",
    "DataSpec": "crossent.recsys.spec",
    "ModelSpec": "crossent.recsys.spec",
    "ObjectiveSpec": "crossent.recsys.spec",
    "run": "crossent.recsys.run",
    "RunResult": "crossent.recsys.results",
    "RunSpec": "crossent.recsys.spec",
    "TrainingSpec": "crossent.recsys.spec",
    "EASE": "crossent.recsys.models.baselines",
    "evaluate_retrieval": "crossent.recsys.evaluation.protocol",
    "fit_candidate": "crossent.recsys.training.loop",
    "fit_ranking": "crossent.recsys.training.ranking",
    "implicit": "crossent.recsys.data.interactions",
    "Interactions": "crossent.recsys.data.interactions",
    "k_core": "crossent.recsys.data.interactions",
    "leave_last_out": "crossent.recsys.data.interactions",
    "load_checkpoint": "crossent.recsys.serving.checkpoint",
    "load_interactions": "crossent.recsys.data.loaders",
    "load_movielens": "crossent.recsys.data.loaders",
    "load_recbole": "crossent.recsys.data.loaders",
    "load_sequences": "crossent.recsys.data.loaders",
    "load_table": "crossent.recsys.data.loaders",
    "logged_examples": "crossent.recsys.models.logged_ranking",
    "LoggedExamples": "crossent.recsys.models.logged_ranking",
    "MostPopular": "crossent.recsys.models.baselines",
    "RankingConfig": "crossent.recsys.models.ranker",
    "RankingModel": "crossent.recsys.models.ranker",
    "refit_candidate": "crossent.recsys.training.loop",
    "retrieval_cross_entropy": "crossent.recsys.evaluation.next_watch",
    "retrieval_metrics": "crossent.recsys.evaluation.protocol",
    "save_checkpoint": "crossent.recsys.serving.checkpoint",
    "Scorer": "crossent.recsys.evaluation.protocol",
    "simulate": "crossent.recsys.data.simulate",
    "SimulatedWatchLog": "crossent.recsys.data.simulate",
    "SimulationConfig": "crossent.recsys.data.simulate",
    "Split": "crossent.recsys.data.interactions",
    "TrainConfig": "crossent.recsys.training.loop",
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
