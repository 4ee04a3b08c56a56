"""Every record type of docingest: stage records, per-type field lists, parquet schemas."""

from docingest.schemas.fields import DOC_FIELDS, LINE_ITEM_FIELDS, DocType, FieldKind, FieldSpec, field_specs
from docingest.schemas.records import (
    BBox,
    Classification,
    DocumentResult,
    ExtractedValue,
    Extraction,
    LineItem,
    PageInfo,
    PageInput,
    PageText,
    RuleResult,
    Severity,
    SourceDocument,
    Stage,
    StageError,
    Status,
    TextSource,
    Word,
)

__all__ = [
    "BBox", "Classification", "DOC_FIELDS", "DocType", "DocumentResult", "ExtractedValue",
    "Extraction", "FieldKind", "FieldSpec", "LINE_ITEM_FIELDS", "LineItem", "PageInfo", "PageInput",
    "PageText", "RuleResult", "Severity", "SourceDocument", "Stage", "StageError", "Status",
    "TextSource", "Word", "field_specs",
]
