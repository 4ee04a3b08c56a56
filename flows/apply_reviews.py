"""The apply-reviews flow: read published tables and decisions → merge → write curated tables.

    load (published tables, latest run per document; decision log) → merge (re-run rules on
    reviewed values) → write OUT/curated/*.parquet [→ export reviewed documents as labels]
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from docingest.config import RoutingThresholds, Settings
from docingest.review.apply import labelled_records, merge_reviews
from docingest.review.queue import PublishedTables
from docingest.review.store import DecisionLog
from docingest.writer import write_curated, write_jsonl


class ApplySummary(BaseModel):
    documents: int
    decisions: int
    counts: dict[str, int]  # curated status -> documents
    written: dict[str, dict[str, Any]]
    labels: str | None = None
    labelled: int = 0


@task(name="load-reviews", cache_policy=NO_CACHE)
def load_task(out: Path):
    tables = PublishedTables(out)
    documents = tables.documents()
    rows_by_doc: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for doc_id in documents:
        view = tables.view(doc_id)
        rows_by_doc[doc_id] = {"fields": view.fields, "rule_results": view.rule_results,
                               "line_items": view.line_items}
    return documents, rows_by_doc, DecisionLog(out).latest_by_doc()


@task(name="merge-reviews", cache_policy=NO_CACHE)
def merge_task(documents, rows_by_doc, decisions, thresholds: RoutingThresholds, applied_at: datetime):
    return merge_reviews(documents, rows_by_doc, decisions, thresholds, applied_at.date(), applied_at)


@task(name="write-curated", cache_policy=NO_CACHE, retries=0)
def write_task(out: Path, curated, labels: Path | None):
    written = write_curated(out, curated)
    records = labelled_records(curated) if labels else []
    if labels:
        write_jsonl(labels, records)
    return written, len(records)


@flow(name="apply-reviews", validate_parameters=False)
def apply_reviews(out: Path, settings: Settings, labels: Path | None = None) -> ApplySummary:
    applied_at = datetime.now(timezone.utc)
    documents, rows_by_doc, decisions = load_task(out)
    curated = merge_task(documents, rows_by_doc, decisions, settings.routing, applied_at)
    written, labelled = write_task(out, curated, labels)
    counts: dict[str, int] = {}
    for d in curated["documents"]:
        counts[d["status"]] = counts.get(d["status"], 0) + 1
    get_run_logger().info("curated %d documents (%d decisions): %s", len(documents), len(decisions), counts)
    return ApplySummary(documents=len(documents), decisions=len(decisions), counts=dict(sorted(counts.items())),
                        written=written, labels=str(labels) if labels else None, labelled=labelled)
