"""The command line's rendering of the recommender's events (:mod:`crossent.recsys.events`).

Notes and finished epochs become lines; progress becomes rich bars, which vanish when their
task ends and are not drawn at all when the output is a pipe or a file (a log gets the one
line per epoch, not a bar's redraws).
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from crossent.recsys import events


def _figures(fields: tuple[tuple[str, float], ...]) -> str:
    return "  ".join(f"{name} {value:,.4g}" for name, value in fields)


class RichListener:
    """A :data:`~crossent.recsys.events.Listener` that draws on a rich console.

    Example:
        >>> import io
        >>> console = Console(file=io.StringIO())
        >>> listen = RichListener(console)
        >>> listen(events.Note("refit", "2 epochs on all 10 watches"))
        >>> console.file.getvalue()
        'refit: 2 epochs on all 10 watches\\n'
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.Note):
            self.console.print(f"[bold]{escape(event.stage)}[/]: {escape(event.text)}")
        elif isinstance(event, events.EpochEnded):
            self.console.print(escape(event.describe()))
        elif self.console.is_terminal:
            self._progress(event)

    def _progress(self, event: events.Progress) -> None:
        if self.bar is None:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
        task = self.tasks.get(event.task)
        if task is None:
            task = self.bar.add_task(event.task, total=event.total, figures="")
            self.tasks[event.task] = task
        self.bar.update(task, completed=event.done, figures=_figures(event.fields))
        if event.done >= event.total:
            self.bar.remove_task(self.tasks.pop(event.task))
            if not self.tasks:
                self.bar.stop()
                self.bar = None
