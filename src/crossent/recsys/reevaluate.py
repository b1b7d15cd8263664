"""Evaluating a saved checkpoint again, by the protocol its training run used.

:func:`evaluate_checkpoint` rebuilds the leave-last-out split of the data, scores the stored
candidate model beside the baselines training fits in closed form, most-popular and EASE with
λ tuned on validation (:func:`crossent.recsys.retrieval.add_fitted_baselines`; the bag model
that training runs beside a sequence model is not trained again), and on simulated data
against the same truth (:func:`crossent.recsys.evaluation.next_watch.simulated_truth`); a stored
ranking
model is scored on the ranking examples its training used
(:func:`crossent.recsys.ranking_stage.evaluate_logged_ranking`).
"""

from __future__ import annotations

import numpy as np

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions, leave_last_out
from crossent.recsys.data.simulate import SimulationConfig, simulate
from crossent.recsys.evaluation.next_watch import TruthFn, retrieval_cross_entropy, simulated_truth
from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.events import Listener
from crossent.recsys.ranking_stage import evaluate_logged_ranking
from crossent.recsys.results import RunResult
from crossent.recsys.retrieval import add_fitted_baselines
from crossent.recsys.serving.checkpoint import Checkpoint


def _simulated(checkpoint: Checkpoint) -> tuple[Interactions, TruthFn]:
    settings = checkpoint.extra.get("simulation")
    if settings is None:
        raise CrossentError("the model was not trained on simulated data")
    log = simulate(SimulationConfig(**settings))
    return log.interactions, simulated_truth(log)


def evaluate_checkpoint(
    checkpoint: Checkpoint,
    watches: Interactions | None = None,
    *,
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """Test metrics of ``checkpoint`` on ``watches`` (``None``: its simulated log and truth).

    Raises:
        CrossentError: ``watches`` has other items than the model, or ``None`` is given for a
            model not trained on simulated data.
    """
    if "refit_epochs" in checkpoint.extra:
        raise CrossentError(
            "this model was trained again on every watch (crossent train --refit), its test "
            "watches included, so a test score would be meaningless; the report saved beside "
            "it holds the scores of the model that never saw them"
        )
    if checkpoint.extra.get("catch_up_epochs"):
        raise CrossentError(
            f"this model trained {checkpoint.extra['catch_up_epochs']} more epochs on every "
            "watch after early stopping (crossent train --catch-up), its test watches "
            "included, so a test score would be meaningless; the report saved beside it holds "
            "the scores of the model that never saw them (train with --catch-up 0 to evaluate "
            "again)"
        )
    truth = None
    if watches is None:
        watches, truth = _simulated(checkpoint)
    same = len(watches.item_ids) == len(checkpoint.item_ids) and np.array_equal(
        watches.item_ids.astype(str), checkpoint.item_ids.astype(str)
    )
    if not same:
        raise CrossentError(
            f"the data's {watches.n_items} items differ from the model's "
            f"{len(checkpoint.item_ids)}; evaluate on the data the model was trained on"
        )
    # the users training held out (checkpoints without the record held out every user)
    held_out = checkpoint.extra.get("split", {})
    split = leave_last_out(
        watches, max_users=held_out.get("eval_users", 0), seed=held_out.get("seed", 0)
    )
    candidate = checkpoint.candidate
    result = RunResult(
        watches=watches, split=split, candidate=candidate,
        cross_entropy=retrieval_cross_entropy(candidate, split, "test", truth=truth),
        retrieval={
            "model": evaluate_retrieval(candidate, split, progress=progress, listener=listener)
        },
    )
    result = add_fitted_baselines(result, progress=progress, listener=listener)
    settings = checkpoint.extra.get("ranking_examples")
    if checkpoint.ranking is not None and settings is not None:
        result = evaluate_logged_ranking(
            result,
            checkpoint.ranking,
            negatives=settings["negatives"],
            seed=settings["seed"],
            candidate=checkpoint.ranking_candidate,
        )
    return result
