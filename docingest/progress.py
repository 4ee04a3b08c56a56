"""A progress bar for the CLI that the flow can drive without knowing about the terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[callable]:
    if not enabled:
        yield lambda label: None
        return
    with Progress(
        TextColumn("[bold]docingest[/]"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
        transient=False,
    ) as progress:
        bar = progress.add_task("", total=total)

        def advance(label: str) -> None:
            progress.update(bar, advance=1, description=label[-40:])

        yield advance
