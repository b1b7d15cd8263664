"""RecTools' SASRecModel (softmax loss) on a training file: the peer of bench_recsys_peers.py.

Runs with .venv-peers/bin/python (rectools[torch] 0.19.0, torch 2.13.0); it never imports
crossent. Reads TRAIN (``user item`` per line, line order = time order), fits
``SASRecModel(loss="softmax", ...)`` and writes:

- ``--recs`` (CSV ``user_id,item_id,rank``): the top-k of every user listed in ``--users``,
  already-seen items filtered (``filter_viewed=True``), ids as in TRAIN;
- ``--report`` (JSON): epochs run, best epoch, per-epoch wall time (training and validation),
  per-epoch validation loss, fit and recommend seconds, torch threads, checks.

Validation: RecTools' own ``leave_one_out_mask`` holds out each user's last training
interaction (every user by default; ``--val-users N`` samples N users at random, RecTools'
tutorial convention). Those interactions leave the training set; the lightning module logs
their softmax loss as ``val_loss`` once per epoch. Early stopping watches ``val_loss``
(``--patience`` epochs) and a ModelCheckpoint keeps the best epoch, whose weights are loaded
back before recommending. ``--monitor ndcg`` watches validation NDCG@10 instead, as ``crossent
train`` does: :class:`ValidationNDCG` ranks each held-out item within the logits RecTools'
``validation_step`` returns, the items of the user's input session excluded (RecTools' own
validation tutorial computes its ranking metrics from the same outputs). ``--fixed-epochs``
(the speed mode) runs exactly ``--epochs`` epochs with validation but without early stopping
or checkpoints, and recommends nothing.
``--budget-s S`` ends training after the first epoch that finishes past S seconds of fitting
(the best epoch so far is restored as usual); the report's ``stopped_by`` says which rule
ended the run and ``still_improving`` whether the last epoch was the best, so a run cut by the
budget is never read as converged.

``--state-dir DIR`` makes a long run resumable: the checkpoints live in DIR (the best epoch's
and ``last.ckpt``, written at the end of every epoch), the validation users are drawn once into
``DIR/val_users.txt``, and a later call with the same DIR continues from ``last.ckpt`` (weights,
Adam's state, the epoch count, early stopping's patience and best, the per-epoch times). A run
on Video takes more hours than one sitting, so ``--budget-s`` with ``--state-dir`` splits it
into sittings: each one recommends from the best epoch so far and reports where it stopped,
and the report is only read as converged when ``stopped_by`` says early stopping. The files in
DIR are Lightning checkpoints (pickles) that this script wrote itself; it never resumes from a
DIR it did not create (``DIR/created-by`` marks it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pytorch_lightning import Callback, Trainer, seed_everything
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import SASRecModel
from rectools.models.nn.item_net import IdEmbeddingsItemNet
from rectools.models.nn.transformers.utils import leave_one_out_mask

#: the metric TransformerLightningModule.validation_step logs (its val_loss_name default)
VAL_METRIC = "val_loss"
#: what ValidationNDCG logs; ``--monitor`` picks which of the two early stopping watches
VAL_NDCG = "val_ndcg10"
MONITORS = {"val_loss": (VAL_METRIC, "min"), "ndcg": (VAL_NDCG, "max")}


class Budget(Callback):
    """Stop after the first epoch that ends ``seconds`` after fitting began."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.perf_counter()
        self.hit = False

    def on_train_start(self, trainer: Trainer, pl_module: object) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: object) -> None:
        if time.perf_counter() - self.started > self.seconds:
            self.hit = True
            trainer.should_stop = True


