"""`crossent convert`: turn a crossent 0.1 checkpoint (pickled model.pt) into the safe format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crossent.cli._console import make_console


def convert(
    model: Annotated[Path, typer.Argument(help="Folder holding the old model.pt.")],
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Required: you trust the file's source (a pickle can run code when opened).",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write the converted folder here (default: MODEL).")
    ] = None,
) -> None:
    """Convert MODEL/model.pt into a checkpoint folder (safetensors + JSON, no pickle).

    model.pt is a pickle, and opening a pickle can run any code it carries. The file is read
    with PyTorch's restricted unpickler, which loads only tensors, numpy arrays and plain
    values and refuses anything else; still, convert only files whose source you trust.
    model.pt is left in place: delete it once the converted folder works.
    """

    from crossent.recsys.serving.convert import RISK, convert_legacy

    console = make_console(stderr=True)
    if trust_pickle:
        console.print(f"[yellow]warning:[/] {RISK}")
    folder = convert_legacy(model, trust_pickle=trust_pickle, out=out)
    console.print(f"converted {model} -> {folder} (safetensors + JSON); model.pt left in place")
