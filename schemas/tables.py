"""The output contract: the pyarrow schema of every table docingest writes."""

from __future__ import annotations

import pyarrow as pa

# 2: + documents.vlm_*, pages.strategy, fields.agrees_with_local, fields.confidence_raw (additive).
# 3: + documents.credit_note (additive); runs may be quarantined by the batch gate.
# 4: + fields.method (additive).
# 5: + fields.withheld (additive): optional values below the bar, read but not asserted.
# 6: + documents.duplicate_of (additive) and the status value "duplicate".
# 7: + documents.line_items_sum (additive).
# 8: a run is published as one folder, OUT/published/run_date=D/<run_id>/<table>.parquet with its
#    manifest.json (was OUT/<table>/run_date=D/part-<run_id>.parquet; older OUT folders are moved
#    on the next run); + documents.failure_cause, documents.reused, documents.processing_key.
# 9: + documents.reliability_kind, reliability_n, reliability_lower_bound (additive): what an
#    acceptance rested on (routing accepts on the lower bound, not a point estimate);
#    + fields.evidence (additive): whole_token / partial_token, repeated, reconciles, line_items_sum;
#    + documents.e_invoice_profile, e_invoice_guideline, e_invoice_type_code (additive): read from an embedded e-invoice XML.
CONTRACT_VERSION = "9"

_TS = pa.timestamp("us", tz="UTC")
# Line-item numbers are exact decimals in the warehouse, never floats.
_DEC = pa.decimal128(20, 6)
_BBOX = pa.list_(pa.float32(), 4)

