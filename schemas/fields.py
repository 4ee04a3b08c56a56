"""One field list per document type: the single source of truth.

Prompts (VLM), parquet columns of the ``fields`` table, the local extractor and the
evaluation all read these lists; adding a field here adds it everywhere.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel


class DocType(str, Enum):
    INVOICE = "invoice"
    RECEIPT = "receipt"
    CONTRACT = "contract"
    FORM = "form"
    OTHER = "other"


class FieldKind(str, Enum):
    TEXT = "text"  # names, addresses: compared after whitespace/case folding
    ID = "id"  # invoice numbers: compared exactly as printed
    DATE = "date"  # normalized to ISO YYYY-MM-DD
    AMOUNT = "amount"  # normalized to a plain decimal string with 2 decimals
    CURRENCY = "currency"  # normalized to an ISO-4217 code
    TEXT_LIST = "text_list"  # contract parties: one fields row per element
    DURATION = "duration"  # contract term, e.g. "2_years"


class FieldSpec(BaseModel, frozen=True):
    name: str
    kind: FieldKind
    description: str
    required: bool = False


_FINANCIAL = [
    FieldSpec(name="vendor_name", kind=FieldKind.TEXT, description="Seller / issuer name", required=True),
    # Tax invoices and till receipts must print the seller's address (EU VAT, GST rules): one
    # that was not found is a document to look at, not an empty column to load.
    FieldSpec(name="vendor_address", kind=FieldKind.TEXT, description="Seller postal address", required=True),
    # A tax invoice must print its number and the customer (EU VAT Directive art. 226); a
    # due date, a service period or a subtotal may be absent.
    FieldSpec(name="invoice_number", kind=FieldKind.ID, description="Invoice or document number",
              required=True),
    FieldSpec(name="invoice_date", kind=FieldKind.DATE, description="Issue date", required=True),
    FieldSpec(name="due_date", kind=FieldKind.DATE, description="Payment due date"),
    FieldSpec(name="currency", kind=FieldKind.CURRENCY, description="ISO-4217 currency code"),
    FieldSpec(name="subtotal", kind=FieldKind.AMOUNT, description="Total before tax"),
    FieldSpec(name="tax", kind=FieldKind.AMOUNT, description="Total tax amount"),
    FieldSpec(name="total", kind=FieldKind.AMOUNT, description="Grand total payable", required=True),
    FieldSpec(name="customer_name", kind=FieldKind.TEXT, description="Buyer / bill-to name", required=True),
    FieldSpec(name="period_start", kind=FieldKind.DATE, description="Service or flight period start"),
    FieldSpec(name="period_end", kind=FieldKind.DATE, description="Service or flight period end"),
]

LINE_ITEM_FIELDS: list[FieldSpec] = [
    FieldSpec(name="description", kind=FieldKind.TEXT, description="Item description"),
    FieldSpec(name="quantity", kind=FieldKind.AMOUNT, description="Quantity"),
    FieldSpec(name="unit_price", kind=FieldKind.AMOUNT, description="Price per unit"),
    FieldSpec(name="amount", kind=FieldKind.AMOUNT, description="Line total"),
]

DOC_FIELDS: dict[DocType, list[FieldSpec]] = {
    DocType.INVOICE: list(_FINANCIAL),
    DocType.RECEIPT: [
        # A receipt needs no invoice number; otherwise it is read like an invoice.
        f.model_copy(update={"required": f.name in {"vendor_name", "vendor_address", "invoice_date", "total"}})
        for f in _FINANCIAL
    ],
    DocType.CONTRACT: [
        FieldSpec(name="parties", kind=FieldKind.TEXT_LIST, description="Contracting parties", required=True),
        FieldSpec(name="effective_date", kind=FieldKind.DATE, description="Effective date", required=True),
        FieldSpec(name="jurisdiction", kind=FieldKind.TEXT, description="Governing-law jurisdiction"),
        FieldSpec(name="term", kind=FieldKind.DURATION, description="Contract term, e.g. 2_years"),
    ],
    # Forms are open-ended: their content is the key_values list (one fields row per pair,
    # field_name "key_values", the key in the `key` column).
    DocType.FORM: [],
    DocType.OTHER: [],
}

# Types whose documents have line items.
LINE_ITEM_TYPES = frozenset({DocType.INVOICE, DocType.RECEIPT})


def field_specs(doc_type: DocType) -> list[FieldSpec]:
    return DOC_FIELDS[doc_type]


def field_spec(doc_type: DocType, name: str) -> FieldSpec | None:
    return next((f for f in DOC_FIELDS[doc_type] if f.name == name), None)


def all_field_names() -> list[str]:
    """Every field name any type can produce, in declaration order (for evaluation)."""
    seen: dict[str, None] = {}
    for specs in DOC_FIELDS.values():
        for spec in specs:
            seen.setdefault(spec.name, None)
    return list(seen)
