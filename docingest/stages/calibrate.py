"""Calibrate field confidences so that they mean what they say.

Raw confidences come from how a value was found (label on the same line, OCR word scores,
grounding); they rank values but are not probabilities. A calibrated confidence is the measured
share of right values among labelled values of the same field, source and raw-confidence bucket,
Laplace-smoothed ((right + 1) / (n + 2)), so a small bucket cannot claim certainty. Where the
table has the source but too few values in the bucket, the confidence is capped below the
acceptance bar: unmeasured reliability never auto-accepts. A source the table has never seen
(e.g. a VLM before its own eval) keeps its raw confidence.

Values passing one by one do not make a document right, so the table also counts documents per
type and source; routing asks ``document_reliability`` before it accepts one.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from docingest.schemas.calibration import BUCKET_EDGES, Bucket, CalibrationTable, DocumentCount
from docingest.schemas.records import Extraction

UNMEASURED_CAP = 0.85


def load_table(path: Path | None) -> CalibrationTable | None:
    if path is None or not Path(path).is_file():
        return None
    return CalibrationTable.model_validate_json(Path(path).read_text(encoding="utf-8"))


def _bucket_index(confidence: float) -> int:
    for i in range(len(BUCKET_EDGES) - 1):
        if BUCKET_EDGES[i] <= confidence < BUCKET_EDGES[i + 1]:
            return i
    return len(BUCKET_EDGES) - 2


def calibrated(table: CalibrationTable, field_name: str, source: str, raw: float,
               method: str | None = None) -> float:
    """The measured share right for values found the same way, else for all values of the
    field from that source, else the raw confidence capped below the acceptance bar."""
    if source not in table.sources():
        return raw
    keys = ([CalibrationTable.key(field_name, source, method)] if method else []) + [
        CalibrationTable.key(field_name, source)]
    for key in keys:
        buckets = table.entries.get(key)
        if buckets:
            b = buckets[_bucket_index(raw)]
            if b.n >= table.min_count:
                return round((b.right + 1) / (b.n + 2), 4)
    return round(min(raw, UNMEASURED_CAP), 4)


def calibrate_extraction(extraction: Extraction, table: CalibrationTable | None) -> None:
    """Keep the raw confidence, replace ``confidence`` by its calibrated value (in place)."""
    for value in extraction.values:
        if value.confidence_raw is None:
            value.confidence_raw = value.confidence
        if table is not None:
            value.confidence = calibrated(table, value.field_name, value.source.value, value.confidence_raw,
                                          value.method)


def document_source(extraction: Extraction) -> str:
    """How a document's asserted values were read: ``vlm`` or ``ocr`` when any was, else
    ``text_layer``, and ``e_invoice`` when all came from an embedded invoice XML (the least
    reliable reading decides)."""
    sources = {v.source.value for v in extraction.values if not v.withheld}
    if sources == {"e_invoice"}:
        return "e_invoice"
    return next((s for s in ("vlm", "ocr") if s in sources), "text_layer")


# One-sided 95%: the share right is at least the bound in 19 of 20 such measurements.
Z_ONE_SIDED_95 = 1.6449


def lower_bound(right: int, n: int, z: float = Z_ONE_SIDED_95) -> float:
    """Wilson score lower bound of a share measured as ``right`` of ``n``: 42 of 42 right
    says at least 0.939, not 1.0; nothing measured says 0."""
    if n <= 0:
        return 0.0
    p, z2 = right / n, z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z2 / n))


def document_bound(count: DocumentCount) -> float:
    return round(lower_bound(count.right, count.n), 4)


def document_reliability(table: CalibrationTable | None, extraction: Extraction) -> tuple[str, float, int] | None:
    """(kind, lower bound, n): the one-sided 95% lower bound of the measured share of documents
    like this one (type and source) that were right when all their values passed the field
    bar, and how many were measured. A point estimate from a few dozen documents is no
    guarantee: routing accepts on the bound, so an unmeasured kind (0) never auto-accepts and a
    small sample must be perfect. None where the table says nothing about documents (an older
    table) or does not know the source (a VLM before its own eval), as field confidences then
    stay raw too."""
    if table is None or not table.documents:
        return None
    source = document_source(extraction)
    if source not in table.sources():
        return None
    key = CalibrationTable.document_key(extraction.doc_type.value, source)
    count = table.document_count(key)
    return key, document_bound(count), count.n


def fit_documents(observations: Iterable[tuple[str, str, bool]]) -> dict[str, DocumentCount]:
    """``observations``: (doc_type, source, all labelled fields right) for each labelled
    document whose values all passed the field bar under the newly fitted table."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for doc_type, source, right in observations:
        cell = counts[CalibrationTable.document_key(doc_type, source)]
        cell[0] += 1
        cell[1] += int(right)
    return {key: DocumentCount(n=n, right=r) for key, (n, r) in sorted(counts.items())}


def fit_table(observations: Iterable[tuple[str, str, float, bool, str | None]], fitted_on: str) -> CalibrationTable:
    """``observations``: (field_name, source, raw confidence, right, method) for labelled values;
    each counts for its method's entry and for the field's pooled entry."""
    counts: dict[str, list[list[int]]] = defaultdict(lambda: [[0, 0] for _ in BUCKET_EDGES[:-1]])
    for field_name, source, raw, right, method in observations:
        keys = {CalibrationTable.key(field_name, source), CalibrationTable.key(field_name, source, method)}
        for key in keys:
            cell = counts[key][_bucket_index(raw)]
            cell[0] += 1
            cell[1] += int(right)
    entries = {
        key: [Bucket(low=BUCKET_EDGES[i], high=min(1.0, BUCKET_EDGES[i + 1]), n=n, right=r)
              for i, (n, r) in enumerate(cells)]
        for key, cells in sorted(counts.items())
    }
    return CalibrationTable(fitted_on=fitted_on, entries=entries)


def write_table(table: CalibrationTable, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8")
