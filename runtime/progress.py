"""Progress bars for the long commands (evaluate, manifest): rate and time left on a terminal, nothing at all
when stderr is not one (a pipe, a CI log, a file), so that logs hold results rather than redraw noise.

    from quadrant.progress import progress_bar, reading

    with progress_bar("checking", total=len(rows), unit="studies") as update:
        for done, row in enumerate(rows, 1):
            ...
            update(done)                  # or update(done, new_total) when the total changes

    with reading(path, "reading labels") as raw:    # a binary file; its bar counts bytes read
        ...

`update(done, total)` has the shape of `quadrant.evaluate.evaluate`'s `progress` callback, so a bar plugs in
as that callback directly. Bars draw on stderr and vanish when done (transient): stdout stays the command's
result. `enabled=None` means "on when stderr is a terminal and QUADRANT_NO_PROGRESS is unset".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

__all__ = ["progress_bar", "reading", "progress_enabled"]

Update = Callable[..., None]


def progress_enabled() -> bool:
    """Bars only where a person watches: stderr is a terminal, and QUADRANT_NO_PROGRESS is not set."""
    return sys.stderr.isatty() and not os.environ.get("QUADRANT_NO_PROGRESS")


class _RateColumn(ProgressColumn):
    """Items per second, in the bar's own unit ("12.5 studies/s"); rich's own speed column counts bytes."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{speed:,.0f}" if speed >= 100 else f"{speed:.1f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed")


def _progress(enabled: bool | None, *columns: ProgressColumn | str) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), *columns,
        console=Console(stderr=True), transient=True,
        disable=not (progress_enabled() if enabled is None else enabled),
    )


@contextmanager
def progress_bar(description: str, total: int | None = None, *, unit: str = "rows",
                 enabled: bool | None = None) -> Iterator[Update]:
    """A bar counting `unit`s with rate, elapsed and remaining time; yields `update(done, total=None)`."""
    with _progress(enabled, BarColumn(), MofNCompleteColumn(), _RateColumn(unit), TimeElapsedColumn(),
                   TimeRemainingColumn()) as bar:
        task = bar.add_task(description, total=total)
        first = True

        def update(done: int, total: int | None = None) -> None:
            nonlocal first
            if first:  # work finished before this run (a resume) is where the bar starts, not part of its rate
                bar.reset(task, completed=done, total=total if total is not None else bar.tasks[0].total)
                first = False
            elif total is not None:
                bar.update(task, completed=done, total=total)
            else:
                bar.update(task, completed=done)

        yield update


@contextmanager
def reading(path: str | os.PathLike, description: str, *, enabled: bool | None = None) -> Iterator[BinaryIO]:
    """`path` opened for binary reading, with a bar of bytes read against its size, transfer rate and time
    left: for large inputs read in one pass (a compressed CSV counts its compressed bytes)."""
    with _progress(enabled, BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()) as bar:
        with bar.open(Path(path), "rb", description=description) as handle:
            yield handle