class ValidationNDCG(Callback):
    """Validation NDCG@10 of the held-out items, logged as :data:`VAL_NDCG` every epoch.

    ``validation_step`` returns the logits of each user's last position over the catalogue;
    the held-out item's rank counts the items scored strictly higher, the input session's
    items (and padding, id 0) excluded. NDCG@10 = 1 / log2(rank + 2) when rank < 10, else 0."""

    def __init__(self, k: int = 10) -> None:
        self.k = k
        self._sum, self._count = 0.0, 0

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: object) -> None:
        self._sum, self._count = 0.0, 0

    def on_validation_batch_end(self, trainer: Trainer, pl_module: object, outputs: dict,
                                batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        target = batch["y"].reshape(-1)
        logits = outputs["logits"].reshape(len(target), -1).detach().clone()
        logits.scatter_(1, batch["x"].long(), float("-inf"))
        own = logits.gather(1, target[:, None])
        rank = (logits > own).sum(dim=1).double()
        gain = torch.where(rank < self.k, 1.0 / torch.log2(rank + 2.0), torch.zeros_like(rank))
        self._sum += float(gain.sum())
        self._count += len(target)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        if self._count:
            pl_module.log(VAL_NDCG, self._sum / self._count, on_epoch=True)


class EpochTimer(Callback):
    """Wall time of every epoch: training batches, then the validation lightning runs after them.

    Its lists travel in the checkpoint (``state_dict``), so a resumed run reports every epoch."""

    def __init__(self) -> None:
        self.train_s: list[float] = []
        self.valid_s: list[float] = []
        self.val_loss: list[float] = []
        self.val_ndcg: list[float] = []
        self._start = self._valid_start = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: object) -> None:
        self._start = time.perf_counter()
        self.valid_s.append(0.0)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: object) -> None:
        self._valid_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: object) -> None:
        if trainer.sanity_checking:
            return
        self.valid_s[-1] += time.perf_counter() - self._valid_start
        for name, values in ((VAL_METRIC, self.val_loss), (VAL_NDCG, self.val_ndcg)):
            value = trainer.callback_metrics.get(name)
            values.append(float(value) if value is not None else float("nan"))

    def state_dict(self) -> dict[str, list[float]]:
        return {"train_s": self.train_s, "valid_s": self.valid_s, "val_loss": self.val_loss,
                "val_ndcg": self.val_ndcg}

    def load_state_dict(self, state_dict: dict[str, list[float]]) -> None:
        self.train_s, self.valid_s = list(state_dict["train_s"]), list(state_dict["valid_s"])
        self.val_loss = list(state_dict["val_loss"])
        self.val_ndcg = list(state_dict.get("val_ndcg", [float("nan")] * len(self.val_loss)))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: object) -> None:
        self.train_s.append(time.perf_counter() - self._start - self.valid_s[-1])
        loss = self.val_loss[-1] if self.val_loss else float("nan")
        ndcg = self.val_ndcg[-1] if self.val_ndcg else float("nan")
        print(f"RecTools epoch {len(self.train_s)}: training {self.train_s[-1]:.1f} s, "
              f"validation {self.valid_s[-1]:.1f} s, val_loss {loss:.4f}, "
              f"NDCG@10 {ndcg:.4f}", flush=True)


def get_trainer(epochs: int, patience: int, fixed: bool, checkpoints: str,
                budget_s: float, monitor: str = "val_loss") -> Trainer:
    # ValidationNDCG logs before EpochTimer reads; the speed mode times RecTools' own
    # validation, nothing added to it
    callbacks: list[Callback] = ([] if fixed else [ValidationNDCG()]) + [EpochTimer()]
    if budget_s > 0:
        callbacks.append(Budget(budget_s))
    if not fixed:
        metric, mode = MONITORS[monitor]
        callbacks += [
            EarlyStopping(monitor=metric, mode=mode, patience=patience),
            ModelCheckpoint(dirpath=checkpoints, monitor=metric, mode=mode, save_top_k=1,
                            filename="best-{epoch}", save_last=True),
        ]
    return Trainer(
        max_epochs=epochs, min_epochs=epochs if fixed else 1, deterministic=True,
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=not fixed, num_sanity_val_steps=0,
        callbacks=callbacks,
    )


def read_pairs(path: str) -> pd.DataFrame:
    pairs = np.loadtxt(path, dtype=np.int64, ndmin=2)
    frame = pd.DataFrame({Columns.User: pairs[:, 0], Columns.Item: pairs[:, 1]})
    frame[Columns.Weight] = 1.0
    # the line number is the time: RecTools orders each user's sequence by datetime
    frame[Columns.Datetime] = pd.to_datetime(np.arange(len(frame)), unit="s")
    return frame


