"""A folder of tensors and JSON that is either complete and verified, or refused.

Layout (see the README, "Model files"): ``manifest.json`` names the format, its version and,
for each part, the file holding it with its size and SHA-256. The parts are a ``safetensors``
file (tensors, read without running any code) and a JSON file (everything else). Nothing is
pickled.

Writing is crash-safe. The parts get new file names derived from their content, each written
to a temporary file, flushed, and renamed; ``manifest.json`` is written the same way, last, so
the rename of the manifest is the single moment the folder switches from the old checkpoint to
the new one. Files the new manifest no longer names are deleted only after that. A crash at any
point leaves the old manifest naming old, intact files; and a part that is damaged later fails
its size or hash check on load instead of loading as a wrong model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors

from crossent.errors import CrossentError

MANIFEST = "manifest.json"
#: The marker every crossent folder's manifest carries in its "format" field.
FORMAT = "crossent-checkpoint"


def _json_default(value: Any) -> Any:
    """JSON for the few non-JSON values configs and metrics hold (numpy scalars, paths, the
    read-only mappings of a run's result)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _write_atomic(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` via a temporary file, fsync, rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_folder(directory: Path) -> None:
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:  # some systems cannot open a folder; the renames are still atomic
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _unshared(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, copying any that shares memory with an earlier one (tied
    weights), which safetensors refuses to write."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in tensors.items():
        value = tensor.detach().cpu().contiguous()
        if value.numel() and value.untyped_storage().data_ptr() in seen:
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        out[name] = value
    return out


def write_folder(
    directory: str | Path,
    kind: str,
    version: int,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
) -> Path:
    """Write ``tensors`` (safetensors) and ``meta`` (JSON) into ``directory``, crash-safely.

    ``kind`` names what the folder holds (e.g. ``"recommender"``); :func:`read_folder` refuses
    a folder of another kind or version. Returns the manifest's path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensor_bytes = save_tensors(_unshared(tensors))
    meta_bytes = json.dumps(meta, default=_json_default, indent=1).encode()
    parts: dict[str, dict[str, Any]] = {}
    for part, content, suffix in (
        ("tensors", tensor_bytes, "safetensors"),
        ("meta", meta_bytes, "json"),
    ):
        digest = hashlib.sha256(content).hexdigest()
        name = f"{kind}.{digest[:16]}.{suffix}"
        _write_atomic(directory / name, content)
        parts[part] = {"file": name, "bytes": len(content), "sha256": digest}
    manifest = {"format": FORMAT, "kind": kind, "version": version, "parts": parts}
    _fsync_folder(directory)
    _write_atomic(directory / MANIFEST, json.dumps(manifest, indent=1).encode())
    _fsync_folder(directory)
    kept = {entry["file"] for entry in parts.values()}
    for stale in [*directory.glob(f"{kind}.*"), *directory.glob(f".{kind}.*.tmp")]:
        if stale.name not in kept and stale.suffix in (".safetensors", ".json", ".tmp"):
            stale.unlink(missing_ok=True)  # parts of older checkpoints, writes cut short
    return directory / MANIFEST


def read_manifest(directory: Path, kind: str, version: int) -> dict[str, Any]:
    """The verified manifest of ``directory``: marker, kind and version checked."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise CrossentError(f"{path}: not a crossent checkpoint manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CrossentError(f"{path}: not a crossent checkpoint (no {FORMAT!r} format marker)")
    if manifest.get("kind") != kind:
        raise CrossentError(f"{path}: holds a crossent {manifest.get('kind')!r}, not a {kind!r}")
    found = manifest.get("version")
    if not isinstance(found, int) or isinstance(found, bool):
        raise CrossentError(f"{path}: format version {found!r} is not an integer")
    if found > version:
        raise CrossentError(
            f"{path}: format version {found} was written by a newer crossent; this one reads "
            f"version {version} (upgrade crossent)"
        )
    if found < version:
        raise CrossentError(
            f"{path}: format version {found} is older than {version}, which this crossent reads"
        )
    parts = manifest.get("parts")
    if not isinstance(parts, dict) or not {"tensors", "meta"} <= set(parts):
        raise CrossentError(f"{path}: the manifest does not list its tensors and meta files")
    return manifest


def _verified_part(directory: Path, entry: Any) -> Path:
    """The path of one part, after its size and SHA-256 match the manifest's."""
    manifest = directory / MANIFEST
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise CrossentError(f"{manifest}: a part has no file name")
    name = entry["file"]
    if Path(name).name != name:  # the manifest may only name files inside the folder
        raise CrossentError(f"{manifest}: part file {name!r} is not a plain file name")
    path = directory / name
    if not path.is_file():
        raise CrossentError(f"{path}: missing (named by {MANIFEST}); the checkpoint is partial")
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise CrossentError(
            f"{path}: {size} bytes, the manifest says {entry.get('bytes')} (truncated or replaced)"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    if digest.hexdigest() != entry.get("sha256"):
        raise CrossentError(f"{path}: SHA-256 differs from the manifest's (the file is corrupt)")
    return path


def read_folder(
    directory: str | Path, kind: str, version: int
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify what :func:`write_folder` wrote: ``(tensors, meta)``.

    Raises:
        CrossentError: one line naming the file and the problem: no manifest, a foreign or
            newer format, a missing, truncated or corrupt part, or a part that does not parse.
    """
    directory = Path(directory)
    manifest = read_manifest(directory, kind, version)
    parts = manifest["parts"]
    tensor_path = _verified_part(directory, parts["tensors"])
    meta_path = _verified_part(directory, parts["meta"])
    try:
        tensors = load_file(tensor_path)
    except (SafetensorError, ValueError, OSError) as error:
        raise CrossentError(f"{tensor_path}: not a safetensors file ({error})") from None
    try:
        meta = json.loads(meta_path.read_bytes())
    except ValueError as error:
        raise CrossentError(f"{meta_path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise CrossentError(f"{meta_path}: expected a JSON object")
    return tensors, meta
