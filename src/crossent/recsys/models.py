"""The two stages of a YouTube-style recommender (Covington et al., RecSys 2016).

**Candidate generation** (:class:`CandidateModel`) treats "which video is watched next" as a
softmax over the whole catalogue. The user vector is the mean of the input embeddings of the
last ``history`` watches, through an MLP tower; the score of video ``j`` is
``u · v_j + b_j``. The exact full softmax is trained through
:func:`crossent.linear_cross_entropy` (tower output = ``hidden``, output embedding table =
``weight``), so the ``(N, V)`` logits are never materialised; already-watched videos can be
removed from the softmax's normaliser (the masked softmax the evaluation uses). Cheaper
alternatives: ``"in-batch"`` or ``"sampled"`` negatives with the log Q correction of
Yi et al. (RecSys 2019) passed as ``logit_bias = -log Q``.

**Ranking** (:class:`RankingModel`) predicts P(watch | user, video, context) with an MLP on the
user vector, the video embedding, their element-wise product and dense interaction features,
plus a linear ("wide") path on the dense features; trained with binary cross-entropy.

References:
    Covington, Adams, Sargin. Deep Neural Networks for YouTube Recommendations. RecSys 2016.
    Yi et al. Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations.
    RecSys 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossent.errors import CrossentError
from crossent.losses.linear import linear_cross_entropy

Negatives = Literal["full", "sampled", "in-batch"]
RankingLoss = Literal["bce", "focal", "watch-time"]


@dataclass(frozen=True)
class CandidateConfig:
    """Shape and training objective of :class:`CandidateModel`.

    Attributes:
        n_items: catalogue size.
        dim: embedding dimension (input and output embeddings, tower output).
        hidden: width of the tower's hidden layer.
        history: how many recent watches make the user vector.
        negatives: "full" (exact softmax over the catalogue), "sampled" (the batch's targets
            plus ``n_sampled`` draws from the unigram distribution) or "in-batch".
        n_sampled: extra negatives per batch for "sampled".
        mask_history: in the full softmax, leave the watches in the window out of the
            normaliser (they are never the next watch; evaluation excludes them too).
    """

    n_items: int
    dim: int = 32
    hidden: int = 128
    history: int = 50
    negatives: Negatives = "full"
    n_sampled: int = 1024
    mask_history: bool = True

    def __post_init__(self) -> None:
        for name in ("n_items", "dim", "hidden", "history", "n_sampled"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CrossentError(f"{name} = {value!r} must be an integer >= 1")
        if self.negatives not in ("full", "sampled", "in-batch"):
            raise CrossentError(
                f'negatives = {self.negatives!r} must be "full", "sampled" or "in-batch"'
            )


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-x))`` for ``x > 0``, accurate at both ends (Mächler's log1mexp)."""
    x = x.clamp_min(1e-6)  # keeps both branches finite, so torch.where has no NaN gradient
    return torch.where(x < math.log(2.0), torch.log(-torch.expm1(-x)), torch.log1p(-torch.exp(-x)))


