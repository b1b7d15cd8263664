"""The ranking stage's network (Covington et al., RecSys 2016): P(watch | user, video, context).

:class:`RankingModel` is an MLP on the candidate model's user vector, the video embedding, their
element-wise product and dense interaction features, plus a linear ("wide") path on the dense
features; trained with binary cross-entropy (or the focal or watch-time losses), then
calibrated (Platt scaling) on validation examples.

References:
    Covington, Adams, Sargin. Deep Neural Networks for YouTube Recommendations. RecSys 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from crossent._validation.choices import RankingLoss
from crossent.errors import CrossentError


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
    on validation examples by :func:`crossent.recsys.training.ranking.calibrate_ranking`) to give
    the
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
