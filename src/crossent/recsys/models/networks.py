"""The two stages of a YouTube-style recommender (Covington et al., RecSys 2016).

**Candidate generation** (:class:`CandidateModel`) treats "which video is watched next" as a
softmax over the whole catalogue: the score of video ``j`` for user vector ``u`` is
``u · w_j + b_j`` (output table ``item_out``, bias ``item_bias``, 0 unless learnt). Two user
encoders:

- ``"sequence"``: a causal self-attention encoder of the last ``history`` watches
  (:mod:`crossent.recsys.models.sequence`, SASRec-style); trained at every position of every
  training sequence, each predicting the watch that follows it.
- ``"bag"``: the mean of the input embeddings of the last ``history`` watches through an MLP
  tower (Covington et al.), blind to order; trained on every watch from the window before it.

Both train with any objective of :mod:`crossent.recsys.models.objectives`; ``"full"`` is the exact
softmax through :func:`crossent.linear_cross_entropy`, so the ``(N, V)`` logits never exist.
A third kind, ``"blend"``, is saved, never trained (:mod:`crossent.recsys.models.blend`).
Already-watched videos can be removed from the softmax's normaliser (the masked softmax the
evaluation uses).

**Ranking** is the second stage, :mod:`crossent.recsys.models.ranker`.

References:
    Covington, Adams, Sargin. Deep Neural Networks for YouTube Recommendations. RecSys 2016.
    Kang, McAuley. Self-Attentive Sequential Recommendation. ICDM 2018.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossent._validation.choices import EncoderBlock, Objective, SavedCandidateKind, check_choice
from crossent._validation.numbers import check_bool, check_int, check_number
from crossent.errors import CrossentError, OptionError
from crossent.recsys import defaults
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models import objectives
from crossent.recsys.models.sequence import (
    INFERENCE_ROWS,
    SequenceEncoder,
    example_lengths,
    leading_padding,
    seen_before,
    sequence_examples,
)


@dataclass(frozen=True)
class CandidateShape:
    """The candidate model's shape: everything of :class:`CandidateConfig` but the catalogue
    size, which the data gives, and the objective, which the run chooses.

    A run is specified before its data is read, so its model section is a shape
    (``crossent.recsys.spec.ModelSpec`` is this class); :meth:`candidate` completes it. The
    rules of every field are checked here, once, for both.

    Attributes:
        model: "sequence" (self-attention over the ordered history) or "bag" (mean of the
            history's embeddings through an MLP tower); "blend": a saved blend, the other
            fields its sequence model's (:mod:`crossent.recsys.models.blend`).
        dim: embedding dimension (input and output embeddings, user vector).
        hidden: width of the bag tower's hidden layer.
        history: how many recent watches the user vector sees.
        blocks, heads, dropout: the sequence encoder's depth, attention heads and dropout.
        n_negatives: negatives per step for the "sampled" and "gbce" objectives.
        gbce_t: gSASRec's calibration parameter ``t`` for "gbce".
        mask_history: in the full softmax, leave the already-watched items of the window out of
            the normaliser (they are never the next watch; evaluation excludes them too).
        tie_embeddings: the sequence model scores items with its input embeddings (as SASRec
            does) instead of a separate output table; ``None``: tied for the sequence model
            (:data:`~crossent.recsys.defaults.TIE_EMBEDDINGS`), separate for the bag.
        block: the sequence encoder's block, "sasrec" (the reference implementation's form,
            initialisation and input scale) or "pre-norm" (the encoder of older files).
        item_bias: learn a bias ``b_j`` per item; off, it stays 0 (as in SASRec). ``None``: off
            for the sequence model (:data:`~crossent.recsys.defaults.ITEM_BIAS`), on for the
            bag.
        bag_weight: a blend's share of the bag model, in (0, 1); 0 for every other kind.

    Defaults come from :mod:`crossent.recsys.defaults`, as ``crossent train``'s do.

    Example:
        >>> shape = CandidateShape(history=50)
        >>> shape.tie_embeddings, CandidateShape(model="bag").tie_embeddings
        (True, False)
        >>> shape.candidate(n_items=100, objective="full").history
        50
    """

    model: SavedCandidateKind = "sequence"
    dim: int = defaults.DIM
    hidden: int = defaults.HIDDEN
    history: int = defaults.HISTORY
    blocks: int = defaults.BLOCKS
    heads: int = defaults.HEADS
    dropout: float = defaults.DROPOUT
    n_negatives: int = defaults.N_NEGATIVES
    gbce_t: float = objectives.GBCE_T
    mask_history: bool = True
    tie_embeddings: bool | None = None
    block: EncoderBlock = "sasrec"
    item_bias: bool | None = None
    bag_weight: float = 0.0

    def __post_init__(self) -> None:
        sequence = self.model in ("sequence", "blend")
        if self.tie_embeddings is None:  # the sequence model's default; the bag has no choice
            tied = defaults.TIE_EMBEDDINGS and sequence
            object.__setattr__(self, "tie_embeddings", tied)
        if self.item_bias is None:
            biased = defaults.ITEM_BIAS if sequence else True
            object.__setattr__(self, "item_bias", biased)
        check_bool(self.item_bias, "item_bias")
        for name in ("dim", "hidden", "history", "blocks", "heads", "n_negatives"):
            check_int(getattr(self, name), name, low=1)
        check_choice(self.model, "model", SavedCandidateKind)
        if self.model == "blend":
            check_number(self.bag_weight, "bag_weight", low=0, high=1, low_open=True,
                         high_open=True)
        elif self.bag_weight != 0.0:
            raise OptionError("bag_weight", lambda n: f"{n} needs model = 'blend'")
        check_choice(self.block, "block", EncoderBlock)
        if self.dim % self.heads:
            raise CrossentError(f"dim = {self.dim} must be a multiple of heads = {self.heads}")
        check_number(self.dropout, "dropout", low=0.0, high=1.0, high_open=True)
        check_bool(self.tie_embeddings, "tie_embeddings")
        check_bool(self.mask_history, "mask_history")
        if self.tie_embeddings and not sequence:
            raise OptionError("tie_embeddings", lambda n: f"{n} needs model = 'sequence'")
        check_number(self.gbce_t, "gbce_t", low=0.0, high=1.0)

    def candidate(self, n_items: int, objective: Objective) -> CandidateConfig:
        """The model's config for a catalogue of ``n_items``, trained with ``objective``."""
        shape = {each.name: getattr(self, each.name) for each in fields(CandidateShape)}
        return CandidateConfig(n_items=n_items, objective=objective, **shape)


