"""`crossent recommend`: a user's top unwatched items with titles and probabilities, or every
user's into a Parquet/CSV file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.table import Table

from crossent._validation.numbers import check_int
from crossent.cli._console import make_console
from crossent.errors import CrossentError

if TYPE_CHECKING:
    from crossent.recsys.serving.checkpoint import Checkpoint


def _users_from_file(checkpoint: Checkpoint, path: Path) -> np.ndarray:
    """Contiguous ids of the user ids in ``path``: one per line, an optional header line."""
    if not path.is_file():
        raise CrossentError(f"--users {str(path)!r} does not exist")
    known = {str(user): index for index, user in enumerate(checkpoint.user_ids)}
    users = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        value = line.strip()
        if not value or (number == 1 and value in ("user", "userId", "user_id")):
            continue
        if value not in known:
            raise CrossentError(f"{path} line {number}: user {value!r} is not in the model's data")
        users.append(known[value])
    if not users:
        raise CrossentError(f"{path}: no user ids in the file")
    return np.asarray(users, dtype=np.int64)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _show_one(
    checkpoint: Checkpoint,
    user: str,
    k: int,
    candidates: int,
    history: int,
    as_json: bool,
) -> None:
    from crossent.recsys.serving.recommend import (
        recent_watches,
        recommend_users,
        recommendation_table,
    )

    index = checkpoint.user_index(user)
    batch = recommend_users(checkpoint, np.array([index]), k, candidates=candidates)
    rows = recommendation_table(checkpoint, batch).to_pylist()
    titles = checkpoint.titles
    recent = [
        {"item": _plain(checkpoint.item_ids[item])}
        | ({} if titles is None else {"title": titles[item]})
        for item in recent_watches(checkpoint, index, history)
    ]
    if as_json:
        for row in rows:
            row.pop("user")
        print(json.dumps({"user": user, "history": recent, "recommendations": rows}))
        return
    console = make_console()
    if recent:
        console.print(f"[bold]last {len(recent)} watches of user {user}[/] (most recent first)")
        for watch in recent:
            console.print(f"  {watch['item']}  {watch.get('title') or ''}".rstrip())
    watched = int(checkpoint.watch_indptr[index + 1] - checkpoint.watch_indptr[index])
    unwatched = checkpoint.candidate.config.n_items - watched
    caption = f"P(next watch): the candidate model's softmax over the {unwatched:,} unwatched items"
    if batch.p_watch is not None:
        caption += f"; P(watch): the ranking model, re-ranking the top {candidates}"
    table = Table(title=f"top {len(rows)} for user {user}", caption=caption, title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("item", justify="right")
    if titles is not None:
        table.add_column("title")
    table.add_column("P(next watch)", justify="right")
    if batch.p_watch is not None:
        ranking = checkpoint.ranking
        watch_time = ranking is not None and ranking.config.loss == "watch-time"
        table.add_column("watch-time odds" if watch_time else "P(watch)", justify="right")
    for row in rows:
        cells = [str(row["rank"]), str(row["item"])]
        if titles is not None:
            cells.append(row["title"] or "")
        cells.append(f"{row['probability']:.2%}")
        if "p_watch" in row:
            cells.append(f"{row['p_watch']:.3f}")
        table.add_row(*cells)
    console.print(table)


def _replace_titles(checkpoint: Checkpoint, items: Path) -> None:
    from crossent.recsys.data.titles import align_titles, read_titles

    found = align_titles(read_titles(items), checkpoint.item_ids)
    if found is None:
        raise CrossentError(
            f"--items {items}: none of its ids matches the model's items "
            f"(ids like {str(checkpoint.item_ids[0])!r})"
        )
    checkpoint.titles = np.asarray(found, dtype=object)


def _write_all(
    checkpoint: Checkpoint, users: np.ndarray, out: Path, k: int, candidates: int, batch: int
) -> None:
    """Every user's rows into ``out``, with a progress bar over users (on stderr)."""
    from crossent.cli._events import RichListener
    from crossent.recsys.serving.recommend import write_recommendations

    console = make_console(stderr=True)
    rows = write_recommendations(
        checkpoint, users, out, k, batch_users=batch, candidates=candidates,
        listener=RichListener(console),
    )
    console.print(f"wrote {rows:,} rows ({len(users):,} users) to {out}")


def recommend(
    model: Annotated[Path, typer.Option(help="Folder written by `crossent train`.")],
    user: Annotated[str | None, typer.Option(help="User id, as in the data file.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="How many items per user.")] = 10,
    candidates: Annotated[
        int,
        typer.Option(help="With a ranking stage: how many candidates it re-ranks."),
    ] = 100,
    history: Annotated[
        int, typer.Option(help="Show the user's last N watches above the table.")
    ] = 0,
    items: Annotated[
        Path | None,
        typer.Option(help="Titles from this file (id and title columns) instead of the model's."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for scripts.")] = False,
    all_users: Annotated[
        bool, typer.Option("--all", help="Every user of the model, into --out.")
    ] = False,
    users: Annotated[
        Path | None, typer.Option(help="The users in this file (one id per line), into --out.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="With --all or --users: a .parquet or .csv file.")
    ] = None,
    batch_users: Annotated[int, typer.Option(help="Users scored at once (--all).")] = 256,
) -> None:
    """Top-k unwatched items with titles, P(next watch) and (two-stage) P(watch).

    P(next watch) is the candidate model's softmax over the items the user has not watched.
    When the model has a ranking stage, the top --candidates are re-ranked by it and its
    P(watch) is shown. --all / --users write one row per (user, rank) to --out, batched in
    fixed memory: user, rank, item, score (logit), probability, p_watch, title.
    """
    from crossent.recsys.serving.checkpoint import load_checkpoint

    if sum((user is not None, all_users, users is not None)) != 1:
        raise CrossentError("give exactly one of --user, --all or --users")
    if user is None and out is None:
        raise CrossentError("--all and --users write their rows to --out (a .parquet or .csv)")
    if user is not None and out is not None:
        raise CrossentError("--out is for --all and --users; --user prints (add --json for JSON)")
    check_int(history, "--history", low=0)
    checkpoint = load_checkpoint(model)
    if items is not None:
        _replace_titles(checkpoint, items)
    if user is not None:
        _show_one(checkpoint, user, k, candidates, history, as_json)
        return
    assert out is not None
    chosen = (
        _users_from_file(checkpoint, users)
        if users is not None
        else np.arange(len(checkpoint.user_ids))
    )
    _write_all(checkpoint, chosen, out, k, candidates, batch_users)
