"""What ``crossent train`` saves for a sequence model: the sequence model and the bag model
trained beside it, blended into one candidate model (:class:`BlendedCandidate`).

The two encoders err differently: the sequence model reads the order of the last watches, the
bag their mix. Averaging their log-probabilities is the product of the two experts (Hinton
2002), and because a log-softmax is a logit less a per-user constant, the product is itself one
candidate model whose user vector and item rows are the members' side by side. The weight is
chosen on validation (:func:`crossent.recsys.saved_model.choose_blend`); the README's "Amazon
Video: the blend" has the measurements.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from crossent.errors import CrossentError
from crossent.recsys.models.networks import CandidateConfig, CandidateModel


def bag_companion(config: CandidateConfig) -> CandidateConfig:
    """The bag model trained beside the sequence model of ``config``: the same width, history
    and catalogue, the full softmax, a separate output table and an item bias."""
    return replace(
        config, model="bag", objective="full", tie_embeddings=False, item_bias=True,
        bag_weight=0.0,
    )


class BlendedCandidate(CandidateModel):
    """A sequence model and its bag model as one candidate model: their log-probabilities
    averaged with weights ``1 - w`` and ``w`` (``w = config.bag_weight``).

    The average of two log-softmaxes is, up to a constant per user, the logit
    ``(1 - w)(u_s · s_j) + w(u_b · b_j + c_j)``, which is the dot product of the concatenated
    user vector ``[(1 - w) u_s, w u_b]`` with the concatenated item row ``[s_j, b_j]`` plus the
    bias ``w c_j``. So the blend serves, ranks and scores exactly as one candidate model does
    (its softmax is the normalised geometric mean of the two members' distributions), and
    every consumer of :meth:`user_vector`, :meth:`output_table` and ``item_bias`` takes it
    unchanged. The two members train apart, each with its own schedule
    (:mod:`crossent.recsys.retrieval`); a blend is only assembled and saved, never trained.

    Example:
        >>> config = CandidateConfig(n_items=5, dim=4, history=3)
        >>> blend = BlendedCandidate.of(
        ...     CandidateModel(config), CandidateModel(bag_companion(config)), 0.5
        ... ).eval()
        >>> blend.config.model, tuple(blend.output_table().shape)
        ('blend', (5, 8))
        >>> window = torch.tensor([[5, 0, 1]])
        >>> mean = 0.5 * (torch.log_softmax(blend.sequence.scores(window), 1)
        ...               + torch.log_softmax(blend.bag.scores(window), 1))
        >>> torch.allclose(torch.log_softmax(blend.scores(window), 1),
        ...                torch.log_softmax(mean, 1), atol=1e-5)
        True
    """

    def __init__(self, config: CandidateConfig) -> None:
        nn.Module.__init__(self)
        if config.model != "blend":
            raise CrossentError(f"BlendedCandidate needs model = 'blend', not {config.model!r}")
        self.config = config
        self.sequence = CandidateModel(replace(config, model="sequence", bag_weight=0.0))
        self.bag = CandidateModel(bag_companion(self.sequence.config))
        self.eval()  # never trained: its members' dropout stays off

    @classmethod
    def of(
        cls, sequence: CandidateModel, bag: CandidateModel, bag_weight: float
    ) -> BlendedCandidate:
        """The blend of two trained models (copies of their weights)."""
        blend = cls(replace(sequence.config, model="blend", bag_weight=bag_weight))
        if blend.bag.config != bag.config:
            raise CrossentError(
                f"the bag model's config {bag.config} is not the companion of the sequence model"
            )
        blend.sequence.load_state_dict(sequence.state_dict())
        blend.bag.load_state_dict(bag.state_dict())
        return blend

    @property
    def item_bias(self) -> torch.Tensor:  # type: ignore[override]
        weight = self.config.bag_weight
        return (1 - weight) * self.sequence.item_bias + weight * self.bag.item_bias

    def output_table(self) -> torch.Tensor:
        return torch.cat([self.sequence.output_table(), self.bag.output_table()], 1)

    def _joined(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        weight = self.config.bag_weight
        return torch.cat([(1 - weight) * first, weight * second], 1)

    def user_vector(self, window: torch.Tensor) -> torch.Tensor:
        return self._joined(self.sequence.user_vector(window), self.bag.user_vector(window))

    def inference_vector(self, window: torch.Tensor) -> torch.Tensor:
        return self._joined(
            self.sequence.inference_vector(window), self.bag.inference_vector(window)
        )

    def _not_trained(self, *_: Any, **__: Any) -> Any:
        raise CrossentError(
            "a blend is not trained: train its sequence model and its bag model, then "
            "BlendedCandidate.of(sequence, bag, bag_weight)"
        )

    examples = states = seen_keys = loss = example_lengths = objective_loss = _not_trained


def candidate_model(config: CandidateConfig) -> CandidateModel:
    """The (untrained) candidate model ``config`` describes, a blend included."""
    return BlendedCandidate(config) if config.model == "blend" else CandidateModel(config)