@dataclass(frozen=True, kw_only=True)
class CandidateConfig(CandidateShape):
    """Shape, catalogue size and training objective of :class:`CandidateModel` (plain
    JSON-able fields): a :class:`CandidateShape` and

    Attributes:
        n_items: catalogue size.
        objective: "full" (exact softmax), "sampled" (``n_negatives`` shared unigram
            negatives, log Q corrected), "bce" (one uniform negative per position), "gbce"
            (``n_negatives`` uniform negatives, gSASRec) or "in-batch" (log Q corrected).

    Example:
        >>> CandidateConfig(n_items=100, history=50).objective
        'full'
    """

    n_items: int
    objective: Objective = "full"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.n_items, "n_items", low=1)
        check_choice(self.objective, "objective", Objective)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CandidateConfig:
        """The config from its ``dataclasses.asdict`` form, older field names included.

        Configs saved before the sequence model existed describe a bag model and call the
        objective ``negatives`` and its sample size ``n_sampled``.
        """
        values = dict(values)
        if "model" not in values:
            values["model"] = "bag"
        if "negatives" in values:
            values["objective"] = values.pop("negatives")
        if "n_sampled" in values:
            values["n_negatives"] = values.pop("n_sampled")
        values.setdefault("tie_embeddings", False)  # saved before tying existed
        values.setdefault("item_bias", True)  # saved when every model learnt one
        values.setdefault("block", "pre-norm")  # saved before the SASRec block
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CrossentError(f"candidate config has unknown fields {unknown}")
        return cls(**values)


