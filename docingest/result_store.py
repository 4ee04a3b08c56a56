"""The result store: every document's full result, written durably the moment its task ends.

    OUT/_state/results/<processing key>/<doc_id[:2]>/<doc_id>.json.gz

It is the run's staging area for documents (the tables are assembled from it at the end, so a
run holds only a small summary per document in memory) and what makes runs incremental: a
document whose bytes were already processed under the same processing key is not processed
again, whichever run did it, finished or killed. Results of failures the pipeline may not
repeat (an internal error, an engine, a timeout, the VLM budget) are stored for the run's own
tables but never reused: the next run tries those documents again.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from docingest.errors import INPUT_DEFECT_KINDS, RunError, failure_cause
from docingest.fsio import write_bytes_atomic
from docingest.outdir import OutLayout
from docingest.stages.duplicates import FINANCIAL, read_values
from docingest.schemas.records import DocumentResult, Status
from docingest.schemas.runs import DocumentSummary, ProcessingKey

log = logging.getLogger(__name__)


def reusable(result: DocumentResult) -> bool:
    """A later run may take this result as it is: nothing in it depends on a passing state of
    the pipeline. Inputs rejected for their own defects stay rejected."""
    return not result.budget_exhausted and all(e.kind in INPUT_DEFECT_KINDS for e in result.errors)


def stage_ms(result: DocumentResult) -> dict[str, float]:
    """Milliseconds per stage: rendering, text layers and OCR from the pages, the rest as the
    pipeline timed them. The pipeline renders a page only to OCR it (or to find it blank, which
    reads nothing), so a rendered page's reading time is OCR's, also where its sparse text layer
    was kept in the end; an unrendered page's is its text layer's."""
    stages = {"render": 0.0, "text": 0.0, "ocr": 0.0}
    for p in result.pages:
        stages["render"] += p.render_ms
        stages["ocr" if p.render_ms else "text"] += p.read_ms
    stages.update(result.stage_ms)
    return {k: round(v, 2) for k, v in stages.items()}


def summarize(result: DocumentResult, reused: bool = False) -> DocumentSummary:
    doc_type = result.classification.doc_type if result.classification else None
    return DocumentSummary(
        doc_id=result.doc_id, source_path=result.source_path, source_paths=list(result.source_paths),
        doc_type=doc_type, status=result.status, review_reasons=list(result.review_reasons),
        failure_cause=failure_cause(result.errors) if result.status == Status.FAILED else None,
        error_kinds=[e.kind for e in result.errors], page_count=result.page_count,
        pages_by_strategy=dict(Counter(p.strategy.value for p in result.pages if p.strategy)),
        duration_ms=result.duration_ms, stage_ms=stage_ms(result), vlm_usage=result.vlm_usage.model_copy(),
        budget_exhausted=result.budget_exhausted, reused=reused,
        values=read_values(result) if doc_type in FINANCIAL else {},
    )


class ResultStore:
    def __init__(self, out: Path, key: ProcessingKey):
        self.layout = OutLayout(out)
        self.key = key
        self.root = self.layout.results / key.digest

    def path(self, doc_id: str) -> Path:
        return self.root / doc_id[:2] / f"{doc_id}.json.gz"

    def save(self, result: DocumentResult) -> DocumentSummary:
        """Write the result durably (temp file, fsync, rename) and return its summary."""
        if result.doc_id is None:
            raise ValueError("a result without a doc_id (an unreadable file) is not stored")
        data = gzip.compress(result.model_dump_json().encode("utf-8"), compresslevel=5, mtime=0)
        write_bytes_atomic(self.path(result.doc_id), data)
        return summarize(result)

    def load(self, doc_id: str) -> DocumentResult | None:
        """The stored result, or None. A file that does not read back (a disk error, a result
        written by another version) is treated as absent: the document is processed again."""
        path = self.path(doc_id)
        try:
            return DocumentResult.model_validate_json(gzip.decompress(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, EOFError, ValueError, ValidationError) as exc:
            log.warning("stored result %s is unreadable (%s): the document is processed again", path, exc)
            return None

    def summary(self, doc_id: str) -> DocumentSummary:
        """The summary of a result this run stored."""
        result = self.load(doc_id)
        if result is None:
            raise RunError(f"the stored result of document {doc_id} is gone from {self.root}")
        return summarize(result)

    def reusable(self, doc_id: str) -> DocumentResult | None:
        result = self.load(doc_id)
        return result if result is not None and reusable(result) else None

    def prune(self) -> list[str]:
        """Drop results stored under other processing keys: after a change of settings, code or
        calibration they can never be reused, and the store would only grow."""
        dropped = []
        for other in self.layout.results.glob("*"):
            if other.is_dir() and other.name != self.key.digest:
                shutil.rmtree(other, ignore_errors=True)
                dropped.append(other.name)
        return dropped
