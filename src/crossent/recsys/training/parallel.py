"""The candidate generator trained by several processes (``torchrun``): data parallel towers,
a catalogue-sharded softmax.

Each rank owns a contiguous slice of the output embedding table and bias
(:func:`crossent.distributed.shard_range`); every other parameter (the input embeddings and the
sequence encoder or the bag's MLP tower) is replicated and kept in sync by
``DistributedDataParallel``. A training step:

1. every rank draws the same global batch (the shuffling generator has the same seed), takes its
   own part of the examples and computes their states (one per target: every position of a
   sequence window, or the bag's user vector) through the DDP-wrapped encoder;
2. :func:`crossent.distributed.gather_rows` gives every rank all states, and
   :func:`crossent.distributed.sharded_cross_entropy` the exact full-catalogue softmax loss of the
   whole batch against the sharded table, padding skipped by ``ignore_index`` (plus the history
   mask, from per-shard scores);
3. backward: each shard's gradient is complete (no communication); each rank's state rows get
   their complete gradient; DDP *sums* the encoder's gradients over ranks (a SUM comm hook,
   since the loss is already the mean over the global batch, not a per-rank mean).

Dropout would draw different masks on R ranks than in one process; the two agree exactly when
``dropout = 0``.

So a step with batch B on R ranks is the single-process step with batch B, up to the order of
floating-point sums. Validation and checkpoints gather the table on rank 0, so rank 0 must be able
to hold the full table in memory once; the training steps never gather it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from crossent.distributed import (
    copy_to_shards,
    gather_rows,
    gather_shards,
    shard_range,
    sharded_cross_entropy,
    sum_from_shards,
)
from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Split
from crossent.recsys.events import Listener
from crossent.recsys.models.networks import CandidateModel
from crossent.recsys.models.objectives import IGNORE, log1mexp
from crossent.recsys.models.sequence import leading_padding
from crossent.recsys.training.loop import (
    TrainConfig,
    TrainingCurves,
    candidate_validation,
    per_step,
    run_epochs,
)

#: The parameters of a CandidateModel that are split by rows across ranks.
SHARDED = ("item_out", "item_bias")


@dataclass(frozen=True)
class Launch:
    """Where this process stands: its rank, the world size and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, shows progress, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_from_env(timeout_minutes: float = 30.0) -> Launch:
    """Join the process group ``torchrun`` describes in the environment, or run alone.

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
    with ``WORLD_SIZE`` > 1 this initialises ``torch.distributed`` with the nccl backend (one
    GPU per process, ``cuda:LOCAL_RANK``) when CUDA is available, gloo on CPU otherwise.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Launch()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend, timeout=datetime.timedelta(minutes=timeout_minutes)
        )
    return Launch(rank=rank, world_size=world_size, device=device)


def shutdown(launch: Launch) -> None:
    """Leave the process group (after the last collective), every rank together.

    Rank 0 still evaluates and saves after the other ranks' last collective; a rank that tears
    the gloo group down while another still holds it dies in std::terminate. The barrier keeps
    every rank in the group until rank 0 is done (torchrun ends the others if rank 0 fails).
    """
    if launch.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _sum_gradients_hook(group, bucket):  # type: ignore[no-untyped-def]
    """DDP comm hook: SUM the gradients over ranks (DDP's default divides by the world size).

    Unannotated on purpose: DDP rejects a hook whose annotations are not its own classes, and
    with postponed annotations they would be strings.
    """
    future = dist.all_reduce(bucket.buffer(), group=group, async_op=True).get_future()
    return future.then(lambda done: done.value()[0])


class _UserSide(nn.Module):
    """Every parameter of a CandidateModel except the sharded table; forward = its states."""

    def __init__(self, model: CandidateModel) -> None:
        super().__init__()
        self.shared = nn.ParameterDict({
            name.replace(".", "__"): parameter
            for name, parameter in model.named_parameters()
            if name not in SHARDED
        })
        # not a submodule: DDP must not see (and synchronise) the sharded table
        self._model = [model]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's states: ``(n, d)`` (bag) or ``(n, L, d)`` (sequence)."""
        return self._model[0].states(inputs)


class ShardedCandidate(nn.Module):
    """A :class:`CandidateModel` whose output table lives in slices across the ranks.

    The model passed in is changed in place: its ``item_out`` and ``item_bias`` become this
    rank's slices (rows ``[offset, offset + V_r)``), so its ``states`` still work but
    ``scores`` needs :meth:`gather_model` first.
    """

    def __init__(self, model: CandidateModel, launch: Launch) -> None:
        super().__init__()
        if model.config.tie_embeddings:
            raise CrossentError(
                "tie_embeddings: training on several processes shards a separate output "
                "table (crossent train: --separate-embeddings)"
            )
        if model.config.objective != "full":
            raise CrossentError(
                f'objective = "{model.config.objective}": training on several processes '
                'shards the exact softmax and needs objective = "full"'
            )
        self.config = model.config
        self.launch = launch
        start, stop = shard_range(model.config.n_items, launch.rank, launch.world_size)
        self.offset = start
        model.item_out = nn.Parameter(model.item_out.detach()[start:stop].clone())
        bias = model.item_bias.detach()[start:stop].clone()
        if model.config.item_bias:
            model.item_bias = nn.Parameter(bias)
        else:  # a buffer, as in the whole model: zero, never trained
            model.register_buffer("item_bias", bias)
        model.to(launch.device)
        self.model = model
        user_side = _UserSide(model)
        if launch.distributed:  # broadcasts rank 0's replicated parameters, then syncs grads
            device_ids = [launch.device.index] if launch.device.type == "cuda" else None
            wrapped = DistributedDataParallel(user_side, device_ids=device_ids)
            wrapped.register_comm_hook(None, _sum_gradients_hook)
            self.user_side: nn.Module = wrapped
        else:
            self.user_side = user_side

    def per_row_loss(
        self, rows: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Per-target loss (nats) of the global batch ``rows``, shaped like ``targets[rows]``,
        on every rank (padded targets give 0).

        Args:
            rows: indices of the batch's examples, the same on every rank.
            inputs, targets: all examples (:meth:`CandidateModel.examples`), on every rank.
        """
        device = self.launch.device
        batch_inputs, batch_targets = inputs[rows], targets[rows]
        shape, skip = batch_targets.shape, 0
        if self.config.model == "sequence":  # as CandidateModel.loss: drop shared padding
            skip = leading_padding(batch_inputs, self.config.n_items)
            batch_inputs, batch_targets = batch_inputs[:, skip:], batch_targets[:, skip:]
        grid = batch_targets.reshape(len(rows), -1).to(device)  # (B, Q)
        positions = grid.shape[1]
        parts = batch_inputs.tensor_split(self.launch.world_size)
        states_local = self.user_side(parts[self.launch.rank].to(device))
        dim = states_local.shape[-1]
        counts = [len(part) * positions for part in parts]
        # (B Q, d), rank order = batch order
        states = gather_rows(states_local.reshape(-1, dim), counts)
        per_row = sharded_cross_entropy(
            states, self.model.item_out, grid.reshape(-1), shard_offset=self.offset,
            bias_shard=self.model.item_bias, ignore_index=IGNORE, reduction="none",
        ).view(grid.shape)
        if self.config.mask_history:
            per_row = self._mask_seen(
                states.view(*grid.shape, dim), batch_inputs.to(device), grid, per_row
            )
        return F.pad(per_row, (skip, 0)).reshape(shape)

    def _shard_scores(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``h_bq · w_item + b_item`` ``(B, Q, K)`` for ``items (B, K)``, from the owning ranks."""
        local = items - self.offset
        owned = (local >= 0) & (local < self.model.item_out.shape[0])
        safe = torch.where(owned, local, torch.zeros_like(local))
        partial = torch.einsum("bqd,bkd->bqk", states, self.model.item_out[safe])
        partial = partial + self.model.item_bias[safe][:, None, :]
        return sum_from_shards(torch.where(owned[:, None, :], partial, torch.zeros_like(partial)))

    def _mask_seen(
        self, states: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
        per_row: torch.Tensor,
    ) -> torch.Tensor:
        """:func:`crossent.recsys.models.objectives.mask_seen` from per-shard scores."""
        keys, keep = self.model.seen_keys(inputs, targets)
        replicated = copy_to_shards(states)  # backward: sum the shards' parts of d/d state
        key_scores = self._shard_scores(replicated, torch.where(keep.any(1), keys, 0))
        key_scores = torch.where(keep, key_scores, -1e4)  # finite: no inf - inf
        safe_targets = targets.clamp_min(0)  # (B, Q)
        target_scores = self._shard_scores(
            replicated.reshape(-1, 1, states.shape[-1]), safe_targets.reshape(-1, 1)
        ).view(targets.shape)
        full_lse = per_row + target_scores
        masked = per_row + log1mexp(full_lse - torch.logsumexp(key_scores, 2))
        return torch.where(targets != IGNORE, masked, 0.0)

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The unsharded model's state dict on rank 0 (``None`` elsewhere); a collective."""
        state = {
            name: value.detach().cpu()
            for name, value in self.model.state_dict().items()
            if name not in SHARDED
        }
        gathered = {
            name: gather_shards(getattr(self.model, name), shard_offset=self.offset)
            for name in SHARDED
        }
        if not self.launch.is_main:
            return None
        state.update({name: value.cpu() for name, value in gathered.items() if value is not None})
        return state

    def gather_model(self) -> CandidateModel | None:
        """A plain CPU :class:`CandidateModel` with the whole table on rank 0; a collective."""
        state = self.full_state_dict()
        if state is None:
            return None
        model = CandidateModel(self.config)
        model.load_state_dict(state)
        return model.eval()


def _broadcast_float(value: float, launch: Launch) -> float:
    """Rank 0's ``value`` on every rank (so early stopping decides the same everywhere)."""
    if not launch.distributed:
        return value
    carrier = torch.tensor([value], dtype=torch.float64, device=launch.device)
    dist.broadcast(carrier, src=0)
    return float(carrier.item())


def fit_candidate_distributed(
    model: CandidateModel,
    split: Split,
    config: TrainConfig | None = None,
    *,
    launch: Launch,
    valid_users: np.ndarray | None = None,
    progress: bool = True,
    listener: Listener | None = None,
) -> tuple[TrainingCurves, CandidateModel | None]:
    """:func:`crossent.recsys.training.loop.fit_candidate` across the ranks of ``launch``.

    Every rank calls it with the same data, config and an identically initialised ``model``
    (same seed). Rank 0 shows progress and validates; every rank stops at the same epoch.

    Returns:
        The training curves (the same on every rank) and, on rank 0, the trained model with
        the whole table (the best epoch's weights), ``None`` on the other ranks.
    """
    config = config or TrainConfig()
    inputs, targets = model.examples(split.train)
    sharded = ShardedCandidate(model, launch)
    validator = CandidateModel(model.config) if launch.is_main else None

    def step(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        count = int((targets[rows] != IGNORE).sum())
        return sharded.per_row_loss(rows, inputs, targets).sum() / max(count, 1), count

    def validate() -> dict[str, float]:
        state = sharded.full_state_dict()
        metrics = {"bits": 0.0, "ndcg": 0.0}
        if validator is not None and state is not None:
            validator.load_state_dict(state)
            validator.eval()
            metrics = candidate_validation(validator, split, valid_users)
        return {name: _broadcast_float(value, launch) for name, value in metrics.items()}

    curves = run_epochs(
        step, len(targets), validate, sharded, per_step(config, targets), label="retrieval",
        criterion="ndcg",
        progress=progress and launch.is_main, listener=listener if launch.is_main else None,
        lengths=model.example_lengths(inputs),
    )
    return curves, sharded.gather_model()
