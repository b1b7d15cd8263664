"""`crossent recommend`: top-k unwatched videos for one user from a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def recommend(
    model: Annotated[Path, typer.Option(help="Folder written by `crossent train`.")],
    user: Annotated[str, typer.Option(help="User id, as in the data file.")],
    k: Annotated[int, typer.Option("-k", "--k", help="How many videos.")] = 10,
) -> None:
    """Print the top-k videos the user has not watched, with the model's scores."""
    from rich.console import Console
    from rich.table import Table

    from crossent.recsys.checkpoint import load_checkpoint
    from crossent.recsys.checkpoint import recommend as top_k

    checkpoint = load_checkpoint(model)
    index = checkpoint.user_index(user)
    items, scores = top_k(checkpoint, index, k)
    watched = int(checkpoint.watch_indptr[index + 1] - checkpoint.watch_indptr[index])
    table = Table(
        title=f"top {len(items)} for user {user}",
        caption=f"{watched} already-watched items excluded",
        title_justify="left",
    )
    table.add_column("rank", justify="right")
    table.add_column("item", justify="right")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(zip(items, scores, strict=True), start=1):
        table.add_row(str(rank), str(item), f"{score:.4f}")
    Console().print(table)
