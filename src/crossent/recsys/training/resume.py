"""Training that survives an interruption: the epoch loops' state, saved after every epoch.

A run's training loops (candidate generation, the ranking features' generator, ranking) each
save, at the end of every epoch, everything the next epoch depends on:

- the model's weights and the best epoch's weights (early stopping restores them);
- the optimizer's state (AdamW moments and step counts);
- the random states: the generator that shuffles the data order (so the next epoch's order
  is the one an uninterrupted run would draw: the data-order position), the loop's other
  generators (negative sampling) and torch's global generator (dropout);
- the early-stopping state (best score, epochs without improvement) and the history.

They go into ``OUT/training/`` as one crash-safe folder (:mod:`crossent.recsys._folder`:
safetensors + JSON, written to new files and switched by renaming the manifest), so a kill at
any moment leaves the last complete epoch. ``crossent train ... --resume`` runs the same
pipeline again: a finished loop restores its final weights and random states instead of
training, the interrupted loop continues after its last complete epoch, and the result is the
one the uninterrupted run gives (same seed, bit for bit on one machine).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crossent.errors import CrossentError
from crossent.recsys._folder import MANIFEST, read_folder, write_folder

KIND = "training-state"
FORMAT_VERSION = 1
#: Where ``crossent train --out OUT`` keeps the state of its training loops.
STATE_FOLDER = "training"


@dataclass
class SavedLoop:
    """What a loop restores (see :meth:`Loop.restore`)."""

    #: the first epoch still to run (past ``epochs`` when the loop had finished)
    next_epoch: int
    history: dict[str, Any]
    best: float
    bad_epochs: int
    best_state: dict[str, torch.Tensor] | None
    finished: bool


def _flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
    """An optimizer's ``state_dict`` as tensors (per parameter) and JSON (everything else)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        plain[str(index)] = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                plain[str(index)][name] = value
    return tensors, {"state": plain, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: Any) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["state"].items()}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


class Loop:
    """One training loop's saved state, inside a :class:`TrainingState`."""

    def __init__(self, owner: TrainingState, key: str) -> None:
        self.owner = owner
        self.key = key

    def restore(
        self,
        parameters: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generators: Sequence[torch.Generator],
    ) -> SavedLoop | None:
        """Load the saved state into the loop's objects; ``None`` when nothing was saved."""
        saved = self.owner.loops.get(self.key)
        if saved is None:
            return None
        tensors, meta = saved

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        parameters.load_state_dict(part("model."))
        optimizer.load_state_dict(_unflatten_optimizer(part("optimizer."), meta["optimizer"]))
        for index, generator in enumerate(generators):
            generator.set_state(tensors[f"rng.{index}"])
        torch.set_rng_state(tensors["rng.global"])
        best_state = part("best.") if meta["has_best"] else None
        finished = bool(meta["finished"])
        self.owner.say(
            f"{self.key}: {'finished' if finished else 'resuming'} after epoch {meta['epoch']} "
            f"(saved in {self.owner.folder})"
        )
        return SavedLoop(
            next_epoch=meta["epoch"] + 1 if not finished else 1 << 30,
            history=meta["history"],
            best=float(meta["best"]),
            bad_epochs=int(meta["bad_epochs"]),
            best_state=best_state,
            finished=finished,
        )

    def save(
        self,
        epoch: int,
        history: Mapping[str, Any],
        best: float,
        bad_epochs: int,
        best_state: Mapping[str, torch.Tensor] | None,
        parameters: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generators: Sequence[torch.Generator],
        *,
        finished: bool,
    ) -> None:
        """Record the state after ``epoch`` and write the whole folder, crash-safely."""
        optimizer_tensors, optimizer_meta = _flatten_optimizer(optimizer.state_dict())
        tensors = {f"model.{k}": v for k, v in parameters.state_dict().items()}
        tensors |= {f"optimizer.{k}": v for k, v in optimizer_tensors.items()}
        tensors |= {f"best.{k}": v for k, v in (best_state or {}).items()}
        tensors |= {f"rng.{i}": g.get_state() for i, g in enumerate(generators)}
        tensors["rng.global"] = torch.get_rng_state()
        meta = {
            "epoch": epoch,
            "history": dict(history),
            "best": best,
            "bad_epochs": bad_epochs,
            "has_best": best_state is not None,
            "finished": finished,
            "optimizer": optimizer_meta,
        }
        self.owner.loops[self.key] = ({k: v.detach().clone() for k, v in tensors.items()}, meta)
        self.owner.write()


