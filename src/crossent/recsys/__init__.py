"""The watch-prediction recommender: data, baselines, models, training and evaluation.

Submodules: :mod:`~crossent.recsys.data` (the :class:`Interactions` table, filters, the
leave-last-out split), :mod:`~crossent.recsys.loaders` (MovieLens, RecBole, CSV/Parquet),
:mod:`~crossent.recsys.baselines` (most popular, EASE) and :mod:`~crossent.recsys.evaluate`
(full-catalogue retrieval metrics).
"""

from crossent.recsys.baselines import EASE, MostPopular
from crossent.recsys.data import Interactions, Split, csr_rows, implicit, k_core, leave_last_out
from crossent.recsys.evaluate import Scorer, evaluate_retrieval, retrieval_metrics
from crossent.recsys.loaders import (
    load_interactions,
    load_movielens,
    load_recbole,
    load_table,
)

__all__ = [
    "EASE",
    "Interactions",
    "MostPopular",
    "Scorer",
    "Split",
    "csr_rows",
    "evaluate_retrieval",
    "implicit",
    "k_core",
    "leave_last_out",
    "load_interactions",
    "load_movielens",
    "load_recbole",
    "load_table",
    "retrieval_metrics",
]
