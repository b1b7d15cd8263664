"""Workers for the multi-process training tests of tests/distributed/test_distributed.py.

Every rank trains the candidate generator on the same small simulated log with the same seed
through ``fit_candidate_distributed``; rank 0 also returns the gathered model's state and its
test cross-entropy, for comparison with a single-process ``fit_candidate`` run.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from _sharded_workers import equivalence_worker

from crossent.recsys.data.interactions import Split, leave_last_out
from crossent.recsys.data.simulate import SimulationConfig, simulate
from crossent.recsys.evaluation.next_watch import retrieval_cross_entropy
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.training.loop import TrainConfig
from crossent.recsys.training.parallel import fit_candidate_distributed, launch_from_env

TRAIN = TrainConfig(epochs=2, batch_size=50, lr=1e-2, patience=5, seed=3)


def small_split() -> Split:
    log = simulate(SimulationConfig(n_users=80, n_videos=97, max_watches=15, seed=2))
    return leave_last_out(log.interactions)


def fresh_model(split: Split, model: str = "sequence") -> CandidateModel:
    """A small candidate model; no dropout, so that every rank's share of a batch sees the
    same network as the single process does; a separate output table, which the sharded
    softmax splits across the ranks."""
    torch.manual_seed(0)
    config = CandidateConfig(
        n_items=split.n_items, model=model, dim=8, hidden=16, history=6, dropout=0.0,
        tie_embeddings=False,
    )
    return CandidateModel(config)


def training_worker(rank: int, world_size: int) -> dict[str, Any]:
    # as torchrun would describe this process (the group itself is already initialised)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    launch = launch_from_env()
    split = small_split()
    history, full = fit_candidate_distributed(
        fresh_model(split), split, TRAIN, launch=launch, progress=False
    )
    result: dict[str, Any] = {
        "train_bits": history.train_bits,
        "valid_bits": history.valid_bits,
        "best_epoch": history.best_epoch,
        "has_model": full is not None,
    }
    if full is not None:
        result["test_bits"] = retrieval_cross_entropy(full, split, "test")["bits"]
        result["state"] = full.state_dict()
    return result


def all_checks_worker(rank: int, world_size: int) -> dict[str, Any]:
    """The sharded-loss checks and, with 2 ranks, the training run: one spawn, one import."""
    result = equivalence_worker(rank, world_size)
    if world_size == 2:
        result["training"] = training_worker(rank, world_size)
    return result