class TrainingState:
    """The saved state of a run's training loops, in ``folder`` (see the module docstring).

    Args:
        folder: where the state lives (``OUT/training``).
        settings: the run's options; resuming with other settings is refused, since the saved
            epochs would not be those of the new run.
        resume: load the saved state (else start afresh, replacing it at the first epoch).
        say: where to report what was restored (e.g. ``console.print``).
    """

    def __init__(
        self,
        folder: str | Path,
        settings: Mapping[str, Any],
        *,
        resume: bool,
        say: Any = None,
    ) -> None:
        self.folder = Path(folder)
        self.settings = json.loads(json.dumps(dict(settings), default=str))
        self.loops: dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
        self.counts: dict[str, int] = {}
        self.say = say or (lambda message: None)
        if resume:
            self._load()

    def _load(self) -> None:
        if not (self.folder / MANIFEST).is_file():
            self.say(f"--resume: no saved training in {self.folder}; starting from epoch 1")
            return
        tensors, meta = read_folder(self.folder, KIND, FORMAT_VERSION)
        changed = sorted(
            key
            for key in set(self.settings) | set(meta.get("settings", {}))
            if self.settings.get(key) != meta.get("settings", {}).get(key)
        )
        if changed:
            name = changed[0]
            raise CrossentError(
                f"{self.folder / MANIFEST}: the saved training used {name} = "
                f"{meta['settings'].get(name)!r}, this run {self.settings.get(name)!r}; "
                "resume with the same options, or train without --resume to start over"
            )
        for key, loop_meta in meta.get("loops", {}).items():
            prefix = f"{key}/"
            loop_tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            self.loops[key] = (loop_tensors, loop_meta)

    def loop(self, label: str) -> Loop:
        """The state of the next loop called ``label`` in this run (1st, 2nd, ... such loop)."""
        self.counts[label] = self.counts.get(label, 0) + 1
        return Loop(self, f"{label} #{self.counts[label]}")

    def write(self) -> None:
        tensors = {
            f"{key}/{name}": value
            for key, (loop_tensors, _) in self.loops.items()
            for name, value in loop_tensors.items()
        }
        meta = {
            "settings": self.settings,
            "loops": {key: loop_meta for key, (_, loop_meta) in self.loops.items()},
        }
        write_folder(self.folder, KIND, FORMAT_VERSION, tensors, meta)

    def saved_epochs(self) -> str:
        """The last complete epoch of each loop, in words."""
        done = [f"{key} epoch {meta['epoch']}" for key, (_, meta) in self.loops.items()]
        return ", ".join(done) or "no complete epoch yet"

    def stop_on_interrupt(self) -> Callable[[], None]:
        """Turn Ctrl-C (SIGINT) into a :class:`TrainingInterrupted` naming what is saved.

        Every complete epoch is already on disk (and a write cut short leaves the previous
        one), so stopping at once loses only the current epoch. Returns a function restoring
        the previous handler. Outside the main thread (where handlers cannot be set) it does
        nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def interrupted(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGINT, previous)
            raise TrainingInterrupted(
                f"interrupted; saved in {self.folder}: {self.saved_epochs()}. Run the same "
                "command with --resume to continue"
            )

        def restore() -> None:
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, interrupted)
        return restore


class TrainingInterrupted(CrossentError):
    """Training stopped by Ctrl-C; the message says what is saved and how to continue."""


def training_state(
    out: str | Path,
    settings: Mapping[str, Any],
    *,
    resume: bool,
    distributed: bool,
    say: Any = None,
) -> TrainingState | None:
    """The state ``crossent train --out OUT`` saves in ``OUT/training`` after every epoch.

    ``None`` under torchrun, where every rank would write the same folder.

    Raises:
        CrossentError: ``resume`` in a multi-process run.
    """
    if distributed:
        if resume:
            raise CrossentError("--resume runs in one process (not torchrun)")
        return None
    return TrainingState(Path(out) / STATE_FOLDER, settings, resume=resume, say=say)


@contextmanager
def stop_on_interrupt(state: TrainingState | None) -> Iterator[None]:
    """Inside the block, Ctrl-C ends with :class:`TrainingInterrupted` naming what ``state``
    has saved (see :meth:`TrainingState.stop_on_interrupt`); nothing changes without a state."""
    restore = state.stop_on_interrupt() if state is not None else (lambda: None)
    try:
        yield
    finally:
        restore()
