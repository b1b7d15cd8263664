"""The built-in simulated watch log, with known true probabilities.

Every video ``j`` has a unit taste vector ``v_j`` and a Zipf popularity logit ``b_j``; every user
``u`` a unit taste vector ``θ_u``. A user's first watch is drawn from
``softmax(s · θ_u · v + b)``; every later watch from

.. math::

    p(j \\mid \\text{history}) \\propto
        \\exp\\big(s \\cdot \\bar v_{\\text{last } H} \\cdot v_j
        + \\kappa \\cdot (R\\, v_{\\text{prev}}) \\cdot v_j + b_j\\big)
        \\quad\\text{over the videos not yet watched,}

where ``\\bar v`` is the mean taste vector of the user's last ``H = history`` watches (taste),
``v_prev`` the taste vector of the previous watch and ``R`` a fixed random rotation (the
item-to-item transition: after ``i``, videos close to ``R v_i`` are likelier), mixed with
weights ``s = taste_scale`` and ``κ = transition_scale``. The order of the watches thus carries
signal a bag of the history cannot see, and the distribution depends only on the watch history
and is exactly computable (:meth:`SimulatedWatchLog.next_watch_log_probs`): its entropy is the
Bayes limit of any next-watch model. The user vector ``s \\bar v + κ R v_prev`` is linear in
the history's embeddings, which a self-attentive encoder (uniform attention for the mean, the
last position for the transition) can represent.

Impressions (for the ranking stage) are shown after each user's last watch: a candidate ``j``
in slot ``k`` that was already shown ``n`` times before is watched with probability

.. math::

    P(\\text{watch}) = \\sigma\\big(c_0 + c_1\\,\\bar v \\cdot v_j + c_2\\,(b_j - \\bar b)
        - c_3\\,n - c_4 \\log(1 + k)\\big).

Both distributions are exposed, so the entropy of the truth is known at every position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from crossent._validation.numbers import check_int, check_number
from crossent.errors import CrossentError
from crossent.recsys.data.impressions import Impressions, sample_without_replacement
from crossent.recsys.data.interactions import Interactions


@dataclass(frozen=True)
class SimulationConfig:
    """Sizes and knobs of the simulated world (all defaults give the demo's data set).

    Attributes:
        n_users, n_videos: population sizes.
        dim: dimension of the latent taste vectors.
        min_watches, max_watches: each user's watch count is uniform in this range (inclusive).
        history: ``H``, the number of recent watches that set the next-watch distribution.
        taste_scale: ``s``, sharpness of taste (higher = lower entropy).
        transition_scale: ``κ``, weight of the item-to-item transition from the previous
            watch (0: the order of the history carries no signal).
        zipf_exponent: popularity logit of the video of popularity rank ``r`` is
            ``-zipf_exponent * log(r)``.
        impressions_per_user: ranking-stage impressions shown after each user's last watch.
        impression_coef: ``(c0, c1, c2, c3, c4)`` of the watch-probability model above.
        seed: everything is a function of this seed.
    """

    n_users: int = 10_000
    n_videos: int = 5_000
    dim: int = 16
    min_watches: int = 8
    max_watches: int = 40
    history: int = 50
    taste_scale: float = 12.0
    transition_scale: float = 8.0
    zipf_exponent: float = 0.8
    impressions_per_user: int = 20
    impression_coef: tuple[float, float, float, float, float] = (-1.5, 4.0, 0.5, 0.5, 0.4)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_users", "n_videos", "dim", "history"):
            check_int(getattr(self, name), name, low=1)
        if not 3 <= self.min_watches <= self.max_watches:
            raise CrossentError(
                f"min_watches = {self.min_watches}, max_watches = {self.max_watches}: "
                "need 3 <= min_watches <= max_watches (leave-last-out needs 3 watches)"
            )
        if self.max_watches > self.n_videos:
            raise CrossentError(
                f"max_watches = {self.max_watches} exceeds n_videos = {self.n_videos} "
                "(a user watches each video at most once)"
            )
        if self.impressions_per_user > self.n_videos - self.max_watches:
            raise CrossentError(
                f"impressions_per_user = {self.impressions_per_user} exceeds n_videos - "
                f"max_watches = {self.n_videos - self.max_watches} (impressions show distinct "
                "unwatched videos)"
            )
        check_int(self.impressions_per_user, "impressions_per_user", low=0)
        for name in ("taste_scale", "transition_scale", "zipf_exponent"):
            check_number(getattr(self, name), name, low=0.0)


@dataclass(frozen=True, eq=False)
class SimulatedWatchLog:
    """A simulated watch log and the truth that generated it.

    Attributes:
        config: the :class:`SimulationConfig`.
        interactions: the watch log (user and video original ids are ``0..n-1``, and so are
            the contiguous ids — every simulated user and video is kept).
        impressions: the ranking-stage impressions.
        video_taste: ``(n_videos, dim)`` the ``v_j``.
        popularity_logit: ``(n_videos,)`` the ``b_j``.
        watches: ``(n_users, max_watches)`` each user's watches in order, ``-1`` past the end.
        transition: ``(dim, dim)`` the rotation ``R`` of the item-to-item transition.
    """

    config: SimulationConfig
    interactions: Interactions
    impressions: Impressions
    video_taste: torch.Tensor
    popularity_logit: torch.Tensor
    watches: torch.Tensor
    transition: torch.Tensor

    def next_watch_log_probs(self, users: np.ndarray, position: np.ndarray) -> torch.Tensor:
        """The true log-distribution of ``users[i]``'s watch number ``position[i]`` (0-based).

        It depends only on the user's earlier watches. Returns ``(len(users), n_videos)``;
        already-watched videos have log-probability ``-inf``.
        """
        users_t = torch.as_tensor(np.asarray(users), dtype=torch.long)
        position_t = torch.as_tensor(np.asarray(position), dtype=torch.long)
        counts = (self.watches[users_t] >= 0).sum(1)
        if (position_t < 0).any() or (position_t >= counts).any():
            bad = int(torch.nonzero((position_t < 0) | (position_t >= counts))[0, 0])
            raise CrossentError(
                f"position[{bad}] = {int(position_t[bad])} is outside the watches of user "
                f"{int(users_t[bad])} ([0, {int(counts[bad])}))"
            )
        earlier = self.watches[users_t]  # (N, max_watches)
        columns = torch.arange(earlier.shape[1])
        earlier = torch.where(columns[None, :] < position_t[:, None], earlier, -1)
        first_state = _user_taste(self.config)[users_t]
        query = _query(
            self.config, self.video_taste, self.transition, earlier, position_t, first_state
        )
        logits = query @ self.video_taste.T + self.popularity_logit  # (N, V)
        logits.masked_fill_(_watched_mask(earlier, logits.shape[1]), -math.inf)
        return torch.log_softmax(logits, dim=1)

    def entropy_at(
        self, users: np.ndarray, position: np.ndarray, *, batch: int = 2048
    ) -> np.ndarray:
        """Entropy (nats) of the true next-watch distribution at each (user, position)."""
        out = np.empty(len(users))
        for start in range(0, len(users), batch):
            log_probs = self.next_watch_log_probs(
                users[start : start + batch], position[start : start + batch]
            )
            probs = log_probs.exp()
            out[start : start + batch] = -(probs * log_probs.clamp_min(-1e30)).sum(1).numpy()
        return out


def _zipf_logits(config: SimulationConfig, generator: torch.Generator) -> torch.Tensor:
    rank = torch.randperm(config.n_videos, generator=generator) + 1
    logits = -config.zipf_exponent * torch.log(rank.double())
    return (logits - torch.logsumexp(logits, 0)).float()


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _user_taste(config: SimulationConfig) -> torch.Tensor:
    generator = torch.Generator().manual_seed(config.seed * 7919 + 17)
    return _unit(torch.randn(config.n_users, config.dim, generator=generator))


def _rotation(config: SimulationConfig) -> torch.Tensor:
    """The transition's fixed random rotation ``R`` (QR of a Gaussian matrix, signs fixed)."""
    generator = torch.Generator().manual_seed(config.seed * 7919 + 29)
    q, r = torch.linalg.qr(torch.randn(config.dim, config.dim, generator=generator))
    return q * torch.sign(torch.diagonal(r))[None, :]


def _query(
    config: SimulationConfig,
    video_taste: torch.Tensor,
    transition: torch.Tensor,
    earlier: torch.Tensor,
    position: torch.Tensor,
    first_state: torch.Tensor,
) -> torch.Tensor:
    """``s v̄ + κ R v_prev`` ``(N, dim)`` given ``earlier`` watches (``-1`` = none)."""
    state = _state(config, video_taste, earlier, position, first_state)  # (N, dim)
    previous = earlier.gather(1, (position - 1).clamp_min(0)[:, None])[:, 0]  # (N,)
    has_previous = (position > 0) & (previous >= 0)
    step = video_taste[previous.clamp_min(0)] @ transition.T  # (N, dim) R v_prev
    step = torch.where(has_previous[:, None], step, 0.0)
    return config.taste_scale * state + config.transition_scale * step


def _watched_mask(earlier: torch.Tensor, n_videos: int) -> torch.Tensor:
    """``(N, n_videos)`` True where the video is among the row's watches (``-1`` = none)."""
    rows, columns = torch.nonzero(earlier >= 0, as_tuple=True)
    mask = torch.zeros(len(earlier), n_videos, dtype=torch.bool)
    mask[rows, earlier[rows, columns]] = True
    return mask


def _state(
    config: SimulationConfig,
    video_taste: torch.Tensor,
    earlier: torch.Tensor,
    position: torch.Tensor,
    first_state: torch.Tensor,
) -> torch.Tensor:
    """Mean taste of the last ``history`` watches; the user's own taste before any watch."""
    columns = torch.arange(earlier.shape[1])
    in_window = (earlier >= 0) & (columns[None, :] >= (position - config.history)[:, None])
    weights = in_window.float()  # (N, L)
    summed = torch.einsum("nl,nld->nd", weights, video_taste[earlier.clamp_min(0)])
    count = weights.sum(1, keepdim=True)
    return torch.where(count > 0, summed / count.clamp_min(1), first_state)


def simulate(config: SimulationConfig | None = None) -> SimulatedWatchLog:
    """Draw a watch log (and impressions) from the world described by ``config``.

    Vectorised over users: one ``(n_users, n_videos)`` softmax per watch position, so
    10,000 users x 5,000 videos take a few seconds.

    Example:
        >>> log = simulate(SimulationConfig(n_users=50, n_videos=100, seed=1))
        >>> log.interactions.n_users, log.interactions.n_items
        (50, 100)
    """
    config = config or SimulationConfig()
    generator = torch.Generator().manual_seed(config.seed)
    video_taste = _unit(torch.randn(config.n_videos, config.dim, generator=generator))
    popularity_logit = _zipf_logits(config, generator)
    user_taste = _user_taste(config)
    transition = _rotation(config)
    lengths = torch.randint(
        config.min_watches, config.max_watches + 1, (config.n_users,), generator=generator
    )
    watches = torch.full((config.n_users, config.max_watches), -1, dtype=torch.long)
    # running sum of the tastes in the window, so each step costs one (N, V) pass
    window_sum = torch.zeros(config.n_users, config.dim)
    for position in range(config.max_watches):
        active = torch.nonzero(lengths > position)[:, 0]
        count = min(position, config.history)
        state = window_sum[active] / count if count else user_taste[active]
        query = config.taste_scale * state
        if position:
            previous = video_taste[watches[active, position - 1]]  # (A, dim)
            query = query + config.transition_scale * previous @ transition.T
        seen = watches[active, :position]
        drawn = _sample_rows(config, query, video_taste, popularity_logit, seen, generator)
        watches[active, position] = drawn
        window_sum[active] += video_taste[drawn]
        if position >= config.history:
            window_sum[active] -= video_taste[watches[active, position - config.history]]
    impressions = _impressions(
        config, video_taste, popularity_logit, watches, lengths, user_taste, generator
    )
    interactions = _as_interactions(config, watches, lengths, generator)
    return SimulatedWatchLog(
        config, interactions, impressions, video_taste, popularity_logit, watches, transition
    )


def _sample_rows(
    config: SimulationConfig,
    query: torch.Tensor,
    video_taste: torch.Tensor,
    popularity_logit: torch.Tensor,
    seen: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """One draw per row from the masked softmax, by inverse CDF (much faster than multinomial).

    Logits are shifted by their row max over the unwatched videos (max shift, as in
    log-sum-exp) before exp(): the top video then has weight 1, so the row total is >= 1 and
    never underflows to 0. (A fixed shift by -s underflowed for a sharp taste_scale: every
    weight became 0 and the draw fell on video 0, watched or not.)
    """
    logits = torch.addmm(popularity_logit, query, video_taste.T)  # (A, V)
    if seen.shape[1]:
        logits.scatter_(1, seen, -math.inf)
    weights = logits.sub_(logits.max(1, keepdim=True).values).exp_()  # (A, V) unnormalised
    cdf = weights.cumsum_(1)
    # uniform in (0, 1], so a zero-weight video can never be picked
    uniform = 1.0 - torch.rand(len(query), 1, generator=generator)
    drawn = torch.searchsorted(cdf, uniform * cdf[:, -1:])[:, 0]
    return drawn.clamp_max(config.n_videos - 1)


def _as_interactions(
    config: SimulationConfig,
    watches: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
) -> Interactions:
    valid = watches >= 0
    user = torch.arange(config.n_users)[:, None].expand_as(watches)[valid]
    item = watches[valid]
    # each user starts at a random hour and watches at exponential gaps (timestamps in seconds)
    start = torch.rand(config.n_users, generator=generator) * 30 * 86_400
    gaps = -torch.log1p(-torch.rand(watches.shape, generator=generator)) * 3_600
    times = (start[:, None] + gaps.cumsum(1))[valid]
    watch_time = 1.0 + (-torch.log1p(-torch.rand(len(item), generator=generator)) * 8.0)
    return Interactions(
        user=user.numpy().astype(np.int64),
        item=item.numpy().astype(np.int64),
        timestamp=times.double().round().numpy().astype(np.int64),
        rating=None,
        watch_time=watch_time.double().numpy(),
        user_ids=np.arange(config.n_users, dtype=np.int64),
        item_ids=np.arange(config.n_videos, dtype=np.int64),
    )


def _impressions(
    config: SimulationConfig,
    video_taste: torch.Tensor,
    popularity_logit: torch.Tensor,
    watches: torch.Tensor,
    lengths: torch.Tensor,
    user_taste: torch.Tensor,
    generator: torch.Generator,
) -> Impressions:
    """Impressions after each user's last watch; candidates drawn like a candidate generator."""
    n, k = config.n_users, config.impressions_per_user
    c0, c1, c2, c3, c4 = config.impression_coef
    affinity = torch.empty(n, k)
    items = torch.empty(n, k, dtype=torch.long)
    for start in range(0, n, 4096):
        rows = slice(start, min(n, start + 4096))
        state = _state(config, video_taste, watches[rows], lengths[rows], user_taste[rows])
        cosine = state @ video_taste.T  # (B, V)
        # candidates come from a softer version of the next-watch distribution
        logits = 0.5 * (config.taste_scale * cosine + popularity_logit)
        logits.masked_fill_(_watched_mask(watches[rows], config.n_videos), -math.inf)
        drawn = sample_without_replacement(logits, k, generator)  # (B, k)
        items[rows] = drawn
        affinity[rows] = cosine.gather(1, drawn)
    n_previous = torch.poisson(torch.full((n, k), 0.7), generator=generator).clamp_max(4)
    slot = torch.arange(k)[None, :].expand(n, k) % 10
    logit = (
        c0
        + c1 * affinity
        + c2 * (popularity_logit - popularity_logit.mean())[items]
        - c3 * n_previous
        - c4 * torch.log1p(slot.float())
    )
    true_prob = torch.sigmoid(logit.double())
    watched = torch.bernoulli(true_prob, generator=generator)
    minutes = -torch.log1p(-torch.rand(n, k, generator=generator).double()) * 4.0
    watch_time = watched * minutes * torch.exp(affinity.double())
    return Impressions(
        user=torch.arange(n)[:, None].expand(n, k).reshape(-1).numpy().astype(np.int64),
        item=items.reshape(-1).numpy().astype(np.int64),
        n_previous=n_previous.reshape(-1).numpy().astype(np.int64),
        slot=slot.reshape(-1).numpy().astype(np.int64),
        true_prob=true_prob.reshape(-1).numpy(),
        watched=watched.reshape(-1).numpy().astype(np.float64),
        watch_time=watch_time.reshape(-1).numpy(),
    )
