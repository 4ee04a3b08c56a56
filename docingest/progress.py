"""A progress bar for the CLI that the flow can drive without knowing about the terminal, and
the clocks a run and a document read their durations from (no Prefect, no terminal: worker
processes import this module too)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[callable]:
    if not enabled:
        yield lambda label: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]docingest[/]"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
        transient=False,
    ) as progress:
        bar = progress.add_task("", total=total)

        def advance(label: str) -> None:
            progress.update(bar, advance=1, description=label[-40:])

        yield advance


class Laps:
    """Seconds spent in each phase: ``lap(name)`` closes the phase that ran since the previous
    lap (the manifest's ``durations.phases``; a document's ``stage_ms``)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._last, 3)
        self._last = now


_IMPORTED = time.monotonic()


def process_seconds() -> float:
    """Seconds since this process started: its imports, the Prefect server's start and the
    flow. From the kernel where it says (Linux), else since docingest was imported."""
    import os

    try:
        with open("/proc/self/stat", "rb") as f:
            # Field 22, after the parenthesised command name (which may contain spaces).
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return round(time.monotonic() - _IMPORTED, 2)
