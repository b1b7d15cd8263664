"""The library reports through events and prints nothing (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import io

import numpy as np
import torch
from rich.console import Console

from crossent.cli._events import RichListener
from crossent.recsys import events
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.retrieval import train_retrieval
from crossent.recsys.spec import ModelSpec
from crossent.recsys.training.loop import TrainConfig


def _watches() -> Interactions:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(12), 6)
    items = rng.integers(0, 9, len(users))
    return Interactions.from_arrays(users, items, np.tile(np.arange(6), 12))


def _train(listener: events.Listener | None):
    torch.manual_seed(0)
    return train_retrieval(
        _watches(), model=ModelSpec(model="bag", dim=8, history=4),
        train_config=TrainConfig(epochs=2, patience=2, batch_size=8), listener=listener,
    )


def test_training_without_a_listener_prints_nothing(capfd) -> None:
    _train(None)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_a_listener_hears_notes_progress_and_every_epoch(capfd) -> None:
    heard: list[events.Event] = []
    result = _train(heard.append)
    assert capfd.readouterr() == ("", "")  # the listener decides what is shown: here nothing
    epochs = [e for e in heard if isinstance(e, events.EpochEnded) and e.label == "retrieval"]
    history = result.curves["retrieval"]
    assert [e.epoch for e in epochs] == [1, 2]
    assert [e.train_bits for e in epochs] == history.train_bits
    assert [e.valid_ndcg for e in epochs] == history.valid_ndcg
    stages = [e.stage for e in heard if isinstance(e, events.Note)]
    assert stages[0] == "candidate generation" and "EASE" in stages
    # each run of a task starts at 0, only grows, and ends at its total
    running: dict[str, int] = {}
    for event in heard:
        if isinstance(event, events.Progress):
            if event.done == 0:
                assert event.task not in running, f"{event.task} restarted before it ended"
                running[event.task] = 0
            assert running[event.task] <= event.done <= event.total
            running[event.task] = event.done
            if event.done == event.total:
                del running[event.task]
    assert running == {}
    tasks = {e.task for e in heard if isinstance(e, events.Progress)}
    assert "retrieval epoch 1" in tasks and "ranking test targets" in tasks


def test_a_tracker_ends_its_task_when_the_work_stops_early() -> None:
    heard: list[events.Event] = []
    try:
        with events.tracker(heard.append, "work", total=5) as track:
            track.advance(2)
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    assert [(e.done, e.total) for e in heard if isinstance(e, events.Progress)] == [
        (0, 5), (2, 5), (5, 5)
    ]


def test_the_cli_renders_notes_and_epochs_as_lines_and_no_bar_in_a_file() -> None:
    console = Console(file=io.StringIO(), width=200)
    listen = RichListener(console)
    listen(events.Note("refit", "[not markup] 3 epochs"))
    listen(events.Progress("retrieval epoch 1", 0, 4))
    listen(events.Progress("retrieval epoch 1", 4, 4, (("loss (bits)", 3.0),)))
    listen(events.EpochEnded("retrieval", 1, 3.0, float("nan"), None, 100.0))
    lines = console.file.getvalue().splitlines()
    assert lines == [
        "refit: [not markup] 3 epochs",
        "retrieval epoch 1: train 3.0000 bits, 100 ex/s",
    ]

