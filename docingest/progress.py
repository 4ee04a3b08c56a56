"""A progress bar for the CLI that the flow can drive without knowing about the terminal, and
the clocks a run and a document read their durations from (no Prefect, no terminal: worker
processes import this module too)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from docingest import IMPORTED_AT


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


# A process that ran something else before it became this Python (the last command of
# `bash -c '...; docingest run ...'`, `exec docingest` at the end of a wrapper script) carries
# the kernel's start time of that earlier program. Python itself takes well under this to
# import docingest, the command's first import.
_EXEC_SLACK_SECONDS = 2.0


def process_seconds() -> float:
    """Seconds since this command started: its imports, the Prefect server's start and the
    flow. From the kernel (Linux), unless the process is older than this interpreter (see
    above): then since docingest was imported, less the interpreter's own start (≈ 0.05 s)."""
    import os

    own = time.monotonic() - IMPORTED_AT
    try:
        with open("/proc/self/stat", "rb") as f:
            # Field 22, after the parenthesised command name (which may contain spaces).
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        kernel = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        kernel = own
    return round(kernel if kernel - own < _EXEC_SLACK_SECONDS else own, 2)
