"""Progress bars for long work, shown only when the CLI turns them on (the library itself stays quiet)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

enabled = False
"""Set by the CLI when stderr is a terminal (or ``--progress``)."""


@contextmanager
def bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)``; a rich progress bar on stderr when enabled, else a no-op."""
    if not enabled:
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)