TABLES: dict[str, pa.Schema] = {
    "documents": pa.schema([
        ("doc_id", pa.string()),  # null only for a file that could not be read at all
        ("source_path", pa.string()),
        ("source_paths", pa.list_(pa.string())),
        ("media_type", pa.string()),
        ("size_bytes", pa.int64()),
        ("doc_type", pa.string()),
        ("doc_type_confidence", pa.float64()),
        ("page_count", pa.int32()),
        ("status", pa.string()),  # accepted | duplicate | needs_review | failed
        ("duplicate_of", pa.string()),  # status duplicate: the doc_id of the accepted original
        ("review_reasons", pa.list_(pa.string())),
        ("error_count", pa.int32()),
        ("duration_ms", pa.float64()),
        # Failed documents: "input" (the upload's own defect: corrupt, encrypted, empty,
        # unsupported, too large, a bomb) or "system" (the pipeline's: counted by the batch gate).
        ("failure_cause", pa.string()),
        # The result was computed by an earlier run under the same processing key and reused.
        ("reused", pa.bool_()),
        ("processing_key", pa.string()),
        ("credit_note", pa.bool_()),  # negative amounts are legitimate on a credit note
        # Documents of this kind (doc_type|source) measured with all values passing, and the
        # one-sided 95% lower bound of the share right: accepted only when the bound reaches
        # routing.min_document_confidence. Null when the calibration table says nothing.
        ("reliability_kind", pa.string()),
        ("reliability_n", pa.int32()),
        ("reliability_lower_bound", pa.float64()),
        # Read from the invoice XML embedded in the PDF (ZUGFeRD / Factur-X): its profile
        # (MINIMUM ... EXTENDED, XRECHNUNG) and document type code (381 credit note, 384 corrected).
        ("e_invoice_profile", pa.string()),
        ("e_invoice_guideline", pa.string()),  # the XML's guideline / customization id: its version
        ("e_invoice_type_code", pa.string()),
        # The items' own sum as printed ("Positionssumme"), which the line items add up to; before
        # document-level charges and discounts, so it may differ from the subtotal.
        ("line_items_sum", _DEC),
        ("vlm_requests", pa.int32()),
        ("vlm_cache_hits", pa.int32()),
        ("vlm_prompt_tokens", pa.int64()),
        ("vlm_completion_tokens", pa.int64()),
        ("vlm_estimated_prompt_tokens", pa.int64()),
        ("vlm_cost_usd", pa.float64()),
        ("run_id", pa.string()),
        ("processed_at", _TS),
    ]),
    "pages": pa.schema([
        ("doc_id", pa.string()),
        ("page", pa.int32()),
        ("width_px", pa.int32()),
        ("height_px", pa.int32()),
        ("text_source", pa.string()),
        ("strategy", pa.string()),  # who extracted the page's fields: text_layer | ocr | vlm
        ("word_count", pa.int32()),
        ("mean_confidence", pa.float64()),
        ("strategy_reason", pa.string()),
        ("render_ms", pa.float64()),
        ("read_ms", pa.float64()),
        ("run_id", pa.string()),
    ]),
    "fields": pa.schema([
        ("doc_id", pa.string()),
        ("doc_type", pa.string()),
        ("field_name", pa.string()),
        ("key", pa.string()),  # forms: the key of a key/value pair
        ("value_raw", pa.string()),
        ("value", pa.string()),
        ("confidence", pa.float64()),  # calibrated: of values at 0.9, about 90% are right
        ("confidence_raw", pa.float64()),
        ("page", pa.int32()),
        ("bbox", _BBOX),  # x0, y0, x1, y1 normalized to the page, origin top-left
        ("grounded", pa.bool_()),
        ("source", pa.string()),
        ("agrees_with_local", pa.bool_()),
        ("method", pa.string()),  # how the value was found; calibration keys on it
        ("withheld", pa.bool_()),  # below the bar and optional: read, but not asserted
        ("evidence", pa.list_(pa.string())),  # what else speaks for the value (stages/evidence.py)
        ("run_id", pa.string()),
    ]),
    "line_items": pa.schema([
        ("doc_id", pa.string()),
        ("line_no", pa.int32()),
        ("description", pa.string()),
        ("quantity", _DEC),
        ("unit_price", _DEC),
        ("amount", _DEC),
        ("page", pa.int32()),
        ("confidence", pa.float64()),
        ("run_id", pa.string()),
    ]),
    "rule_results": pa.schema([
        ("doc_id", pa.string()),
        ("rule_id", pa.string()),
        ("severity", pa.string()),
        ("passed", pa.bool_()),
        ("message", pa.string()),
        ("run_id", pa.string()),
    ]),
    "review_queue": pa.schema([
        ("doc_id", pa.string()),
        ("source_path", pa.string()),
        ("doc_type", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("run_id", pa.string()),
        ("queued_at", _TS),
    ]),
    "failures": pa.schema([
        ("doc_id", pa.string()),
        ("source_path", pa.string()),
        ("page", pa.int32()),
        ("stage", pa.string()),
        ("error_kind", pa.string()),
        ("message", pa.string()),
        ("run_id", pa.string()),
    ]),
}


# Curated tables: `docingest apply-reviews` rewrites them whole (OUT/curated/<table>.parquet)
# from the published tables and the review decisions. The published tables are never changed:
# the original extraction stays there, and every curated row says where its value came from.
CURATED_TABLES: dict[str, pa.Schema] = {
    "documents": pa.schema([
        ("doc_id", pa.string()),
        ("source_path", pa.string()),
        ("doc_type", pa.string()),
        ("doc_type_original", pa.string()),
        ("status", pa.string()),  # accepted | duplicate | needs_review | rejected | failed
        ("status_original", pa.string()),  # what the pipeline routed it to
        ("reasons", pa.list_(pa.string())),  # why it is not accepted (still) after review
        ("review_action", pa.string()),  # approved | corrected | rejected | null (not reviewed)
        ("reviewer", pa.string()),
        ("reviewed_at", _TS),
        ("decision_id", pa.string()),
        ("note", pa.string()),
        ("extraction_run_id", pa.string()),
        ("applied_at", _TS),
    ]),
    "fields": pa.schema([
        ("doc_id", pa.string()),
        ("doc_type", pa.string()),
        ("field_name", pa.string()),
        ("key", pa.string()),
        ("value", pa.string()),  # the curated value: the reviewer's where reviewed
        ("value_raw", pa.string()),
        ("value_original", pa.string()),  # the extraction's value (null: added by the reviewer)
        ("value_raw_original", pa.string()),
        ("confidence_original", pa.float64()),
        ("page", pa.int32()),
        ("bbox", _BBOX),
        ("change", pa.string()),  # unchanged | corrected | added | removed | withheld
        ("source", pa.string()),  # extraction | review
        ("decision_id", pa.string()),
        ("extraction_run_id", pa.string()),
        ("applied_at", _TS),
    ]),
    "rule_results": pa.schema([
        ("doc_id", pa.string()),
        ("rule_id", pa.string()),
        ("severity", pa.string()),
        ("passed", pa.bool_()),
        ("message", pa.string()),
        ("evaluated_on", pa.string()),  # extraction | review (re-run on the reviewed values)
        ("applied_at", _TS),
    ]),
}
