"""``crossent score``: probabilistic and ranking metrics of prediction files, in fixed memory.

The application on top of :mod:`crossent.metrics` (the pure metrics and their mergeable
accumulators) and :mod:`crossent.io` (batched readers with line numbers):
:mod:`~crossent.scoring.files` scores CSV, Parquet and JSONL files of any size
(:mod:`~crossent.scoring.columns` picks the columns, :mod:`~crossent.scoring.labels` maps the
labels, :mod:`~crossent.scoring.result` holds the scores), :mod:`~crossent.scoring.segments`
keeps the same sums per ``--by`` segment, :mod:`~crossent.scoring.ranking_files` scores top-k
files, and :mod:`~crossent.scoring.dask` runs the scorers on Dask partitions and merges them
exactly. Nothing here imports torch.
"""
