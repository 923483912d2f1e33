"""Progress of long work, in the form its reader can see: a rich bar on a terminal, plain lines in a
log (CI, ``tee``, a notebook), nothing when turned off. The CLI picks the mode; the library itself
stays quiet (``off``) unless a caller turns it on.

In ``lines`` mode a stage prints nothing while it is short: its first line comes after
:data:`LINE_EVERY` seconds, then one at most every :data:`LINE_EVERY` seconds, and one when it ends,
so a 2-second encode leaves no trace and a 20-minute training run shows its pace, loss and ETA,
each line prefixed with what runs (the rung and goldset, from :func:`note`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

Mode = Literal["off", "bar", "lines"]
mode: Mode = "off"
"""Set by the CLI: ``bar`` when stderr is a terminal, ``lines`` when it is not, ``off`` with ``--no-progress``."""

LINE_EVERY = 30.0
"""Seconds between two plain progress lines of one stage (and before the first)."""

Update = Callable[..., None]
"""``update(done, total, info="")``: ``info`` is a short status such as ``loss 0.412``."""


@contextmanager
def bar(description: str) -> Iterator[Update]:
    """Yield ``update(done, total, info="")`` for one stage of work, shown as the mode says."""
    if mode == "bar":
        with _rich_bar(description) as update:
            yield update
    elif mode == "lines":
        lines = _Lines(description)
        yield lines.update
        lines.finish()
    else:
        yield lambda done, total, info="": None


context = ""
"""What is running now (set by :func:`note`): in ``lines`` mode every line starts with it."""


def note(message: str) -> None:
    """Say what starts now (a rung on a goldset): a line of its own on a terminal; in a log, the
    prefix of the progress lines that follow (a quick rung leaves no line at all)."""
    global context
    context = message
    if mode == "bar":
        _emit(message)


@contextmanager
def _rich_bar(description: str) -> Iterator[Update]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=None, info="")
        yield lambda done, total, info="": progress.update(task, completed=done, total=total, info=info)


class _Lines:
    """Plain progress lines for a log: at most one every LINE_EVERY seconds, none for a short stage."""

    def __init__(self, description: str, clock: Callable[[], float] = time.monotonic):
        self.description = description
        self.clock = clock
        self.start = self.last = clock()
        self.state: tuple[int, int | None, str] | None = None
        self.printed: tuple[int, int | None, str] | None = None  # the state last printed

    def update(self, done: int, total: int | None, info: str = "") -> None:
        self.state = (done, total, info)
        now = self.clock()
        if now - self.last >= LINE_EVERY:
            self.last = now
            self._print(now)

    def finish(self) -> None:
        if self.printed and self.state != self.printed:  # a stage that printed anything says where it ended
            self._print(self.clock())

    def _print(self, now: float) -> None:
        done, total, info = self.state
        elapsed = now - self.start
        where = f"{context}: {self.description}" if context else self.description
        parts = [f"{where}: {done}/{total}" if total else f"{where}: {done}"]
        if total:
            parts[0] += f" ({100 * done / total:.0f}%)"
        parts.append(f"{_duration(elapsed)} elapsed")
        if total and 0 < done < total:
            parts.append(f"about {_duration(elapsed / done * (total - done))} left")
        if info:
            parts.append(info)
        _emit(", ".join(parts))
        self.printed = self.state


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _emit(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
