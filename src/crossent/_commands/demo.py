"""`crossent demo`: the main job on the built-in data."""

from __future__ import annotations


def demo() -> None:
    """Run the main job on the built-in data."""
    from rich.console import Console

    Console().print("crossent demo")
