"""End-to-end runs behind the CLI: simulate or load, split, train both stages, evaluate.

Each run returns a :class:`RunResult` holding the trained models, per-epoch histories and
every metric beside the baselines (most popular, EASE) and, on simulated data, the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.console import Console

from crossent.errors import CrossentError
from crossent.recsys.baselines import EASE, MostPopular
from crossent.recsys.data import Interactions, Split, leave_last_out
from crossent.recsys.evaluate import evaluate_retrieval
from crossent.recsys.models import (
    CandidateConfig,
    CandidateModel,
    Negatives,
    RankingConfig,
    RankingLoss,
    RankingModel,
)
from crossent.recsys.parallel import Launch, fit_candidate_distributed
from crossent.recsys.ranking import (
    DENSE_FEATURES,
    RankingInputs,
    evaluate_ranking,
    ranking_inputs,
    split_rows,
)
from crossent.recsys.simulate import SimulatedWatchLog, SimulationConfig, simulate
from crossent.recsys.train import (
    TrainConfig,
    TrainHistory,
    TruthFn,
    fit_candidate,
    fit_ranking,
    retrieval_cross_entropy,
)


@dataclass
class RunResult:
    """Everything a run produced: models, histories and metrics (name -> metric -> value)."""

    watches: Interactions
    split: Split
    candidate: CandidateModel
    ranking: RankingModel | None = None
    histories: dict[str, TrainHistory] = field(default_factory=dict)
    retrieval: dict[str, dict[str, float]] = field(default_factory=dict)
    cross_entropy: dict[str, float] = field(default_factory=dict)
    ranking_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    ranking_test: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _say(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(message)


def train_retrieval(
    watches: Interactions,
    *,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    truth: TruthFn | None = None,
    baselines: bool = True,
    ease_lambda: float = 200.0,
    ks: tuple[int, ...] = (10, 20),
    progress: bool = True,
    console: Console | None = None,
    launch: Launch | None = None,
) -> RunResult:
    """Leave-last-out split, candidate generation training, evaluation beside baselines.

    With a multi-process ``launch`` (torchrun) every rank trains its shard of the catalogue;
    rank 0 gets the gathered model and evaluates, the other ranks return after training with
    ``info["rank"]`` set and no metrics.
    """
    split = leave_last_out(watches)
    if len(split.users("test")) == 0:
        raise CrossentError(
            f"no user has 3 or more watches in {watches!r}; leave-last-out needs 3 per user"
        )
    torch.manual_seed(train_config.seed if train_config else 0)
    candidate = CandidateModel(CandidateConfig(n_items=split.n_items, **(model_config or {})))
    _say(
        console,
        f"[bold]candidate generation[/]: {split.n_users:,} users, "
        f"{split.n_items:,} videos, {len(split.train):,} training watches, "
        f"negatives = {candidate.config.negatives}",
    )
    if launch is not None and launch.distributed:
        history, gathered = fit_candidate_distributed(
            candidate, split, train_config, launch=launch, progress=progress, console=console
        )
        if gathered is None:  # not rank 0: training done; rank 0 evaluates and reports
            return RunResult(watches=watches, split=split, candidate=candidate,
                             histories={"retrieval": history}, info={"rank": launch.rank})
        candidate = gathered
    else:
        history = fit_candidate(
            candidate, split, train_config, progress=progress, console=console
        )
    result = RunResult(
        watches=watches, split=split, candidate=candidate, histories={"retrieval": history}
    )
    result.cross_entropy = retrieval_cross_entropy(candidate, split, "test", truth=truth)
    result.retrieval["model"] = evaluate_retrieval(candidate, split, ks=ks, progress=progress)
    if baselines:
        result.retrieval["most popular"] = evaluate_retrieval(
            MostPopular().fit(split.train), split, ks=ks, progress=progress
        )
        if split.n_items <= 20_000:
            result.retrieval["EASE"] = evaluate_retrieval(
                EASE(lam=ease_lambda).fit(split.train), split, ks=ks, progress=progress
            )
    return result


def train_simulated_ranking(
    result: RunResult,
    log: SimulatedWatchLog,
    *,
    loss: RankingLoss = "bce",
    train_config: TrainConfig | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> RunResult:
    """Ranking stage on the simulator's impressions (80/10/10 split), beside the truth."""
    impressions = log.impressions
    if len(impressions) == 0:
        raise CrossentError("the simulation has no impressions (impressions_per_user = 0)")
    inputs = ranking_inputs(
        result.candidate,
        log.interactions,
        result.split.train,
        impressions.user,
        impressions.item,
        impressions.watched,
        times_shown=impressions.n_previous,
        slot=impressions.slot,
        watch_time=impressions.watch_time,
        true_prob=impressions.true_prob,
    )
    train_rows, valid_rows, test_rows = split_rows(len(inputs), seed=log.config.seed)
    return _fit_and_evaluate_ranking(
        result,
        inputs,
        train_rows,
        valid_rows,
        test_rows,
        loss=loss,
        train_config=train_config,
        progress=progress,
        console=console,
    )


def _fit_and_evaluate_ranking(
    result: RunResult,
    inputs: RankingInputs,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    test_rows: np.ndarray,
    *,
    loss: RankingLoss,
    train_config: TrainConfig | None,
    progress: bool,
    console: Console | None,
) -> RunResult:
    train, valid, test = inputs.take(train_rows), inputs.take(valid_rows), inputs.take(test_rows)
    _say(
        console,
        f"[bold]ranking[/]: {len(train):,} training impressions, "
        f"watch rate {float(train.label.mean()):.3f}, loss = {loss}",
    )
    model = RankingModel(
        RankingConfig(dim=result.candidate.config.dim, n_dense=len(DENSE_FEATURES), loss=loss)
    )
    result.histories["ranking"] = fit_ranking(
        model, train, valid, train_config, progress=progress, console=console
    )
    with torch.no_grad():
        probs = torch.sigmoid(model(test.user, test.item, test.dense)).double().numpy()
    label = test.label.numpy()
    result.ranking = model
    result.ranking_metrics["model"] = evaluate_ranking(probs, label, true_prob=test.true_prob)
    base_rate = float(train.label.mean())
    result.ranking_metrics["watch rate (constant)"] = evaluate_ranking(
        np.full(len(label), base_rate), label
    )
    result.ranking_test = (probs, label, test.true_prob)
    return result


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
    negatives: Negatives = "full",
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    ranking_config: TrainConfig | None = None,
    ranking_loss: RankingLoss = "bce",
    stages: tuple[str, ...] = ("retrieval", "ranking"),
    progress: bool = True,
    console: Console | None = None,
    launch: Launch | None = None,
) -> tuple[RunResult, SimulatedWatchLog]:
    """Simulate, train the requested stages, evaluate against baselines and the truth.

    With a multi-process ``launch`` the ranking stage runs on rank 0 only (see
    :func:`train_retrieval`).
    """
    _say(
        console,
        f"simulating {config.n_users:,} users x {config.n_videos:,} videos "
        f"(seed {config.seed}) ...",
    )
    log = simulate(config)
    lengths = (log.watches >= 0).sum(1).numpy()

    def truth(users: np.ndarray) -> torch.Tensor:
        # test target = each user's last watch; its distribution depends on the earlier ones
        return log.next_watch_log_probs(users, lengths[users] - 1).double()

    options = dict(model_config or {})
    options["negatives"] = negatives
    result = train_retrieval(
        log.interactions,
        model_config=options,
        train_config=train_config,
        truth=truth,
        progress=progress,
        console=console,
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
            console=console,
        )
    result.info["simulation"] = config
    return result, log
