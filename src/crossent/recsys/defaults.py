"""The one definition of the sequence recommender's defaults, for the library and the CLI alike.

:class:`~crossent.recsys.models.networks.CandidateConfig`,
:class:`~crossent.recsys.training.loop.TrainConfig`,
``crossent train``'s options and its ``--help`` all read their defaults from here, so a Python
user and a command-line user train the same model. This module imports nothing heavy (the
command line reads it to build its options without loading torch).

The model is SASRec (Kang & McAuley 2018) trained with the full-catalogue softmax
(Klenitskiy & Vasilev 2023): 64-wide embeddings, two attention blocks of the reference
implementation's form with one head, Xavier-normal initialisation, the input embeddings
reused as the output table and no item bias, dropout 0.2. Training runs Adam at a
constant 1e-3 until validation NDCG@10 has not improved for :data:`PATIENCE` epochs, with
:data:`EPOCHS` only a ceiling: a constant rate has no horizon, so the run cannot end before
the plateau, on a small data set or a large one. Validation and test take the last two
watches of at most :data:`EVAL_USERS` sampled users, so on a large log most users train on
every watch from the start. What is saved is the sequence model blended with the bag model
trained beside it, the bag's weight chosen on validation among :data:`BLEND_WEIGHTS`. The
README's sections "Amazon Video: the encoder", "Choosing the learning rate and the catch-up",
"Who is held out" and "Amazon Video: the blend" have the measurements behind each value.

Example:
    >>> from crossent.recsys import defaults
    >>> defaults.HISTORY, defaults.LR, defaults.LR_SCHEDULE
    (200, 0.001, 'constant')
"""

from __future__ import annotations

from typing import Final

#: Recent watches the encoder reads (windows are right-aligned; batches are cut to their
#: longest real history, so short histories cost their own length, not this).
HISTORY: Final = 200
#: Embedding, attention and user-vector width.
DIM: Final = 64
#: Self-attention blocks, and heads per block.
BLOCKS: Final = 2
HEADS: Final = 1
#: Dropout on the embeddings, the attention weights and each block's two residual branches.
DROPOUT: Final = 0.2
#: Score items with the input embeddings (SASRec) rather than a separate output table.
TIE_EMBEDDINGS: Final = True
#: Learn a per-item bias in the sequence model's softmax (SASRec has none; the bag keeps one).
ITEM_BIAS: Final = False
#: Width of the bag model's hidden layer.
HIDDEN: Final = 128
#: Negatives per step of the "sampled" and "gbce" objectives.
N_NEGATIVES: Final = 256

#: Adam's learning rate, and its schedule ("constant": no horizon for the run to reach).
LR: Final = 1e-3
LR_SCHEDULE: Final = "constant"
#: Training targets per step, padding not counted: as many whole windows as hold this many
#: targets on average, so long and short histories get steps of the same weight.
BATCH_TARGETS: Final = 1024
#: A ceiling on the epochs; training ends at the validation plateau (:data:`PATIENCE`).
EPOCHS: Final = 200
#: Epochs without a better validation NDCG@10 before training stops (best epoch kept).
PATIENCE: Final = 10
#: A better validation NDCG@10 must beat the best by this fraction of it to count (0.5%).
MIN_GAIN_NDCG: Final = 0.005
#: Users whose last two watches are held out for validation and test, sampled when more are
#: eligible (0: every user); everyone else trains on all their watches from the first epoch.
EVAL_USERS: Final = 5000
#: Epochs the early-stopped model then trains on every watch, the held-out validation and test
#: watches included, its learning rate decaying to 0 ("catch-up"; 0: none), so the model
#: that is saved has learnt each user's most recent watches.
CATCH_UP: Final = 4
#: The saved sequence model is blended with the bag model trained beside it (their
#: log-probabilities averaged): the bag's weight, chosen on validation NDCG@10 among
#: :data:`BLEND_WEIGHTS` when ``None`` (0: the sequence model alone).
BLEND: Final[float | None] = None
BLEND_WEIGHTS: Final = (0.0, 0.25, 0.5)