STATE_MARK = "created-by"


def prepare_state(state_dir: str, interactions: pd.DataFrame, val_users: int, seed: int,
                  run: str = "") -> tuple[str, str | None, np.ndarray | None]:
    """The checkpoint folder, the checkpoint to resume from (None: a fresh run) and the
    validation users (None: every user), drawn once and kept in the folder."""
    if not state_dir:
        chosen = None
        if val_users:
            users = np.sort(interactions[Columns.User].unique())
            chosen = np.random.default_rng(seed).choice(users, size=val_users, replace=False)
        return tempfile.mkdtemp(prefix="rectools-ckpt-"), None, chosen
    folder = Path(state_dir)
    mark, users_file, last = folder / STATE_MARK, folder / "val_users.txt", folder / "last.ckpt"
    if folder.exists() and any(folder.iterdir()) and not mark.exists():
        raise SystemExit(f"--state-dir {state_dir}: not empty and not made by this script")
    if not mark.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _, _, chosen = prepare_state("", interactions, val_users, seed)
        np.savetxt(users_file, chosen if chosen is not None else [], fmt="%d")
        mark.write_text(run + "\n")
    if mark.read_text().strip() != run:
        raise SystemExit(f"--state-dir {state_dir} holds another run: "
                         f"{mark.read_text().strip()!r}, not {run!r}")
    chosen = np.loadtxt(users_file, dtype=np.int64, ndmin=1) if val_users else None
    return str(folder), (str(last) if last.exists() else None), chosen


def record_sitting(state_dir: str, fit_s: float, epochs: int) -> dict:
    """Append this sitting to ``DIR/sittings.jsonl``; every sitting of the run so far."""
    log = Path(state_dir) / "sittings.jsonl"
    with log.open("a") as out:
        out.write(json.dumps({"fit_seconds": fit_s, "epochs_after": epochs}) + "\n")
    return {"sittings": [json.loads(line) for line in log.read_text().splitlines()]}


