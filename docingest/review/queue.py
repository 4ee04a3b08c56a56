"""What the review app and apply-reviews read: the published tables, latest run per document."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docingest.review.store import DecisionLog
from docingest.outdir import OutLayout
from docingest.published import published_rows


@dataclass
class DocumentView:
    document: dict[str, Any]
    fields: list[dict[str, Any]]
    rule_results: list[dict[str, Any]]
    pages: list[dict[str, Any]] = field(default_factory=list)
    line_items: list[dict[str, Any]] = field(default_factory=list)


class PublishedTables:
    """Published rows, re-read only when a run adds or replaces a part file."""

    def __init__(self, out: Path):
        self.out = out
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._docs: dict[str, dict[str, Any]] = {}
        self._by_doc: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def _files_stamp(self) -> tuple:
        # A run appears by one rename of its folder: the list of run folders says when to re-read.
        return tuple(str(p) for p in OutLayout(self.out).published_runs())

    def refresh(self) -> None:
        with self._lock:
            stamp = self._files_stamp()
            if stamp == self._stamp:
                return
            docs: dict[str, dict[str, Any]] = {}
            # run ids start with the UTC start time: the largest is the latest run.
            for d in published_rows(self.out, "documents"):
                if d["doc_id"] and (d["doc_id"] not in docs or d["run_id"] > docs[d["doc_id"]]["run_id"]):
                    docs[d["doc_id"]] = d
            by_doc: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for table in ("fields", "rule_results", "pages", "line_items"):
                for row in published_rows(self.out, table):
                    doc = docs.get(row["doc_id"])
                    if doc is not None and row["run_id"] == doc["run_id"]:
                        by_doc.setdefault(row["doc_id"], {}).setdefault(table, []).append(row)
            self._docs, self._by_doc, self._stamp = docs, by_doc, stamp

    def documents(self) -> dict[str, dict[str, Any]]:
        self.refresh()
        return self._docs

    def view(self, doc_id: str) -> DocumentView | None:
        self.refresh()
        doc = self._docs.get(doc_id)
        if doc is None:
            return None
        rows = self._by_doc.get(doc_id, {})
        return DocumentView(document=doc, fields=rows.get("fields", []),
                            rule_results=rows.get("rule_results", []),
                            pages=sorted(rows.get("pages", []), key=lambda p: p["page"]),
                            line_items=rows.get("line_items", []))


def pending(tables: PublishedTables, log: DecisionLog) -> list[dict[str, Any]]:
    """Documents waiting for a reviewer: sent to review and not decided yet, oldest first."""
    decided = log.latest_by_doc()
    waiting = [d for d in tables.documents().values()
               if d["status"] == "needs_review" and d["doc_id"] not in decided]
    return sorted(waiting, key=lambda d: (str(d["processed_at"] or ""), d["source_path"]))
