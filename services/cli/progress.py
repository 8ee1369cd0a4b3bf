"""A rich progress bar driven by ``progress(phase, done, total)`` callbacks, as maintenance work reports it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Report = Callable[[str, int, int | None], None]


def quiet(phase: str, done: int, total: int | None) -> None:
    """A Report that shows nothing: for callers without a bar."""


@contextmanager
def phase_bar(console: Console) -> Iterator[Report]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("starting", total=None)

        def progress(phase: str, done: int, total: int | None) -> None:
            if total is None:  # a count not known in advance: no bar, only the number done
                bar.tasks[task].total = None
            bar.update(task, description=phase, completed=done, total=total)

        yield progress