def fit(model: SASRecModel, dataset: Dataset, resume: str | None) -> None:
    """``model.fit(dataset)``, or RecTools 0.19's own ``_fit`` steps with Lightning's
    ``ckpt_path`` when resuming (RecTools' public API has no resume)."""
    if resume is None:
        model.fit(dataset)
        return
    model._build_model_from_dataset(dataset)
    train_loader = model.data_preparator.get_dataloader_train()
    val_loader = model.data_preparator.get_dataloader_val()
    model.fit_trainer = deepcopy(model._trainer)
    # RecTools re-draws every weight at the start of training unless the module is marked
    # fitted; the checkpoint's weights are restored before that hook runs
    model.lightning_model.is_fitted = True
    model.fit_trainer.fit(model.lightning_model, train_loader, val_loader, ckpt_path=resume)
    model.is_fitted = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--users", help="file of user ids to recommend for (one per line)")
    parser.add_argument("--recs", help="CSV of recommendations to write")
    parser.add_argument("--report", required=True)
    parser.add_argument("--session-max-len", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--monitor", choices=sorted(MONITORS), default="val_loss",
                        help="what early stopping and the best checkpoint watch")
    parser.add_argument("--val-users", type=int, default=0, help="0: every user")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed-epochs", action="store_true")
    parser.add_argument("--budget-s", type=float, default=0.0,
                        help="stop after the epoch that ends past this many seconds (0: none)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    parser.add_argument("--state-dir", default="",
                        help="keep checkpoints here and resume from its last.ckpt")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    seed_everything(args.seed, workers=True)
    interactions = read_pairs(args.train)
    dataset = Dataset.construct(interactions)
    run = (f"{Path(__file__).name} train sha256 "
           f"{hashlib.sha256(Path(args.train).read_bytes()).hexdigest()} --session-max-len "
           f"{args.session_max_len} --val-users {args.val_users} --seed {args.seed}"
           + ("" if args.monitor == "val_loss" else f" --monitor {args.monitor}"))
    checkpoints, resume, val_users = prepare_state(args.state_dir, interactions, args.val_users,
                                                   args.seed, run)
    model = SASRecModel(
        loss="softmax", n_factors=64, n_blocks=2, n_heads=1,
        session_max_len=args.session_max_len, dropout_rate=0.2, lr=1e-3, batch_size=128,
        epochs=args.epochs, item_net_block_types=(IdEmbeddingsItemNet,), deterministic=True,
        get_val_mask_func=leave_one_out_mask,
        get_val_mask_func_kwargs={"val_users": None if val_users is None else val_users.tolist()},
        get_trainer_func=get_trainer,
        get_trainer_func_kwargs={"epochs": args.epochs, "patience": args.patience,
                                 "fixed": args.fixed_epochs, "checkpoints": checkpoints,
                                 "budget_s": args.budget_s, "monitor": args.monitor},
    )
    started = time.perf_counter()
    fit(model, dataset, resume)
    fit_s = time.perf_counter() - started
    trainer = model.fit_trainer  # a deep copy of get_trainer's: its callbacks hold the times
    timer = next(c for c in trainer.callbacks if isinstance(c, EpochTimer))
    report: dict = {
        "contender": "RecTools", "fit_seconds": fit_s, "torch_threads": torch.get_num_threads(),
        "epochs_run": len(timer.train_s), "train_epoch_seconds": timer.train_s,
        "valid_epoch_seconds": timer.valid_s[: len(timer.train_s)], "val_loss": timer.val_loss,
        "val_ndcg10": timer.val_ndcg, "monitor": MONITORS[args.monitor][0],
        "validation": f"leave_one_out_mask, {args.val_users or 'all'} users",
        "rectools_items": int(model.data_preparator.item_id_map.size),
    }
    if args.state_dir:
        report.update(record_sitting(args.state_dir, fit_s, len(timer.train_s)))
        # a sitting can be killed before it reports: the epochs' own times survive in last.ckpt
        report["fit_seconds"] = float(sum(timer.train_s) + sum(timer.valid_s))
        report["fit_seconds_counts"] = "the epochs' training and validation, every sitting"
    if not args.fixed_epochs:
        best = next(c for c in trainer.callbacks if isinstance(c, ModelCheckpoint))
        model.load_weights_from_checkpoint(best.best_model_path)
        watched = np.array(timer.val_loss if args.monitor == "val_loss" else timer.val_ndcg)
        pick = np.nanargmin if args.monitor == "val_loss" else np.nanargmax
        report["best_epoch"] = int(pick(watched)) + 1
        report["best_checkpoint"] = Path(best.best_model_path).name
        report["still_improving"] = report["best_epoch"] == len(timer.train_s)
    budget = next((c for c in trainer.callbacks if isinstance(c, Budget)), None)
    if budget is not None and budget.hit:
        report["stopped_by"] = f"time budget ({args.budget_s:.0f} s)"
    elif args.fixed_epochs or len(timer.train_s) >= args.epochs:
        report["stopped_by"] = f"max epochs ({args.epochs})"
    else:
        report["stopped_by"] = (f"early stopping on {MONITORS[args.monitor][0]} "
                                f"(patience {args.patience})")
    if args.recs and args.users:
        users = np.loadtxt(args.users, dtype=np.int64, ndmin=1)
        started = time.perf_counter()
        recs = model.recommend(users=users, dataset=dataset, k=args.k, filter_viewed=True)
        report["recommend_seconds"] = time.perf_counter() - started
        recs[[Columns.User, Columns.Item, Columns.Rank]].to_csv(args.recs, index=False)
        seen = interactions.merge(recs[[Columns.User, Columns.Item]], how="inner")
        report["checks"] = {
            "seen_items_recommended": len(seen),
            "unknown_users": int((~recs[Columns.User].isin(interactions[Columns.User])).sum()),
            "unknown_items": int((~recs[Columns.Item].isin(interactions[Columns.Item])).sum()),
            "users_without_recs": len(set(users.tolist()) - set(recs[Columns.User])),
        }
    Path(args.report).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
