"""`crossent tour`: one fixed batch's loss in nats and bits under each option of the losses."""

from __future__ import annotations


def tour() -> None:
    """Show one fixed batch's loss in nats and bits under each option of crossent's losses."""
    from crossent.cli._tour_rows import print_tour  # torch loads only when the tour runs

    print_tour()
