"""Converting a crossent 0.1 checkpoint (one pickled ``model.pt``) to the safe folder format.

A pickle can run any code when it is opened, so :func:`~crossent.recsys.serving.checkpoint.
load_checkpoint` never reads ``model.pt``. Conversion runs only on request
(``crossent convert --trust-pickle DIR``). Even then the file is read with PyTorch's restricted
unpickler (``torch.load(weights_only=True)``), allowing only tensors, plain containers and the
numpy array types crossent 0.1 stored, and refusing any other object, such as one whose
``__reduce__`` calls ``os.system``. That unpickler has had vulnerabilities of its own, which is
why conversion still asks for trust.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.ranker import RankingConfig, RankingModel
from crossent.recsys.serving.checkpoint import LEGACY_FILE, save_checkpoint

RISK = (
    "model.pt is a pickle: opening a pickle can run any code it carries. crossent reads it "
    "with PyTorch's restricted unpickler (tensors, numpy arrays and plain values only), but "
    "convert only files whose source you trust."
)


def _numpy_globals() -> list[Any]:
    """The numpy functions and types a pickled numpy array needs, and nothing else."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    dtype_classes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUOV"}
    return [
        core.multiarray._reconstruct,
        core.multiarray.scalar,
        np.ndarray,
        np.dtype,
        *dtype_classes,
    ]


def _legacy_payload(path: Path) -> dict[str, Any]:
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types; all mean "not safely readable"
        text = str(error)
        found = re.search(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>", text)
        reason = (
            f"it holds {found.group(1) or found.group(2)}: not a tensor, array or plain value"
            if found
            else text.strip().splitlines()[0][:200]
        )
        raise CrossentError(f"{path}: refused by the restricted unpickler ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CrossentError(f"{path}: not a crossent 0.1 checkpoint (no format marker 1)")
    return payload


def _model(payload: dict[str, Any], name: str, path: Path) -> Any:
    config = payload.get(f"{name}_config")
    if config is None:
        return None
    try:
        if name == "ranking":
            config = dict(config, hidden=tuple(config["hidden"]))
            model: torch.nn.Module = RankingModel(RankingConfig(**config))
        else:
            model = CandidateModel(CandidateConfig.from_dict(config))  # 0.1: bag, old names
        state = dict(payload[f"{name}_state"])
        if name == "ranking":  # written before calibration existed: the identity (1, 0)
            for buffer in ("calibration_scale", "calibration_shift"):
                state.setdefault(buffer, getattr(model, buffer))
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, CrossentError) as error:
        raise CrossentError(f"{path}: its {name} model does not load ({error})") from None
    return model


def convert_legacy(
    directory: str | Path, *, trust_pickle: bool, out: str | Path | None = None
) -> Path:
    """Convert ``directory/model.pt`` (crossent 0.1) into a checkpoint folder at ``out``.

    ``out`` defaults to ``directory``; ``model.pt`` is left in place (delete it once the
    converted folder loads). The recommendations of the converted checkpoint are those of the
    old one: weights, id maps and watches are copied as they are.

    Raises:
        CrossentError: ``trust_pickle`` is false; the file is not a crossent 0.1 checkpoint; or
            the restricted unpickler refuses it (it holds objects other than tensors, numpy
            arrays and plain values).
    """
    folder = Path(directory)
    path = folder / LEGACY_FILE if folder.is_dir() else folder
    if not trust_pickle:
        raise CrossentError(f"{path}: not converted without --trust-pickle. {RISK}")
    if not path.is_file():
        raise CrossentError(f"{path}: no such file (expected a crossent 0.1 {LEGACY_FILE})")
    payload = _legacy_payload(path)
    try:
        indptr = np.asarray(payload["watch_indptr"], dtype=np.int64)
        items = np.asarray(payload["watch_items"], dtype=np.int64)
        user_ids, item_ids = np.asarray(payload["user_ids"]), np.asarray(payload["item_ids"])
        candidate = _model(payload, "candidate", path)
        ranking = _model(payload, "ranking", path)
        ranking_candidate = _model(payload, "ranking_candidate", path)
    except KeyError as error:
        raise CrossentError(f"{path}: a crossent 0.1 checkpoint without {error}") from None
    if candidate is None:
        raise CrossentError(f"{path}: a crossent 0.1 checkpoint without its candidate model")
    # the stored CSR is already in time order: rows in CSR order, timestamps = positions
    watches = Interactions(
        user=np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)),
        item=items,
        timestamp=np.arange(len(items)),
        rating=None,
        watch_time=None,
        user_ids=user_ids,
        item_ids=item_ids,
    )
    return save_checkpoint(
        Path(out) if out is not None else path.parent,
        candidate,
        watches,
        ranking=ranking,
        ranking_candidate=ranking_candidate,
        curves=payload.get("history") or {},
        metrics=payload.get("metrics") or {},
        extra={**(payload.get("extra") or {}), "converted_from": str(path)},
    )
