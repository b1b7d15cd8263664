"""Ranking-stage impressions of the simulated world, and the draw that picks their videos."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class Impressions:
    """Ranking-stage impressions with their true watch probabilities.

    Attributes:
        user: ``(m,)`` contiguous user id (the id space of the watch log).
        item: ``(m,)`` contiguous video id.
        n_previous: ``(m,)`` times this video was shown to this user before.
        slot: ``(m,)`` position on the page (0 = top).
        true_prob: ``(m,)`` the true P(watch).
        watched: ``(m,)`` 0/1 label drawn from ``true_prob``.
        watch_time: ``(m,)`` minutes watched (0 where not watched).
    """

    user: np.ndarray
    item: np.ndarray
    n_previous: np.ndarray
    slot: np.ndarray
    true_prob: np.ndarray
    watched: np.ndarray
    watch_time: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, rows: np.ndarray) -> Impressions:
        """The impressions at ``rows``."""
        return Impressions(*(getattr(self, name)[rows] for name in _IMPRESSION_FIELDS))


_IMPRESSION_FIELDS = ("user", "item", "n_previous", "slot", "true_prob", "watched", "watch_time")


def sample_without_replacement(
    logits: torch.Tensor, k: int, generator: torch.Generator
) -> torch.Tensor:
    """``k`` distinct columns per row drawn in proportion to ``softmax(logits)``, in log space.

    The exponential-race (Gumbel-top-k) trick: the ``k`` largest ``logits - log E`` with
    ``E ~ Exp(1)`` are a draw without replacement (Kool et al. 2019) — what
    ``torch.multinomial(softmax(logits), k)`` computes from ``probs / E``. Staying in log space
    means no probability underflows to 0, so a row with at least ``k`` finite logits (the
    config guarantees ``n_videos - max_watches >= k`` unwatched videos) always has ``k``
    candidates, however sharp the taste; ``-inf`` (watched) columns are never picked.
    """
    race = torch.empty_like(logits).exponential_(1.0, generator=generator)
    return torch.topk(logits - race.log_(), k, dim=1).indices
