"""Checkpoints: weights, configs, id maps, titles and every user's watches, safe to open.

A checkpoint is a folder (see :mod:`crossent.recsys._folder` and the README, "Model files"):
``manifest.json`` (format marker, version, each file's size and SHA-256), one ``safetensors``
file with the tensors (model weights, the watch log as CSR, integer id maps) and one JSON file
with the rest (configs as :func:`dataclasses.asdict`, string id maps, titles, training
training curves, metrics). Loading never unpickles anything, so opening a downloaded model cannot
run code; a folder that is foreign, partial, corrupt or from a newer crossent is refused with
one line naming the file.

Checkpoints of crossent 0.1 (one pickled ``model.pt``) are refused with a pointer to
``crossent convert --trust-pickle`` (:func:`convert_legacy`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from crossent.errors import CrossentError
from crossent.recsys._folder import MANIFEST, read_folder, write_folder
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.blend import candidate_model
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.ranker import RankingConfig, RankingModel

if TYPE_CHECKING:
    from crossent.recsys.training.loop import TrainingCurves

#: The version of the folder layout this crossent writes and reads.
FORMAT_VERSION = 2
KIND = "recommender"
#: The pickled single file crossent 0.1 wrote; only :func:`convert_legacy` reads it.
LEGACY_FILE = "model.pt"
#: Kept for callers that named the checkpoint's file: the manifest is what identifies one.
CHECKPOINT_FILE = MANIFEST

_MODELS = ("candidate", "ranking", "ranking_candidate")
_Config = TypeVar("_Config")


def _ids_to_store(name: str, ids: np.ndarray, tensors: dict[str, torch.Tensor]) -> list[str] | None:
    """Integer ids go in the tensors file; any other ids become a JSON list of strings."""
    if ids.dtype.kind in "iu":
        tensors[name] = torch.from_numpy(ids.astype(np.int64))
        return None
    return [str(value) for value in ids]


def save_checkpoint(
    directory: str | Path,
    candidate: CandidateModel,
    watches: Interactions,
    *,
    ranking: RankingModel | None = None,
    ranking_candidate: CandidateModel | None = None,
    curves: Mapping[str, TrainingCurves | Mapping[str, Any]] | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    extra: Mapping[str, Any] | None = None,
    titles: Sequence[str | None] | None = None,
) -> Path:
    """Write a checkpoint folder: weights, configs, id maps, titles and every user's watches.

    ``ranking_candidate``: the candidate generator that makes ``ranking``'s features, when it
    is not ``candidate`` (see :func:`crossent.recsys.ranking_stage.train_logged_ranking`).
    ``titles``: ``(n_items,)`` a title per contiguous item id (``None`` where unknown; see
    :mod:`crossent.recsys.data.titles`).

    The watches (CSR, contiguous ids, time order) let users of the checkpoint recommend
    without the data file and exclude what each user already watched; ``user_ids`` /
    ``item_ids`` map contiguous ids back to the original ones. Returns the folder.
    """
    if titles is not None and len(titles) != watches.n_items:
        raise CrossentError(f"titles has {len(titles)} entries for {watches.n_items} items")
    indptr, items = watches.sequences()
    tensors: dict[str, torch.Tensor] = {
        "watches.indptr": torch.from_numpy(indptr.astype(np.int64)),
        "watches.items": torch.from_numpy(items.astype(np.int64)),
    }
    meta: dict[str, Any] = {}
    for name, model in zip(_MODELS, (candidate, ranking, ranking_candidate), strict=True):
        meta[f"{name}_config"] = None if model is None else asdict(model.config)
        if model is not None:
            for key, value in model.state_dict().items():
                tensors[f"{name}.{key}"] = value
    meta["user_ids"] = _ids_to_store("user_ids", np.asarray(watches.user_ids), tensors)
    meta["item_ids"] = _ids_to_store("item_ids", np.asarray(watches.item_ids), tensors)
    meta["titles"] = None if titles is None else list(titles)
    meta["history"] = {  # the training curves, under the key the format has always used
        k: asdict(v) if dataclasses.is_dataclass(v) else dict(v)  # type: ignore[arg-type]
        for k, v in (curves or {}).items()
    }
    meta["metrics"] = dict(metrics or {})
    meta["extra"] = dict(extra or {})
    write_folder(directory, KIND, FORMAT_VERSION, tensors, meta)
    return Path(directory)


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
    #: each training loop's curves (as :class:`~crossent.recsys.training.loop.TrainingCurves`)
    curves: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    extra: dict[str, Any]
    #: ``(n_items,)`` object array of titles (``None`` where unknown), or ``None``
    titles: np.ndarray | None = None

    def user_index(self, original_id: str) -> int:
        """Contiguous id of the user whose original id prints as ``original_id``."""
        matches = np.flatnonzero(self.user_ids.astype(str) == str(original_id))
        if len(matches) == 0:
            raise CrossentError(
                f"user {original_id!r} is not in the model's data "
                f"({len(self.user_ids)} users, ids like {str(self.user_ids[0])!r})"
            )
        return int(matches[0])


def _config(cls: type[_Config], values: Any, where: str) -> _Config:
    """Rebuild a config dataclass from its JSON form (lists back to tuples).

    Fields missing from the file take their defaults, so checkpoints keep loading when a
    config gains a field; a candidate config goes through
    :meth:`~crossent.recsys.models.networks.CandidateConfig.from_dict`, which reads older field
    names.
    """
    if not isinstance(values, dict):
        raise CrossentError(f"{where}: expected an object of {cls.__name__} fields")
    if cls is CandidateConfig:
        try:
            return CandidateConfig.from_dict(values)  # type: ignore[return-value]
        except (CrossentError, TypeError) as error:
            raise CrossentError(f"{where}: {error}") from None
    known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise CrossentError(
            f"{where}: unknown {cls.__name__} field {unknown[0]!r} (written by a newer crossent?)"
        )
    fixed = {key: tuple(v) if isinstance(v, list) else v for key, v in values.items()}
    try:
        return cls(**fixed)
    except TypeError as error:
        raise CrossentError(f"{where}: {error}") from None


def _module_state(
    model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], prefix: str, where: str
) -> None:
    """Load the ``prefix.*`` tensors into ``model``; a missing, extra or misshapen one is named."""
    state = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        name = f"{prefix}.{(missing or extra)[0]}"
        raise CrossentError(f"{where}: tensor {name!r} is {'missing' if missing else 'unexpected'}")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CrossentError(
                f"{where}: tensor '{prefix}.{key}' has shape {tuple(state[key].shape)}, the "
                f"config makes {tuple(value.shape)}"
            )
    model.load_state_dict(state)
    model.eval()


def _ids(
    name: str, meta: dict[str, Any], tensors: Mapping[str, torch.Tensor], where: str
) -> np.ndarray:
    if name in tensors:
        return tensors[name].numpy()
    values = meta.get(name)
    if not isinstance(values, list):
        raise CrossentError(f"{where}: no {name} (neither a tensor nor a JSON list)")
    return np.asarray(values, dtype=object)


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Read what :func:`save_checkpoint` wrote, verifying every file first.

    Raises:
        CrossentError: one line naming the file and the problem: no checkpoint, a crossent
            0.1 ``model.pt`` (to convert), a foreign, partial, corrupt or newer folder, or
            contents that do not fit together (a tensor missing or of the wrong shape).
    """
    folder = Path(directory)
    if folder.is_file() and folder.name in (MANIFEST, LEGACY_FILE):
        folder = folder.parent
    if not (folder / MANIFEST).is_file():
        if (folder / LEGACY_FILE).is_file():
            raise CrossentError(
                f"{folder / LEGACY_FILE}: a crossent 0.1 checkpoint (a pickle, which can run "
                f"code when opened), not read; if you trust its source, convert it with "
                f"`crossent convert --trust-pickle {folder}`"
            )
        raise CrossentError(f"model = {str(directory)!r}: no checkpoint file {folder / MANIFEST}")
    tensors, meta = read_folder(folder, KIND, FORMAT_VERSION)
    where = str(folder / MANIFEST)
    for key in ("candidate_config", "user_ids", "item_ids", "history", "metrics", "extra"):
        if key not in meta:
            raise CrossentError(f"{where}: the JSON part has no {key!r}")
    for key in ("watches.indptr", "watches.items"):
        if key not in tensors:
            raise CrossentError(f"{where}: the tensors part has no {key!r}")
    models: dict[str, Any] = {}
    for name in _MODELS:
        values = meta.get(f"{name}_config")
        if values is None:
            models[name] = None
            continue
        cls = RankingConfig if name == "ranking" else CandidateConfig
        config = _config(cls, values, f"{where} {name}_config")
        model = RankingModel(config) if name == "ranking" else candidate_model(config)  # type: ignore[arg-type]
        _module_state(model, tensors, name, where)
        models[name] = model
    if models["candidate"] is None:
        raise CrossentError(f"{where}: the checkpoint has no candidate model")
    user_ids = _ids("user_ids", meta, tensors, where)
    item_ids = _ids("item_ids", meta, tensors, where)
    indptr, items = tensors["watches.indptr"].numpy(), tensors["watches.items"].numpy()
    n_items = models["candidate"].config.n_items
    if len(item_ids) != n_items or len(indptr) != len(user_ids) + 1 or indptr[-1] != len(items):
        raise CrossentError(
            f"{where}: the id maps ({len(user_ids)} users, {len(item_ids)} items) do not fit "
            f"the model ({n_items} items) or the watches ({len(indptr) - 1} users)"
        )
    titles = meta.get("titles")
    if titles is not None and len(titles) != n_items:
        raise CrossentError(f"{where}: {len(titles)} titles for {n_items} items")
    return Checkpoint(
        candidate=models["candidate"],
        ranking=models["ranking"],
        ranking_candidate=models["ranking_candidate"],
        user_ids=user_ids,
        item_ids=item_ids,
        watch_indptr=indptr,
        watch_items=items,
        curves=meta["history"],
        metrics=meta["metrics"],
        extra=meta["extra"],
        titles=None if titles is None else np.asarray(titles, dtype=object),
    )
