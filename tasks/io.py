"""Tasks at the two ends of the flow: discover inputs, write outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from docingest.stages.discover import UnreadableInput, discover
from docingest.writer import OutputWriter
from schemas.records import DocumentResult, SourceDocument


@task(name="discover", cache_policy=NO_CACHE)
def discover_task(source: Path | list[Path]) -> tuple[list[SourceDocument], list[UnreadableInput]]:
    return discover(source)


@task(name="write-outputs", cache_policy=NO_CACHE, retries=0)
def write_tables_task(writer: OutputWriter, results: list[DocumentResult]) -> dict[str, Any]:
    return writer.write_tables(results)
