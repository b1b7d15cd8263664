"""Helpers of the server tests: a small checkpoint with random weights, a free port."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch

from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.ranker import RankingConfig, RankingModel
from crossent.recsys.models.ranking_inputs import DENSE_FEATURES
from crossent.recsys.serving.checkpoint import save_checkpoint

N_USERS, N_ITEMS = 30, 60


def build_checkpoint(folder: Path, *, ranking: bool = True, titles: bool = True) -> Path:
    """Users 500..529 with 3 to 12 watches each of items 1000..1059 (every item watched by
    someone), a sequence candidate model and (``ranking``) a ranking model, random weights;
    titles ``"Film 1000 (1990)"``, ... with two items sharing the title ``"Twin (2000)"``."""
    rng = np.random.default_rng(7)
    counts = rng.integers(3, 13, N_USERS)
    users = np.repeat(np.arange(N_USERS) + 500, counts)
    items = np.concatenate([rng.choice(N_ITEMS, n, replace=False) + 1000 for n in counts])
    users = np.concatenate([users, np.full(N_ITEMS, 999)])  # user 999 watched everything
    items = np.concatenate([items, np.arange(N_ITEMS) + 1000])
    watches = Interactions.from_arrays(users, items, rng.permutation(len(items)))
    torch.manual_seed(0)
    candidate = CandidateModel(CandidateConfig(n_items=N_ITEMS, dim=8, hidden=8, history=5))
    with torch.no_grad():
        candidate.item_bias.normal_()
    stage = RankingModel(RankingConfig(dim=8, n_dense=len(DENSE_FEATURES), hidden=(8,)))
    with torch.no_grad():
        for parameter in stage.parameters():
            parameter.normal_(std=0.5)
    names = None
    if titles:
        names = [f"Film {item} ({1990 + item % 20})" for item in watches.item_ids]
        names[3] = names[4] = "Twin (2000)"
        names[5] = None  # an item without a title
    return save_checkpoint(
        folder, candidate, watches, ranking=stage if ranking else None, titles=names
    )


def free_port() -> int:
    """A port on 127.0.0.1 free at the time of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
