"""Checkpoints: weights, configs, id maps and every user's watches in one ``model.pt``.

:func:`save_checkpoint` writes what ``crossent recommend`` / ``crossent evaluate`` need without
the data file; :func:`load_checkpoint` reads it back; :func:`recommend` gives a user's top-k
unwatched items with their original ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from crossent.errors import CrossentError
from crossent.recsys.data import Interactions, csr_rows
from crossent.recsys.models import CandidateConfig, CandidateModel, RankingConfig, RankingModel

if TYPE_CHECKING:
    from crossent.recsys.train import TrainHistory

CHECKPOINT_FILE = "model.pt"


def save_checkpoint(
    directory: str | Path,
    candidate: CandidateModel,
    watches: Interactions,
    *,
    ranking: RankingModel | None = None,
    ranking_candidate: CandidateModel | None = None,
    history: dict[str, TrainHistory] | None = None,
    metrics: dict[str, dict[str, float]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``directory/model.pt``: weights, configs, id maps and every user's watches.

    ``ranking_candidate``: the candidate generator that makes ``ranking``'s features, when it
    is not ``candidate`` (see :func:`crossent.recsys.pipeline.train_logged_ranking`).

    The watches (CSR, contiguous ids) let :func:`load_checkpoint` users recommend without the
    data file and exclude what each user already watched; ``user_ids``/``item_ids`` map
    contiguous ids back to the original ones.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    indptr, items = watches.sequences()
    payload = {
        "format": 1,
        "candidate_config": asdict(candidate.config),
        "candidate_state": candidate.state_dict(),
        "ranking_config": None if ranking is None else asdict(ranking.config),
        "ranking_state": None if ranking is None else ranking.state_dict(),
        "ranking_candidate_config": None
        if ranking_candidate is None
        else asdict(ranking_candidate.config),
        "ranking_candidate_state": None
        if ranking_candidate is None
        else ranking_candidate.state_dict(),
        "user_ids": watches.user_ids,
        "item_ids": watches.item_ids,
        "watch_indptr": indptr,
        "watch_items": items,
        "history": {k: asdict(v) for k, v in (history or {}).items()},
        "metrics": metrics or {},
        "extra": extra or {},
    }
    path = directory / CHECKPOINT_FILE
    torch.save(payload, path)
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint (see :func:`save_checkpoint`)."""

    candidate: CandidateModel
    ranking: RankingModel | None
    #: the generator of ``ranking``'s features; ``None``: ``candidate`` makes them
    ranking_candidate: CandidateModel | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    watch_indptr: np.ndarray
    watch_items: np.ndarray
    history: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    extra: dict[str, Any]

    def user_index(self, original_id: str) -> int:
        """Contiguous id of the user whose original id prints as ``original_id``."""
        matches = np.flatnonzero(self.user_ids.astype(str) == str(original_id))
        if len(matches) == 0:
            raise CrossentError(
                f"user {original_id!r} is not in the model's data "
                f"({len(self.user_ids)} users, ids like {str(self.user_ids[0])!r})"
            )
        return int(matches[0])


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Read what :func:`save_checkpoint` wrote.

    Raises:
        CrossentError: the folder or its ``model.pt`` is missing or not a crossent checkpoint.
    """
    path = Path(directory)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CrossentError(f"model = {str(directory)!r}: no checkpoint file {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a damaged or foreign file: say so in one line
        raise CrossentError(f"{path}: not a crossent checkpoint ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CrossentError(f"{path}: not a crossent checkpoint (no format marker)")
    candidate = CandidateModel(CandidateConfig(**payload["candidate_config"]))
    candidate.load_state_dict(payload["candidate_state"])
    candidate.eval()
    ranking = None
    if payload["ranking_config"] is not None:
        config = dict(payload["ranking_config"])
        config["hidden"] = tuple(config["hidden"])
        ranking = RankingModel(RankingConfig(**config))
        # checkpoints written before calibration existed lack its buffers: identity (1, 0)
        state = dict(payload["ranking_state"])
        for name in ("calibration_scale", "calibration_shift"):
            state.setdefault(name, getattr(ranking, name))
        ranking.load_state_dict(state)
        ranking.eval()
    ranking_candidate = None
    if payload.get("ranking_candidate_config") is not None:  # absent from older checkpoints
        ranking_candidate = CandidateModel(CandidateConfig(**payload["ranking_candidate_config"]))
        ranking_candidate.load_state_dict(payload["ranking_candidate_state"])
        ranking_candidate.eval()
    return Checkpoint(
        candidate=candidate,
        ranking=ranking,
        ranking_candidate=ranking_candidate,
        user_ids=np.asarray(payload["user_ids"]),
        item_ids=np.asarray(payload["item_ids"]),
        watch_indptr=np.asarray(payload["watch_indptr"]),
        watch_items=np.asarray(payload["watch_items"]),
        history=payload["history"],
        metrics=payload["metrics"],
        extra=payload["extra"],
    )


def recommend(checkpoint: Checkpoint, user: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` unwatched items for contiguous user id ``user``: ``(item ids, scores)``.

    Scores are the candidate model's logits; items the user already watched are excluded.
    Returned item ids are the original ones.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise CrossentError(f"k = {k!r} must be an integer >= 1")
    indptr, items = checkpoint.watch_indptr, checkpoint.watch_items
    row = csr_rows(indptr, items, np.array([user]))
    scores = checkpoint.candidate.score(np.array([user]), row)[0].astype(np.float64)
    scores[row[1]] = -np.inf
    available = int(np.isfinite(scores).sum())
    k = min(k, available)
    top = np.argpartition(-scores, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
    top = top[np.argsort(-scores[top], kind="stable")]
    return checkpoint.item_ids[top], scores[top]