class CandidateModel(nn.Module):
    """Next-watch softmax over the catalogue from the mean embedding of recent watches.

    Inputs are *windows*: ``(N, history)`` int64 item ids of the last watches, right-aligned
    or not (order does not matter for a mean), padded with ``n_items``.
    """

    def __init__(self, config: CandidateConfig) -> None:
        super().__init__()
        self.config = config
        n, d = config.n_items, config.dim
        self.item_in = nn.Embedding(n + 1, d, padding_idx=n)  # row n = padding
        self.empty = nn.Parameter(torch.zeros(d))  # the input when there is no history yet
        self.tower = nn.Sequential(
            nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, d)
        )
        self.skip = nn.Linear(d, d, bias=False)  # a linear path: the tower need not learn one
        self.item_out = nn.Parameter(torch.randn(n, d) * (1.0 / math.sqrt(d)))
        self.item_bias = nn.Parameter(torch.zeros(n))
        nn.init.normal_(self.item_in.weight, std=1.0 / math.sqrt(d))
        with torch.no_grad():
            self.item_in.weight[n].zero_()

    def user_vector(self, window: torch.Tensor) -> torch.Tensor:
        """``(N, history)`` padded windows -> ``(N, dim)`` user vectors."""
        valid = (window < self.config.n_items).float()  # (N, H)
        count = valid.sum(1, keepdim=True)  # (N, 1)
        summed = self.item_in(window).sum(1)  # (N, H, d) -> (N, d); padding rows are zero
        mean = torch.where(count > 0, summed / count.clamp_min(1.0), self.empty)
        return self.tower(mean) + self.skip(mean)

    def scores(self, window: torch.Tensor) -> torch.Tensor:
        """``(N, n_items)`` logits ``u · v_j + b_j`` (materialised: use for small batches)."""
        return self.user_vector(window) @ self.item_out.T + self.item_bias

    def score(self, users: np.ndarray, history: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The :class:`~crossent.recsys.evaluate.Scorer` protocol: ``(B, n_items)`` logits.

        ``history`` is the CSR of each user's earlier watches; its last ``history`` items make
        the user vector.
        """
        window = windows_from_csr(history[0], history[1], self.config.history, self.config.n_items)
        with torch.no_grad():
            return self.scores(window).numpy()

    def loss(
        self,
        window: torch.Tensor,
        target: torch.Tensor,
        *,
        item_log_prob: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-example cross-entropy (nats) of the next watch, ``(N,)``.

        Args:
            window: ``(N, history)`` padded recent watches (strictly before the target).
            target: ``(N,)`` the watched item.
            item_log_prob: ``(n_items,)`` log unigram probabilities (the sampling
                distribution for "sampled" and the basis of the log Q correction); needed
                unless ``negatives="full"``.
            generator: random source for "sampled".
        """
        user = self.user_vector(window)  # (N, d)
        negatives = self.config.negatives
        if negatives == "full":
            per_row = linear_cross_entropy(
                user, self.item_out, target, bias=self.item_bias, reduction="none"
            )
            if self.config.mask_history:
                per_row = self._mask_window(user, window, target, per_row)
            return per_row
        if item_log_prob is None:
            raise CrossentError(f'negatives = "{negatives}" needs item_log_prob (log Q)')
        drawn = target
        if negatives == "sampled":
            extra = torch.multinomial(
                item_log_prob.exp(), self.config.n_sampled, replacement=True, generator=generator
            )
            drawn = torch.cat([target, extra])
        columns, inverse = torch.unique(drawn, return_inverse=True)
        # log Q: probability that an item is among the columns, 1 - (1 - p)^draws
        # (Yi et al. 2019 correct each logit by -log Q so the softmax is unbiased)
        draws = len(drawn)
        log_q = torch.log(-torch.expm1(draws * torch.log1p(-item_log_prob[columns].exp())))
        return linear_cross_entropy(
            user,
            self.item_out[columns],
            inverse[: len(target)],
            bias=self.item_bias[columns],
            logit_bias=-log_q,
            reduction="none",
        )

    def _mask_window(
        self,
        user: torch.Tensor,
        window: torch.Tensor,
        target: torch.Tensor,
        per_row: torch.Tensor,
    ) -> torch.Tensor:
        """Turn the full-softmax loss into the loss of the softmax without the window items.

        ``masked = ce + log(1 - sum_{h in window} softmax_h)``, with ``log-sum-exp`` of
        the full softmax recovered as ``ce + s_target``; log1mexp keeps it accurate.
        Duplicates in a window and the target itself (a re-watch) are not masked.
        """
        n = self.config.n_items
        sorted_window, _ = window.sort(1)  # (N, H); duplicates become neighbours
        duplicate = torch.zeros_like(sorted_window, dtype=torch.bool)
        duplicate[:, 1:] = sorted_window[:, 1:] == sorted_window[:, :-1]
        keep = (sorted_window < n) & ~duplicate & (sorted_window != target[:, None])
        safe = torch.where(keep, sorted_window, 0)
        # rows gathered by F.embedding, not tensor[index]: the backward of advanced indexing
        # (index_put_ with accumulate) adds the repeated rows in a varying order on the CPU, so
        # two runs with one seed drifted apart (and early-stopped at different epochs)
        out = F.embedding(safe, self.item_out)  # (N, H, d)
        bias = F.embedding(safe, self.item_bias.unsqueeze(1)).squeeze(2)  # (N, H)
        history_scores = torch.einsum("nd,nhd->nh", user, out) + bias  # (N, H)
        history_scores = torch.where(keep, history_scores, -1e4)  # finite: no inf - inf
        target_out = F.embedding(target, self.item_out)  # (N, d)
        target_bias = F.embedding(target, self.item_bias.unsqueeze(1)).squeeze(1)  # (N,)
        target_score = (user * target_out).sum(1) + target_bias
        full_lse = per_row + target_score
        history_lse = torch.logsumexp(history_scores, 1)
        return per_row + _log1mexp(full_lse - history_lse)


def windows_from_csr(indptr: np.ndarray, items: np.ndarray, history: int, pad: int) -> torch.Tensor:
    """The last ``history`` items of every CSR row, ``(rows, history)`` padded with ``pad``."""
    counts = np.diff(indptr)
    take = np.minimum(counts, history)
    out = np.full((len(counts), history), pad, dtype=np.int64)
    rows = np.repeat(np.arange(len(counts)), take)
    offsets = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
    out[rows, offsets] = items[np.repeat(indptr[1:] - take, take) + offsets]
    return torch.from_numpy(out)


@dataclass(frozen=True)
class RankingConfig:
    """Shape and loss of :class:`RankingModel`.

    Attributes:
        dim: size of the user and video vectors fed in (the candidate model's ``dim``).
        n_dense: number of dense features.
        hidden: widths of the MLP's hidden layers.
        loss: "bce" (binary cross-entropy), "focal" (focal loss) or "watch-time"
            (positives weighted by watch time: Covington's weighted logistic regression,
            whose odds estimate expected watch time, so its probabilities are not P(watch)).
        focal_gamma: focusing parameter for "focal".
    """

    dim: int
    n_dense: int
    hidden: tuple[int, ...] = (64, 32)
    loss: RankingLoss = "bce"
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.loss not in ("bce", "focal", "watch-time"):
            raise CrossentError(f'loss = {self.loss!r} must be "bce", "focal" or "watch-time"')


class RankingModel(nn.Module):
    """P(watch) logit from user vector, video vector and dense features (wide & deep).

    The network's logit ``z`` (:meth:`uncalibrated_logits`, what training fits) goes through
    a post-hoc calibration ``calibration_scale * z + calibration_shift`` (Platt scaling, fitted
    on validation examples by :func:`crossent.recsys.train.calibrate_ranking`) to give the
    logit of P(watch) (:meth:`forward`). Both buffers start at the identity (1, 0).
    """

    def __init__(self, config: RankingConfig) -> None:
        super().__init__()
        self.config = config
        width = 3 * config.dim + config.n_dense
        layers: list[nn.Module] = []
        for size in config.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.deep = nn.Sequential(*layers)
        self.wide = nn.Linear(config.n_dense, 1)
        # dense features are standardised with statistics of the training set
        self.dense_mean: torch.Tensor
        self.dense_std: torch.Tensor
        self.register_buffer("dense_mean", torch.zeros(config.n_dense))
        self.register_buffer("dense_std", torch.ones(config.n_dense))
        # Platt scaling of the logit; checkpoints written before it existed load as identity
        self.calibration_scale: torch.Tensor
        self.calibration_shift: torch.Tensor
        self.register_buffer("calibration_scale", torch.tensor(1.0))
        self.register_buffer("calibration_shift", torch.tensor(0.0))

    def uncalibrated_logits(
        self, user: torch.Tensor, item: torch.Tensor, dense: torch.Tensor
    ) -> torch.Tensor:
        """``(N, dim), (N, dim), (N, n_dense)`` -> ``(N,)`` the network's logits (training)."""
        dense = (dense - self.dense_mean) / self.dense_std
        features = torch.cat([user, item, user * item, dense], dim=1)  # (N, 3 dim + n_dense)
        return self.deep(features)[:, 0] + self.wide(dense)[:, 0]

    def forward(self, user: torch.Tensor, item: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """``(N, dim), (N, dim), (N, n_dense)`` -> ``(N,)`` calibrated logits of P(watch)."""
        logits = self.uncalibrated_logits(user, item, dense)
        return self.calibration_scale * logits + self.calibration_shift
