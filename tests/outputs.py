"""Reading what a run published, for comparing runs."""

from __future__ import annotations

import json
from pathlib import Path

from docingest.published import run_table_rows

TABLES = ("documents", "pages", "fields", "line_items", "rule_results", "review_queue", "failures")


def snapshot(out: Path, run_id: str) -> dict[str, list]:
    """What a run published, without what differs from run to run (run ids, timings)."""
    rows = {t: run_table_rows(out, t, run_id) for t in TABLES}
    return {
        "documents": sorted((d["doc_id"] or "", d["source_path"], d["status"], d["duplicate_of"] or "",
                             tuple(d["review_reasons"]), d["doc_type"] or "", d["failure_cause"] or "")
                            for d in rows["documents"]),
        "fields": sorted((f["doc_id"], f["field_name"], f["key"] or "", f["value"] or "", f["value_raw"],
                          f["confidence"], f["withheld"]) for f in rows["fields"]),
        "line_items": sorted((i["doc_id"], i["line_no"], str(i["amount"])) for i in rows["line_items"]),
        "rule_results": sorted((r["doc_id"], r["rule_id"], r["passed"], r["message"]) for r in rows["rule_results"]),
        "review_queue": sorted((q["doc_id"], tuple(q["reasons"])) for q in rows["review_queue"]),
        "failures": sorted((f["source_path"], f["error_kind"], f["message"]) for f in rows["failures"]),
    }


def latest_manifest(out: Path) -> dict:
    manifests = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    return max(manifests, key=lambda m: m["started_at"])


