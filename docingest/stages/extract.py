"""Extract (embedded): read typed fields from a document's words, no model, no network.

One reader per document type: ``financial_fields`` (invoices and receipts), ``contract_fields``
and ``form_fields``. Each value keeps the text as printed, its normalized form, page, box and a
confidence that reflects how it was found.
"""

from __future__ import annotations

from docingest.stages.contract_fields import contract_fields
from docingest.stages.form_fields import form_fields
from docingest.stages.financial_fields import financial_fields
from docingest.stages.layout import document_lines
from docingest.schemas.fields import DocType
from docingest.schemas.records import Extraction, PageText


def extract_fields(pages: list[PageText], doc_type: DocType) -> Extraction:
    lines = document_lines(pages)
    if doc_type in (DocType.INVOICE, DocType.RECEIPT):
        return financial_fields(lines, doc_type)
    if doc_type == DocType.CONTRACT:
        return contract_fields(lines)
    if doc_type == DocType.FORM:
        return form_fields(lines)
    return Extraction(doc_type=doc_type)
