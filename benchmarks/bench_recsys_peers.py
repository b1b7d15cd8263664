"""crossent's sequence recommender (its defaults) beside RecTools' SASRec, on the same split.

What is compared (issue 19, deliver item 2):

- crossent: ``crossent train --data TRAIN.txt --format sasrec`` with its defaults (extra options
  after ``--crossent-args``), then ``crossent recommend --all --k 10``. Epochs, best epoch and
  training seconds come from the checkpoint's ``history``. ``crossent train`` splits TRAIN
  again (its own validation and test watches of 5,000 sampled users), fits its baselines (EASE,
  the bag model) in the same process, which counts in its process time and peak RSS, and saves
  the sequence model blended with that bag model (weight chosen on validation), each caught up
  on every watch.
- RecTools 0.19: ``SASRecModel(loss="softmax", n_factors=64, n_blocks=2, n_heads=1,
  session_max_len=200 (50 on Video), dropout_rate=0.2, lr=1e-3, batch_size=128,
  item_net_block_types=(IdEmbeddingsItemNet,), deterministic=True)``, early stopping on its
  logged ``val_loss`` (patience 10) over each user's last training interaction held out
  (RecTools' ``leave_one_out_mask``; all users, or ``--val-users N`` sampled), the best epoch
  restored (``--peer-monitor ndcg``: early stopping on validation NDCG@10 of the same held-out
interactions, seen items excluded, as ``crossent train`` stops);
``recommend(k=10, filter_viewed=True)``. It lives in .venv-peers
  (benchmarks/_rectools_peer.py), never in crossent's dependencies.

Protocol: per user, the last interaction in time order is the test item and everything before
it the training file (``user item`` lines, time order), which both read. Users with fewer than 3
interactions stay in training and are not scored. ``--data video``: SASRec's Amazon Video Games
file (31,013 users); ``--data ml``: ml-latest-small, ratings >= 4 as watches (``--min-rating
0``: every rating, as ``crossent train --min-rating 0`` reads a ratings file), ordered by
timestamp (ties keep the file order). Scoring is done here with NumPy from each contender's
top 10: HR@10, NDCG@10 = 1/log2(rank+2), MRR@10 = 1/(rank+1) within the top 10, else 0; standard
errors are std/sqrt(n). Each contender runs in its own process: its wall time and peak RSS
(``os.wait4``) are its own.

``--speed-only``: both at RecTools' configuration (d = 64, 2 blocks, 1 head, history 200 (50 on
Video), dropout 0.2, lr 1e-3, 128 sequences per batch = crossent ``--batch-size`` of 128 x the
mean real targets per window) for exactly ``--epochs`` epochs (default 2), validation every
epoch, no early stopping; time per epoch and peak RSS (crossent through
benchmarks/_crossent_speed.py, without the baselines). Target: crossent <= 0.5x RecTools'
epoch time and peak memory on Video.

    make bench-peers                                    # Video, quality (.venv-peers made first)
    .venv/bin/python benchmarks/bench_recsys_peers.py --data video --json peers-video.json
    .venv/bin/python benchmarks/bench_recsys_peers.py --data ml --json peers-ml.json
    .venv/bin/python benchmarks/bench_recsys_peers.py --data video --speed-only --epochs 2
    .venv/bin/python benchmarks/bench_recsys_peers.py --data ml --max-users 100 --max-epochs 3
    .venv/bin/python benchmarks/bench_recsys_peers.py --data video --concurrent \
        --peer-budget-min 110 --peer-threads 1 --val-users 3000 --crossent-args --threads 1

``--only crossent`` (or ``rectools``) runs one contender on the same split, to try an option
against a run already reported (the split is written from the data file alone, so it is the same
one). ``--concurrent`` trains both at once, one process each (quality only: the times it prints
are then not a speed measurement). ``--peer-budget-min M`` ends RecTools' training after the
first epoch that ends past M minutes, its best epoch restored; the table's note says so, and
whether its validation loss was still falling, so a bounded run is never read as a converged
one. ``--peer-state DIR`` keeps RecTools' checkpoints in DIR and resumes from them: with
``--peer-budget-min``, a RecTools run to its early stop that takes longer than one sitting is
run in several (the same command each time), each sitting scoring the best epoch so far.

How long (estimates, 2 idle cores): Video, quality: hours for each contender. RecTools took
about 10 s per epoch on the first 500 users (2 cores at load 12), which scales to a few minutes
per epoch on all 31,013 users; issue 19 measured 2-4 minutes per default crossent epoch there;
both stop when validation stalls for 10 epochs, typically after tens of epochs, so budget 4-10
hours. ml-latest-small, quality: about one to three hours. ``--speed-only --epochs 2``: about
half an hour on Video, minutes on ml-latest-small. Run it with ``nice`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from _peers_common import (
    HISTORY,
    ML_MIN_RATING,
    ROOT,
    Split,
    check_recs,
    fmt,
    make_split,
    metrics,
    ranks,
    ratio,
    read_events,
    run_child,
    write_split,
)
from crossent._bench_support import machine_header
from crossent._runtime import environment_without_defaults
from crossent._validation.numbers import check_int, check_number
from crossent.cli._console import make_console
from crossent.errors import OptionError

BIN = Path(sys.executable).parent
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
HERE = Path(__file__).resolve().parent


def crossent_quality(args: argparse.Namespace, split: Split, train: Path, work: Path) -> dict:
    out = work / "crossent"
    command = [str(BIN / "crossent"), "train", "--data", str(train), "--format", "sasrec",
               "--out", str(out)]
    if args.max_epochs:
        command += ["--epochs", str(args.max_epochs)]
    trained = run_child(command + args.crossent_args)
    recs_path = work / "crossent_recs.parquet"
    recommended = run_child([str(BIN / "crossent"), "recommend", "--model", str(out), "--all",
                             "--k", str(args.k), "--out", str(recs_path)])
    meta_file = next(out.glob("recommender.*.json"))
    history = json.loads(meta_file.read_text())["history"]["retrieval"]
    epochs = len(history["train_bits"])
    recs = pd.read_parquet(recs_path, columns=["user", "item", "rank"]).astype("int64")
    return {
        "contender": "crossent (defaults)", "recs": recs, "epochs_run": epochs,
        "best_epoch": history.get("best_epoch"), "train_seconds": history["seconds"],
        "epoch_seconds": history["seconds"] / max(epochs, 1),
        "process_seconds": trained.seconds, "peak_rss_mib": trained.peak_rss_mib,
        "recommend_seconds": recommended.seconds,
        "recommend_peak_rss_mib": recommended.peak_rss_mib,
        "options": args.crossent_args,
    }


def rectools(args: argparse.Namespace, train: Path, users: Path, work: Path,
             epochs: int, fixed: bool) -> dict:
    report = work / "rectools.json"
    command = [str(PEERS_PY), str(HERE / "_rectools_peer.py"), "--train", str(train),
               "--report", str(report), "--session-max-len", str(HISTORY[args.data]),
               "--epochs", str(epochs), "--patience", str(args.patience),
               "--val-users", str(args.val_users), "--k", str(args.k),
               "--monitor", args.peer_monitor]
    command += ["--fixed-epochs"] if fixed else ["--users", str(users), "--recs",
                                                  str(work / "rectools_recs.csv")]
    if args.peer_budget_min:
        command += ["--budget-s", str(60 * args.peer_budget_min)]
    if args.peer_threads:
        command += ["--threads", str(args.peer_threads)]
    if args.peer_state:
        command += ["--state-dir", str(args.peer_state)]
    # RecTools' own thread defaults: not the wait policy that importing crossent set here
    child = run_child(command, env=environment_without_defaults())
    found = json.loads(report.read_text())
    per_epoch = np.add(found["train_epoch_seconds"], found["valid_epoch_seconds"])
    result = {
        **found, "contender": "RecTools SASRec (softmax)",
        "train_seconds": found["fit_seconds"], "epoch_seconds": float(per_epoch.mean()),
        "process_seconds": child.seconds, "peak_rss_mib": child.peak_rss_mib,
    }
    if not fixed:
        recs = pd.read_csv(work / "rectools_recs.csv").astype("int64")
        result["recs"] = recs.rename(columns={"user_id": "user", "item_id": "item"})
    return result


def crossent_speed(args: argparse.Namespace, train: Path, work: Path) -> dict:
    report = work / "crossent_speed.json"
    child = run_child([str(BIN / "python"), str(HERE / "_crossent_speed.py"), str(train),
                       str(report), "--history", str(HISTORY[args.data]),
                       "--epochs", str(args.epochs)])
    found = json.loads(report.read_text())
    return {
        **found, "contender": "crossent (RecTools' configuration)",
        "epoch_seconds": found["train_seconds"] / max(found["epochs_run"], 1),
        "process_seconds": child.seconds, "peak_rss_mib": child.peak_rss_mib,
    }


def render(args: argparse.Namespace, header: str, protocol: str, rows: list[dict]) -> None:
    console = make_console()
    console.print(header, highlight=False)
    console.print(f"# protocol: {protocol}", highlight=False)
    mode = f"speed only, {args.epochs} epochs" if args.speed_only else "quality"
    table = Table(title=f"crossent beside RecTools' SASRec on {args.data} ({mode})")
    quality = not args.speed_only
    columns = ["contender"]
    if quality:
        columns += ["HR@10 ± SE", "NDCG@10 ± SE", "MRR@10", "epochs (best)"]
    else:
        columns += ["epochs"]
    columns += ["training (s)", "per epoch (s)", "process (s)", "peak RSS (MiB)"]
    for name in columns:
        table.add_column(name, justify="left" if name == "contender" else "right")
    for row in rows:
        cells = [row["contender"]]
        if quality:
            m = row["metrics"]
            cells += [f"{m['HR@10']:.4f} ± {m['HR@10 SE']:.4f}",
                      f"{m['NDCG@10']:.4f} ± {m['NDCG@10 SE']:.4f}", f"{m['MRR@10']:.4f}",
                      f"{row['epochs_run']} ({row.get('best_epoch', '-')})"]
        else:
            cells += [str(row["epochs_run"])]
        cells += [fmt(row["train_seconds"]), fmt(row["epoch_seconds"], 2),
                  fmt(row["process_seconds"]), fmt(row["peak_rss_mib"], 0)]
        table.add_row(*cells)
    console.print(table)
    for row in rows:
        if "stopped_by" in row:
            still = ", validation still improving at the last epoch: not converged" \
                if row.get("still_improving") else ""
            console.print(f"{row['contender']}: stopped by {row['stopped_by']}{still}",
                          highlight=False)
    if args.concurrent:
        console.print("--concurrent: both contenders trained at the same time on this machine; "
                      "their times and ratios are not a speed measurement (--speed-only is)",
                      highlight=False)
    if len(rows) < 2:
        console.print(f"--only {args.only}: one contender, no ratio", highlight=False)
        return
    ours, peer = rows
    console.print(
        f"crossent / RecTools: time per epoch {ratio(ours['epoch_seconds'], peer['epoch_seconds'])}"
        f", peak RSS {ratio(ours['peak_rss_mib'], peer['peak_rss_mib'])}"
        + ("  (speed target: <= 0.5x both, on Video)" if args.speed_only else ""),
        highlight=False,
    )
    baselines = "" if args.speed_only else " (crossent train also fits its baselines)"
    console.print(
        "training (s): crossent's loop time from its history (validation included); RecTools' "
        "fit() (data preparation included); per epoch: training + validation; process: the "
        f"whole child process{baselines}; RecTools' torch threads: {peer.get('torch_threads')}.",
        highlight=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("video", "ml"), default="video")
    parser.add_argument("--max-users", type=int, help="only the first N users by id")
    parser.add_argument("--min-rating", type=float, default=ML_MIN_RATING,
                        help="ml: the lowest rating kept as a watch (0: every rating)")
    parser.add_argument("--max-epochs", type=int,
                        help="most epochs for both (default: crossent's default; RecTools 200)")
    parser.add_argument("--patience", type=int, default=10, help="RecTools' early stopping")
    parser.add_argument("--peer-monitor", choices=("val_loss", "ndcg"), default="val_loss",
                        help="what RecTools' early stopping watches: its validation loss "
                        "(its tutorial's) or validation NDCG@10 (crossent train's)")
    parser.add_argument("--val-users", type=int, default=0,
                        help="RecTools' validation users, sampled (0: every user)")
    parser.add_argument("--peer-budget-min", type=float, default=0.0,
                        help="stop RecTools after the epoch that ends past this many minutes")
    parser.add_argument("--peer-threads", type=int, default=0,
                        help="RecTools' torch threads (0: its own default)")
    parser.add_argument("--peer-state", type=Path,
                        help="RecTools' checkpoints live here; a later run with the same folder "
                        "resumes where it stopped")
    parser.add_argument("--concurrent", action="store_true",
                        help="quality: train both at once (times then are not comparable)")
    parser.add_argument("--only", choices=("crossent", "rectools"),
                        help="quality: run this contender alone (e.g. to try a crossent option "
                        "against a RecTools run already reported)")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--epochs", type=int, default=2, help="--speed-only: epochs of each")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--work", type=Path, help="default: bench-results/peers-DATA")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--crossent-args", nargs=argparse.REMAINDER, default=[],
                        help="everything after it goes to crossent train")
    # argparse's own refusals (an unknown choice, a missing value) in one line too, no usage dump
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message}\n")  # type: ignore[method-assign]
    args = parser.parse_args()
    problem = None
    if args.speed_only and (args.concurrent or args.only):
        problem = (f"{'--concurrent' if args.concurrent else '--only'} is for quality runs: "
                   "--speed-only times both contenders, each alone")
    elif args.peer_state and (args.speed_only or args.only == "crossent"):
        problem = (f"--peer-state {args.peer_state} resumes RecTools' quality run: it does not "
                   f"go with {'--speed-only' if args.speed_only else '--only crossent'}")
    elif args.peer_monitor != "val_loss" and (args.speed_only or args.only == "crossent"):
        problem = (f"--peer-monitor {args.peer_monitor} sets RecTools' early stopping: it does "
                   f"not go with {'--speed-only' if args.speed_only else '--only crossent'}")
    try:
        check_number(args.peer_budget_min, "--peer-budget-min", low=0)
        check_int(args.peer_threads, "--peer-threads", low=0)
        check_number(args.min_rating, "--min-rating", low=0)
    except OptionError as error:
        problem = str(error)
    if args.data != "ml" and args.min_rating != ML_MIN_RATING:
        problem = f"--min-rating {args.min_rating:g} is for --data ml: {args.data} has no ratings"
    if problem:  # one line and exit status 2, as crossent's CLI answers a bad option
        parser.exit(2, f"{parser.prog}: error: {problem}\n")
    if not PEERS_PY.exists() and args.only != "crossent":
        raise SystemExit(f"{PEERS_PY} is missing: `make bench-peers` creates .venv-peers")
    work = args.work or ROOT / "bench-results" / f"peers-{args.data}"
    header = machine_header()  # before the runs: the load average they start under
    split = make_split(*read_events(args.data, args.min_rating), args.max_users)
    train, users = write_split(split, work)
    protocol = split.protocol(args.data, args.max_users, args.min_rating)
    print(f"# {protocol}", file=sys.stderr)
    if args.speed_only:
        rows = [crossent_speed(args, train, work),
                rectools(args, train, users, work, args.epochs, fixed=True)]
    else:
        train_frame = pd.DataFrame({"user": split.train_user, "item": split.train_item})
        peer_epochs = args.max_epochs or 200
        if args.only == "crossent":
            rows = [crossent_quality(args, split, train, work)]
        elif args.only == "rectools":
            rows = [rectools(args, train, users, work, peer_epochs, fixed=False)]
        elif args.concurrent:
            with ThreadPoolExecutor(2) as pool:
                ours = pool.submit(crossent_quality, args, split, train, work)
                theirs = pool.submit(rectools, args, train, users, work, peer_epochs, False)
                rows = [ours.result(), theirs.result()]
        else:
            rows = [crossent_quality(args, split, train, work),
                    rectools(args, train, users, work, peer_epochs, fixed=False)]
        for row in rows:
            recs = row.pop("recs")
            row["metrics"] = metrics(ranks(recs, split, args.k))
            row["checks"] = check_recs(recs, train_frame, split)
            if any(row["checks"][key] for key in ("seen_items_recommended", "unknown_users")):
                print(f"warning: {row['contender']}: {row['checks']}", file=sys.stderr)
    render(args, header, protocol, rows)
    if args.json:
        args.json.write_text(json.dumps({
            "data": args.data, "mode": "speed-only" if args.speed_only else "quality",
            "machine": header, "protocol": protocol, "contenders": rows,
        }, indent=1, default=str))


if __name__ == "__main__":
    main()