class CandidateModel(nn.Module):
    """Next-watch softmax over the catalogue from a user's recent watches.

    Inputs are *windows*: ``(N, history)`` int64 item ids of the last watches, oldest first,
    padded with ``n_items`` (:func:`windows_from_csr` right-aligns them; the sequence encoder
    needs that, the bag ignores order).
    """

    def __init__(self, config: CandidateConfig) -> None:
        super().__init__()
        if config.model == "blend":
            raise CrossentError("a blend is built by blend.candidate_model(config)")
        self.config = config
        n, d = config.n_items, config.dim
        if config.model == "sequence":
            self.encoder = SequenceEncoder(
                n, d, config.history, config.blocks, config.heads, config.dropout, config.block
            )
        else:
            self.item_in = nn.Embedding(n + 1, d, padding_idx=n)  # row n = padding
            self.empty = nn.Parameter(torch.zeros(d))  # the input when there is no history yet
            self.tower = nn.Sequential(
                nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, d)
            )
            self.skip = nn.Linear(d, d, bias=False)  # a linear path: the tower need not learn it
            nn.init.normal_(self.item_in.weight, std=1.0 / math.sqrt(d))
            with torch.no_grad():
                self.item_in.weight[n].zero_()
        if not config.tie_embeddings:
            self.item_out = nn.Parameter(torch.randn(n, d) * (1.0 / math.sqrt(d)))
        if config.item_bias:
            self.item_bias = nn.Parameter(torch.zeros(n))
        else:  # saved and loaded like the parameter, never trained
            self.register_buffer("item_bias", torch.zeros(n))

    def output_table(self) -> torch.Tensor:
        """``(n_items, dim)`` the output embeddings ``w_j`` (the input ones when tied)."""
        if self.config.tie_embeddings:
            return self.encoder.item_in.weight[: self.config.n_items]
        return self.item_out

    def _bag_vector(self, window: torch.Tensor) -> torch.Tensor:
        valid = (window < self.config.n_items).float()  # (N, H)
        count = valid.sum(1, keepdim=True)  # (N, 1)
        summed = self.item_in(window).sum(1)  # (N, H, d) -> (N, d); padding rows are zero
        mean = torch.where(count > 0, summed / count.clamp_min(1.0), self.empty)
        return self.tower(mean) + self.skip(mean)

    def user_vector(self, window: torch.Tensor) -> torch.Tensor:
        """``(N, history)`` right-aligned padded windows -> ``(N, dim)`` user vectors."""
        if self.config.model == "sequence":
            return self.encoder.user_states(window[:, -self.config.history :])
        if self.training or len(window) <= INFERENCE_ROWS:
            return self._bag_vector(window)
        # inference on many users: small (rows, history, d) embedding blocks, as user_states
        return torch.cat([self._bag_vector(part) for part in window.split(INFERENCE_ROWS)])

    def inference_vector(self, window: torch.Tensor) -> torch.Tensor:
        """:meth:`user_vector` for recommending: a sequence encoded at its last position only."""
        if self.config.model == "sequence":
            return self.encoder.last_state(window[:, -self.config.history :])
        return self.user_vector(window)

    def examples(self, train: Interactions) -> tuple[torch.Tensor, torch.Tensor]:
        """Training inputs and targets: ``(n, L)`` and ``(n, L)`` sequences, or for the bag
        ``(n, history)`` windows and ``(n,)`` next watches (every watch from the ones before)."""
        if self.config.model == "sequence":
            return sequence_examples(train, self.config.history)
        return bag_examples(train, self.config.history)

    def states(self, inputs: torch.Tensor) -> torch.Tensor:
        """The vectors that predict each target: ``(n, L, d)`` (sequence) or ``(n, d)`` (bag)."""
        if self.config.model == "sequence":
            return self.encoder(inputs)
        return self._bag_vector(inputs)

    def seen_keys(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Items to leave out of each position's softmax: ``keys (n, K)``, ``keep (n, Q, K)``.

        Sequence: the watches at or before the position; bag: the window. Each distinct item
        once, never the position's own target (a re-watch).
        """
        targets = targets.reshape(len(targets), -1)
        if self.config.model == "sequence":
            return inputs, seen_before(inputs, targets, self.config.n_items)
        keys, _ = inputs.sort(1)  # (N, H); duplicates become neighbours
        duplicate = torch.zeros_like(keys, dtype=torch.bool)
        duplicate[:, 1:] = keys[:, 1:] == keys[:, :-1]
        keep = (keys < self.config.n_items) & ~duplicate & (keys != targets)
        return keys, keep[:, None, :]

    def scores(self, window: torch.Tensor) -> torch.Tensor:
        """``(N, n_items)`` logits ``u · w_j + b_j`` (materialised: use for small batches)."""
        return self.user_vector(window) @ self.output_table().T + self.item_bias

    def score(self, users: np.ndarray, watched: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The :class:`~crossent.recsys.evaluation.protocol.Scorer` protocol: ``(B, n_items)``
        logits.

        ``watched`` is the CSR of each user's earlier watches; its last ``config.history`` items
        make the user vector.
        """
        window = windows_from_csr(watched[0], watched[1], self.config.history, self.config.n_items)
        with torch.no_grad():
            return self.scores(window).numpy()

    def loss(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        item_log_prob: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-target loss (nats) of the configured objective, shaped like ``targets``.

        Sequence windows are first cut to the batch's longest history
        (:func:`~crossent.recsys.models.sequence.leading_padding`); the cut columns get loss 0, as
        padding does.

        Args:
            inputs, targets: from :meth:`examples` (padded targets are
                :data:`~crossent.recsys.models.objectives.IGNORE` and give 0).
            item_log_prob: ``(n_items,)`` log unigram probabilities (the sampling
                distribution and log Q of "sampled" and "in-batch").
            generator: random source of the negatives.
        """
        shape, skip = targets.shape, 0
        if self.config.model == "sequence":
            skip = leading_padding(inputs, self.config.n_items)
            inputs, targets = inputs[:, skip:], targets[:, skip:]
        states = self.states(inputs)
        grid = targets.reshape(len(targets), -1)  # (N, Q)
        states = states.reshape(*grid.shape, -1)  # (N, Q, d)
        per_position = self.objective_loss(states, grid, item_log_prob, generator)
        if self.config.objective == "full" and self.config.mask_history:
            keys, keep = self.seen_keys(inputs, grid)
            per_position = objectives.mask_seen(
                states, grid, per_position, keys, keep, self.output_table(), self.item_bias
            )
        return F.pad(per_position, (skip, 0)).reshape(shape)

    def example_lengths(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """``(n,)`` real inputs per training window (sequence model), to batch alike lengths
        together; ``None`` for the bag, whose examples all cost the same."""
        if self.config.model == "sequence":
            return example_lengths(inputs, self.config.n_items)
        return None

    def objective_loss(
        self,
        states: torch.Tensor,
        targets: torch.Tensor,
        item_log_prob: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """``(N, Q)`` loss of ``states (N, Q, d)`` by the configured objective (unmasked)."""
        config, weight, bias = self.config, self.output_table(), self.item_bias
        if config.objective == "full":
            return objectives.full_softmax(states, targets, weight, bias)
        if config.objective == "bce":
            return objectives.bce_one_negative(states, targets, weight, bias, generator=generator)
        if config.objective == "gbce":
            return objectives.gbce(
                states, targets, weight, bias, k=config.n_negatives, t=config.gbce_t,
                generator=generator,
            )
        if item_log_prob is None:
            raise CrossentError(f'objective = "{config.objective}" needs item_log_prob (log Q)')
        if config.objective == "sampled":
            return objectives.sampled_softmax(
                states, targets, weight, bias, item_log_prob=item_log_prob,
                k=config.n_negatives, generator=generator,
            )
        return objectives.in_batch_softmax(
            states, targets, weight, bias, item_log_prob=item_log_prob
        )


def bag_examples(train: Interactions, history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training watch as ``(window, target)``: the ``history`` watches before it.

    Returns ``windows (n, history)`` int64 padded with ``n_items`` (oldest first, left-
    aligned) and ``targets (n,)``. Row ``i``'s window holds only watches of the same user that
    come strictly earlier in time, so no example sees its own target or the future.
    """
    indptr, items = train.sequences()
    n = len(items)
    user_start = np.repeat(indptr[:-1], np.diff(indptr))  # (n,) first position of its user
    position = np.arange(n)
    first = np.maximum(user_start, position - history)  # (n,)
    columns = first[:, None] + np.arange(history)[None, :]  # (n, H) candidate positions
    valid = columns < position[:, None]
    windows = np.where(valid, items[np.minimum(columns, max(n - 1, 0))], train.n_items)
    return torch.from_numpy(windows.astype(np.int64)), torch.from_numpy(items.astype(np.int64))


def windows_from_csr(indptr: np.ndarray, items: np.ndarray, history: int, pad: int) -> torch.Tensor:
    """The last ``history`` items of every CSR row, ``(rows, history)``, oldest first and
    right-aligned: a shorter row is padded with ``pad`` at the front."""
    counts = np.diff(indptr)
    take = np.minimum(counts, history)
    out = np.full((len(counts), history), pad, dtype=np.int64)
    rows = np.repeat(np.arange(len(counts)), take)
    offsets = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
    columns = history - np.repeat(take, take) + offsets
    out[rows, columns] = items[np.repeat(indptr[1:] - take, take) + offsets]
    return torch.from_numpy(out)
