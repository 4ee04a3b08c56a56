"""Tasks around the per-document work: discover inputs, cross-document checks, the batch
gate, write outputs."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from docingest.config import GateOptions
from docingest.stages.discover import UnreadableInput, discover
from docingest.stages.duplicates import check_duplicates
from docingest.stages.gate import run_gate
from docingest.writer import OutputWriter, prior_documents
from schemas.gate import GateVerdict
from schemas.records import DocumentResult, SourceDocument


@task(name="discover", cache_policy=NO_CACHE)
def discover_task(source: Path | list[Path]) -> tuple[list[SourceDocument], list[UnreadableInput]]:
    return discover(source)


@task(name="check-duplicates", cache_policy=NO_CACHE)
def check_duplicates_task(results: list[DocumentResult], out: Path) -> list[DocumentResult]:
    return check_duplicates(results, prior_documents(out))


@task(name="batch-gate", cache_policy=NO_CACHE, retries=0)
def batch_gate_task(rows: dict[str, list[dict[str, Any]]], options: GateOptions, run_date: date,
                    docs_dir: Path, out: Path) -> GateVerdict:
    return run_gate(rows, options, run_date, docs_dir, out)


@task(name="write-outputs", cache_policy=NO_CACHE, retries=0)
def write_tables_task(writer: OutputWriter, rows: dict[str, list[dict[str, Any]]],
                      quarantined: bool) -> dict[str, Any]:
    return writer.write_tables(rows, quarantined=quarantined)
