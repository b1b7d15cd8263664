"""Whole runs on the simulated log: simulate, train candidate generation (and the ranking
stage), evaluate against the simulator's truth.

Candidate generation is :mod:`crossent.recsys.retrieval` and the ranking stage
:mod:`crossent.recsys.ranking_stage`; each run returns a
:class:`~crossent.recsys.results.RunResult` holding the trained models, per-epoch histories
and every metric beside the baselines (most popular, tuned EASE, the bag model) and the truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from crossent.errors import CrossentError
from crossent.recsys.evaluate import evaluate_retrieval
from crossent.recsys.events import Listener, note
from crossent.recsys.models import Objective, RankingLoss
from crossent.recsys.next_watch import TruthFn
from crossent.recsys.parallel import Launch
from crossent.recsys.ranking_stage import train_simulated_ranking
from crossent.recsys.results import RunResult
from crossent.recsys.retrieval import compare_objectives, train_retrieval
from crossent.recsys.simulate import SimulatedWatchLog, SimulationConfig, simulate
from crossent.recsys.train import TrainConfig


def simulated_truth(log: SimulatedWatchLog) -> TruthFn:
    """The true next-watch log-probabilities ``(B, n_items)`` of each user's test watch."""
    lengths = (log.watches >= 0).sum(1).numpy()

    def truth(users: np.ndarray) -> torch.Tensor:
        # test target = each user's last watch; its distribution depends on the earlier ones
        return log.next_watch_log_probs(users, lengths[users] - 1).double()

    return truth


class _TruthScorer:
    """The simulator's true next-watch log-probabilities as a retrieval scorer (test stage)."""

    def __init__(self, truth: TruthFn) -> None:
        self.truth = truth

    def score(self, users: np.ndarray, history: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        # watched videos have log-probability -inf; the evaluator excludes them anyway
        return self.truth(users).clamp_min(-1e30).numpy()


def run_simulated(
    config: SimulationConfig,
    *,
    objectives: tuple[Objective, ...] = ("full",),
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    ranking_config: TrainConfig | None = None,
    ranking_loss: RankingLoss = "bce",
    stages: tuple[str, ...] = ("retrieval", "ranking"),
    progress: bool = True,
    listener: Listener | None = None,
    launch: Launch | None = None,
) -> tuple[RunResult, SimulatedWatchLog]:
    """Simulate, train the requested stages, evaluate against baselines and the truth.

    Several ``objectives`` train the same model under each
    (:func:`~crossent.recsys.retrieval.compare_objectives`; one process only). With a
    multi-process ``launch`` the ranking stage runs on rank 0 only (see
    :func:`~crossent.recsys.retrieval.train_retrieval`).
    """
    note(
        listener,
        "simulating",
        f"{config.n_users:,} users x {config.n_videos:,} videos (seed {config.seed})",
    )
    log = simulate(config)
    truth = simulated_truth(log)
    if len(objectives) > 1:
        if launch is not None and launch.distributed:
            raise CrossentError("comparing objectives runs in one process (not torchrun)")
        result = compare_objectives(
            log.interactions, objectives, model_config=model_config,
            train_config=train_config, truth=truth, progress=progress, listener=listener,
        )
    else:
        result = train_retrieval(
            log.interactions,
            model_config={**(model_config or {}), "objective": objectives[0]},
            train_config=train_config,
            truth=truth,
            progress=progress,
            listener=listener,
            launch=launch,
        )
    if result.retrieval and "rank" not in result.info:
        # the oracle: ranking by the true next-watch distribution (what a perfect model does)
        result.retrieval["truth (oracle)"] = evaluate_retrieval(
            _TruthScorer(truth), result.split, progress=progress
        )
    if "ranking" in stages and "rank" not in result.info:
        train_simulated_ranking(
            result,
            log,
            loss=ranking_loss,
            train_config=ranking_config,
            progress=progress,
            listener=listener,
        )
    result.info["simulation"] = config
    return result, log
