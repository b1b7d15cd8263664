"""The watch-prediction recommender: data, baselines, models, training and evaluation.

Submodules: :mod:`~crossent.recsys.data` (the :class:`Interactions` table, filters, the
leave-last-out split), :mod:`~crossent.recsys.loaders` (MovieLens, RecBole, CSV/Parquet),
:mod:`~crossent.recsys.baselines` (most popular, EASE) and :mod:`~crossent.recsys.evaluate`
(full-catalogue retrieval metrics).
"""

from crossent.recsys.data import Interactions, Split, implicit, k_core, leave_last_out

__all__ = ["Interactions", "Split", "implicit", "k_core", "leave_last_out"]
