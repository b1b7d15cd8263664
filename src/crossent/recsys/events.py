"""What the recommender reports while it works: events, for the caller to show or not.

The library never prints. Training, evaluation, the baselines and the pipelines take a
``listener``, a function that receives one :data:`Event` at a time, and do nothing visible
without one. The command line renders the events with rich (``cli/_events.py``); a notebook,
a server or a test passes its own function, or nothing (docs/ARCHITECTURE.md, "The library
reports, the CLI renders").

Three kinds of event:

- :class:`Note`: a stage starts or decides something ("refit: 7 epochs on all 287,107
  watches", the EASE λ that validation chose);
- :class:`EpochEnded`: one epoch's training and validation losses;
- :class:`Progress`: long work of known size advanced (an epoch's steps, users ranked); a
  task's first event has ``done == 0`` and its last ``done == total``.

Example:
    >>> events = []
    >>> note(events.append, "refit", "3 epochs on all 120 watches")
    >>> with tracker(events.append, "ranking test targets", total=2) as track:
    ...     track.advance(2)
    >>> [type(event).__name__ for event in events]
    ['Note', 'Progress', 'Progress']
    >>> events[-1].done, events[-1].total
    (2, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """A stage began or chose something: ``stage`` names it, ``text`` says what."""

    stage: str
    text: str


@dataclass(frozen=True)
class EpochEnded:
    """One epoch of the loop called ``label`` ended (losses in bits per target).

    ``valid_bits`` is NaN when the loop has no validation; ``valid_ndcg`` is ``None`` when it
    does not rank.
    """

    label: str
    epoch: int
    train_bits: float
    valid_bits: float
    valid_ndcg: float | None
    examples_per_second: float

    def describe(self) -> str:
        """The epoch as one line of plain text.

        Example:
            >>> line = EpochEnded("retrieval", 3, 12.5, 12.0, 0.04, 1500.0).describe()
            >>> for part in line.split(", "):
            ...     print(part)
            retrieval epoch 3: train 12.5000 bits
            validation 12.0000 bits
            NDCG@10 0.0400
            1,500 ex/s
        """
        ndcg = "" if self.valid_ndcg is None else f", NDCG@10 {self.valid_ndcg:.4f}"
        valid = "" if math.isnan(self.valid_bits) else (
            f", validation {self.valid_bits:.4f} bits{ndcg}"
        )
        return (
            f"{self.label} epoch {self.epoch}: train {self.train_bits:.4f} bits{valid}, "
            f"{self.examples_per_second:,.0f} ex/s"
        )


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of ``task`` are finished; ``fields`` are running figures
    (name, value) to show beside it, such as the epoch's mean loss."""

    task: str
    done: int
    total: int
    fields: tuple[tuple[str, float], ...] = ()


Event = Note | EpochEnded | Progress
#: Receives each event; what it shows (if anything) is the caller's business.
Listener = Callable[[Event], None]


def note(listener: Listener | None, stage: str, text: str) -> None:
    """Send a :class:`Note` to ``listener`` when there is one."""
    if listener is not None:
        listener(Note(stage, text))


def epoch_ended(listener: Listener | None, event: EpochEnded) -> None:
    """Send ``event`` to ``listener`` when there is one."""
    if listener is not None:
        listener(event)


class Tracker:
    """Counts one task's finished units and reports each change as a :class:`Progress`."""

    def __init__(self, listener: Listener | None, task: str, total: int) -> None:
        self.listener, self.task, self.total, self.done = listener, task, total, 0

    def advance(self, units: int = 1, **fields: float) -> None:
        """``units`` more are finished; ``fields`` replace the running figures."""
        self.done += units
        if self.listener is not None:
            self.listener(Progress(self.task, self.done, self.total, tuple(fields.items())))

    def _start(self) -> None:
        if self.listener is not None:
            self.listener(Progress(self.task, 0, self.total))

    def _finish(self) -> None:
        if self.listener is not None and self.done < self.total:  # stopped early: end it
            self.listener(Progress(self.task, self.total, self.total))


@contextmanager
def tracker(listener: Listener | None, task: str, total: int) -> Iterator[Tracker]:
    """A :class:`Tracker` for ``task``: its first event on entry, its last on exit (also
    when the work stops early or raises), none at all without a listener."""
    track = Tracker(listener, task, total)
    track._start()
    try:
        yield track
    finally:
        track._finish()
