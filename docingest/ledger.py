"""The run ledger: what the flow knows of each document of a run, one compact Arrow row each.

A run of many thousands of documents must not hold a Python object per document for its
whole length: a summary as a pydantic model costs several kilobytes, as an Arrow row a few
hundred bytes. Summaries go in as each document finishes and come out a chunk at a time, in
the order the tables are written; the duplicate check takes only the invoices whose vendor and
number another document shares, and the manifest's tallies are computed column by column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from docingest.stages.duplicates import summary_key
from docingest.stages.route import reason_kind
from docingest.schemas.records import Status, VlmUsage
from docingest.schemas.runs import DocumentSummary, DuplicateVerdict

SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("source_path", pa.string()),
    ("source_paths", pa.list_(pa.string())),
    ("doc_type", pa.string()),
    ("status", pa.string()),
    ("review_reasons", pa.list_(pa.string())),
    ("failure_cause", pa.string()),
    ("error_kinds", pa.list_(pa.string())),
    ("page_count", pa.int32()),
    ("pages_by_strategy", pa.string()),  # JSON
    ("duration_ms", pa.float64()),
    ("stage_ms", pa.string()),  # JSON
    ("vlm_usage", pa.string()),  # JSON
    ("budget_exhausted", pa.bool_()),
    ("reused", pa.bool_()),
    ("values", pa.string()),  # JSON: invoices and receipts only
    ("dup_key", pa.string()),  # vendor + invoice number as the duplicate check compares them
])
_JSON = ("pages_by_strategy", "stage_ms", "vlm_usage", "values")
_CHUNK = 512


def _row(s: DocumentSummary) -> dict[str, Any]:
    row = s.model_dump(mode="json")
    for name in _JSON:
        row[name] = json.dumps(row[name], separators=(",", ":"))
    key = summary_key(s)
    row["dup_key"] = "\x1f".join(key) if key else None
    return row


def _summary(row: dict[str, Any]) -> DocumentSummary:
    row = dict(row)
    del row["dup_key"]
    for name in _JSON:
        row[name] = json.loads(row[name])
    return DocumentSummary.model_validate(row)


class RunLedger:
    def __init__(self) -> None:
        self._batches: list[pa.RecordBatch] = []
        self._pending: list[dict[str, Any]] = []
        self._sorted: pa.Table | None = None

    def add(self, summary: DocumentSummary) -> None:
        self._pending.append(_row(summary))
        self._sorted = None
        if len(self._pending) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._batches.append(pa.RecordBatch.from_pylist(self._pending, schema=SCHEMA))
            self._pending = []

    def table(self) -> pa.Table:
        """Every document, in the order the tables are written: by path, the files that could
        not be read at all last."""
        if self._sorted is None:
            self._flush()
            table = pa.Table.from_batches(self._batches, schema=SCHEMA)
            unreadable = pc.is_null(table["doc_id"])
            self._sorted = table.take(pc.sort_indices(
                pa.table({"u": unreadable, "p": table["source_path"]}), [("u", "ascending"), ("p", "ascending")]))
        return self._sorted

    def __len__(self) -> int:
        return sum(b.num_rows for b in self._batches) + len(self._pending)

    def doc_ids(self) -> set[str]:
        return {d for d in self.table()["doc_id"].to_pylist() if d is not None}

    def summaries(self, table: pa.Table | None = None) -> Iterator[DocumentSummary]:
        """The summaries, a chunk of rows at a time made into objects."""
        for batch in (table if table is not None else self.table()).to_batches(_CHUNK):
            for row in batch.to_pylist():
                yield _summary(row)

    def sharing_keys(self, published_keys: set[tuple[str, str]]) -> list[DocumentSummary]:
        """The invoices and receipts whose vendor + invoice number another document of this run
        or a published one has: the only ones the duplicate check can find anything for."""
        keys = self.table()["dup_key"]
        counts = pc.value_counts(pc.drop_null(keys))
        wanted = {v["values"] for v in counts.to_pylist() if v["counts"] > 1}
        wanted |= {"\x1f".join(k) for k in published_keys}
        rows = self.table().filter(pc.fill_null(pc.is_in(keys, pa.array(sorted(wanted), pa.string())), False))
        return list(self.summaries(rows))

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table()[name]

    def tally(self, verdicts: dict[str, DuplicateVerdict]) -> dict[str, Any]:
        """What the manifest counts, after the duplicate check's verdicts."""
        t = self.table()
        statuses = t["status"].to_pylist()
        reasons: dict[str, int] = {}
        for i, (doc_id, doc_reasons) in enumerate(zip(t["doc_id"].to_pylist(), t["review_reasons"].to_pylist())):
            verdict = verdicts.get(doc_id)
            if verdict is not None:
                statuses[i] = verdict.status.value
                if verdict.review_reason and verdict.review_reason not in doc_reasons:
                    doc_reasons.append(verdict.review_reason)
            if statuses[i] == Status.NEEDS_REVIEW.value:
                for kind in {reason_kind(r) for r in doc_reasons}:
                    reasons[kind] = reasons.get(kind, 0) + 1
        processed = t.filter(pc.invert(t["reused"]))
        usage = VlmUsage()
        for u in processed["vlm_usage"].to_pylist():
            usage.add(VlmUsage.model_validate_json(u))
        strategies: dict[str, int] = {}
        for p in processed["pages_by_strategy"].to_pylist():
            for k, n in json.loads(p).items():
                strategies[k] = strategies.get(k, 0) + n
        stage_ms: dict[str, float] = {}
        for p in processed["stage_ms"].to_pylist():
            for k, ms in json.loads(p).items():
                stage_ms[k] = stage_ms.get(k, 0.0) + ms
        return {
            "counts": {st.value: statuses.count(st.value) for st in Status},
            # Documents waiting for review per reason (without its measurements), most first.
            "review_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "processed": processed.num_rows,
            "reused": t.num_rows - processed.num_rows,
            "pages": int(pc.sum(t["page_count"]).as_py() or 0),
            "failure_causes": _counts(t["failure_cause"]),
            "failure_kinds": _counts(pc.list_flatten(t["error_kinds"])),
            "doc_types": _counts(t["doc_type"]),
            "document_seconds": round((pc.sum(processed["duration_ms"]).as_py() or 0) / 1000, 2),
            # Summed over the processed documents (on several workers at once: more than the wall).
            "stage_seconds": {k: round(ms / 1000, 2) for k, ms in stage_ms.items()},
            "vlm_usage": usage,
            "budget_exhausted": int(pc.sum(processed["budget_exhausted"]).as_py() or 0),
            "pages_by_strategy": dict(sorted(strategies.items())),
            "source_paths": sorted(set(pc.list_flatten(t["source_paths"]).to_pylist())),
        }


def _counts(column) -> dict[str, int]:
    counts = pc.value_counts(pc.drop_null(column)).to_pylist()
    return dict(sorted((c["values"], c["counts"]) for c in counts))
