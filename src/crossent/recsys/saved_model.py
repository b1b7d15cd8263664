"""What is saved once early stopping has chosen: the early-stopped candidate model caught up
on every watch (the default), refitted, or as is; for a sequence model, blended with the bag
model trained beside it.

Early stopping holds out each sampled user's last watches, the most recent and so the most
telling ones. :func:`catch_up_on_all_watches` and :func:`refit_on_all_watches` give them back
to the model that is saved. :func:`choose_blend` picks the bag's weight in the saved
:class:`~crossent.recsys.models.blend.BlendedCandidate` on validation, as EASE's λ is picked.
:func:`saved_model` composes them for :func:`crossent.recsys.run.run`. The metrics in the
result stay those of models that never saw the test watches. The README's "Choosing the
learning rate and the catch-up" and "Amazon Video: the blend" have the measurements.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import torch

from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.events import Listener, note
from crossent.recsys.models.blend import BlendedCandidate
from crossent.recsys.models.networks import CandidateModel
from crossent.recsys.results import RunResult
from crossent.recsys.retrieval import bag_schedule
from crossent.recsys.spec import TrainingSpec
from crossent.recsys.training.loop import TrainConfig, refit_candidate


def saved_model(
    training: TrainingSpec,
    result: RunResult,
    *,
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """The model that is saved once early stopping has chosen: refitted, caught up or as is;
    for a sequence model, blended with its bag model (chosen on validation, then each member
    caught up or refitted on its own schedule)."""
    result = choose_blend(result, training.blend_weights(), progress=progress, listener=listener)
    saved = _after_early_stopping(training, training.schedule, result, "", progress, listener)
    weight = result.info.get("blend", 0.0)
    if not weight:
        return saved
    assert result.bag is not None
    bag = _after_early_stopping(
        training, bag_schedule(training.schedule),
        saved.replacing(candidate=result.bag), " (bag)", progress, listener,
    )
    return bag.replacing(
        candidate=BlendedCandidate.of(saved.candidate, bag.candidate, weight)
    )


def _after_early_stopping(
    training: TrainingSpec,
    schedule: TrainConfig,
    result: RunResult,
    member: str,
    progress: bool,
    listener: Listener | None,
) -> RunResult:
    """``result.candidate`` refitted, caught up or as is, on ``schedule`` (``member`` names
    the blend's member in the curves and the console: "" or " (bag)")."""
    if training.refit:
        return refit_on_all_watches(
            result, schedule, label="refit" + member, chosen_by="retrieval" + member,
            progress=progress, listener=listener,
        )
    if training.catch_up:
        return catch_up_on_all_watches(
            result, schedule, training.catch_up, label="catch-up" + member,
            progress=progress, listener=listener,
        )
    return result


def refit_on_all_watches(
    result: RunResult,
    train_config: TrainConfig,
    *,
    label: str = "refit",
    chosen_by: str = "retrieval",
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """``result`` with its candidate replaced by the same model trained on every watch.

    Early stopping (the curves ``chosen_by``: the bag's are ``"retrieval (bag)"``) chose
    ``best_epoch`` epochs on the validation watches; a fresh model with
    the same seed and schedule trains that many epochs on all of ``result.watches`` (the
    validation and test watches included), so the model that serves has seen each user's
    latest watches. The metrics in ``result`` stay those of the model that never saw the test
    watches; ``info["refit_epochs"]`` records the refit.
    """
    epochs = max(result.curves[chosen_by].best_epoch, 1)
    note(listener, label, f"{epochs} epochs on all {len(result.watches):,} watches")
    config = dataclasses.replace(train_config, epochs=epochs, resume=None)
    torch.manual_seed(config.seed)
    model = CandidateModel(result.candidate.config)
    curves = refit_candidate(
        model, result.watches, config, label=label, progress=progress, listener=listener
    )
    return result.replacing(candidate=model).adding(
        curves={label: curves}, info={"refit_epochs": epochs}
    )


def catch_up_on_all_watches(
    result: RunResult,
    train_config: TrainConfig,
    epochs: int,
    *,
    label: str = "catch-up",
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """``result`` with its early-stopped candidate trained ``epochs`` more epochs on every watch.

    The held-out validation and test watches are each user's most recent ones; on short
    histories they are a large share of what a user did, and the model that serves should have
    learnt them. A copy of the model early stopping kept goes on, with its weights, on all of
    ``result.watches`` while the learning rate decays from ``train_config.lr`` to 0 (cosine
    over the ``epochs``), so it ends settled rather than at an arbitrary step. Unlike a refit
    from scratch (:func:`refit_on_all_watches`) it keeps the epoch that validation chose. The
    metrics in ``result`` stay those of the model that never saw the test watches;
    ``info["catch_up_epochs"]`` records the catch-up.
    """
    note(
        listener, label,
        f"{epochs} epochs on all {len(result.watches):,} watches (held-out ones included), "
        "the learning rate decaying to 0",
    )
    config = dataclasses.replace(train_config, epochs=epochs, lr_schedule="cosine", resume=None)
    model = copy.deepcopy(result.candidate)
    curves = refit_candidate(
        model, result.watches, config, label=label, progress=progress, listener=listener
    )
    return result.replacing(candidate=model).adding(
        curves={label: curves}, info={"catch_up_epochs": epochs}
    )


def choose_blend(
    result: RunResult,
    weights: Sequence[float],
    *,
    ks: tuple[int, ...] = (10, 20),
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """``result`` with the bag weight of its blend chosen: the one of ``weights`` whose
    :class:`~crossent.recsys.models.blend.BlendedCandidate` of the early-stopped sequence
    model and its bag model (``result.bag``) has the best validation NDCG@10 (the smaller
    weight on a tie; 0 is the sequence model alone).

    ``info["blend"]`` records the weight and ``info["blend_validation_ndcg@10"]`` the grid.
    A chosen blend's test metrics become the ``"model"`` row (what is saved, as ``crossent
    evaluate`` scores it), the sequence model's move to ``"sequence model"``; with several
    objectives the blend of the first gets its own row. Nothing changes without a bag model.
    """
    if result.bag is None or not any(weights):
        return result.adding(info={"blend": 0.0}) if result.bag is not None else result
    scores: dict[float, float] = {}
    if len(weights) > 1:
        for weight in weights:
            model = result.candidate if weight == 0 else BlendedCandidate.of(
                result.candidate, result.bag, weight
            )
            scores[weight] = evaluate_retrieval(
                model, result.split, "valid", ks=(10,), progress=False
            )["NDCG@10"]
    best = max(weights, key=lambda w: (scores.get(w, 0.0), -w))
    grid = ", ".join(f"{w:g}: {v:.4f}" for w, v in scores.items())
    note(
        listener, "blend",
        f"bag weight {best:g}" + (f" (validation NDCG@10 by weight: {grid})" if grid else ""),
    )
    info = {
        "blend": float(best),
        "blend_validation_ndcg@10": {f"{w:g}": v for w, v in scores.items()},
    }
    if best == 0:
        return result.adding(info=info)
    blend = BlendedCandidate.of(result.candidate, result.bag, best)
    metrics = evaluate_retrieval(blend, result.split, ks=ks, progress=progress, listener=listener)
    rows = dict(result.retrieval)
    if "model" in rows:
        rows = {"model": metrics, "sequence model": rows.pop("model"), **rows}
    else:
        rows[f"blend (bag weight {best:g})"] = metrics
    return result.replacing(retrieval=rows).adding(info=info)
