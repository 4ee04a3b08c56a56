"""E-invoices read natively: the invoice XML a ZUGFeRD / Factur-X PDF carries (UN/CEFACT CII),
and XRechnung / Peppol XML on its own (CII or OASIS UBL).

A hybrid e-invoice is a PDF with its invoice as an embedded XML file (``factur-x.xml``,
``zugferd-invoice.xml``, ``xrechnung.xml``). The XML gives every field exactly, with the line
items and the document type code (381 credit note, 384 corrected invoice), where reading the
page can only guess. It is what gets booked, so it is checked against the page: the total, the
invoice number and the date must be printed there; one that is not sends the document to review
(``e_invoice_mismatch:<field>``), because a page that says otherwise is what a person must see.

The XML is untrusted: parsed with defusedxml (no DTD, no entities, no external references) and
at most ``MAX_XML_BYTES``. XML that is malformed, hostile or of an unknown syntax is not used:
the page is read as usual and the document goes to review with ``e_invoice_unreadable``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from docingest.stages.normalize import find_amounts, find_dates
from docingest.schemas.fields import DocType
from docingest.schemas.records import ExtractedValue, Extraction, LineItem, PageText, TextSource

ATTACHMENT_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "zugferd_invoice.xml", "xrechnung.xml")
MAX_XML_BYTES = 5 * 1024 * 1024
CREDIT_NOTE_CODES = {"381", "384"}  # credit note, corrected invoice: negative totals are legitimate

_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}
UBL_ROOTS = {"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2": ("Invoice", "InvoiceLine", "InvoicedQuantity",
                                                                      "InvoiceTypeCode"),
             "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2": ("CreditNote", "CreditNoteLine",
                                                                         "CreditedQuantity", "CreditNoteTypeCode")}
# Guideline ids (BT-24) -> profile names.
_PROFILES = [
    ("xrechnung", "XRECHNUNG"), ("extended", "EXTENDED"), ("en16931", "EN16931"), ("comfort", "EN16931"),
    ("basicwl", "BASIC WL"), ("basic-wl", "BASIC WL"), ("basic", "BASIC"), ("minimum", "MINIMUM"),
]


class EInvoiceError(ValueError):
    """The XML cannot be used: malformed, hostile, too large, or not an invoice we know."""


@dataclass
class EInvoice:
    syntax: str  # "CII" or "UBL"
    profile: str
    guideline: str
    type_code: str
    values: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (value, XML path)
    line_items: list[LineItem] = field(default_factory=list)

    @property
    def credit_note(self) -> bool:
        return self.type_code in CREDIT_NOTE_CODES


def parse_e_invoice(data: bytes) -> EInvoice:
    """The invoice in ``data`` (CII or UBL XML). Raises EInvoiceError."""
    import defusedxml.ElementTree as safe_xml
    from defusedxml import DefusedXmlException

    if len(data) > MAX_XML_BYTES:
        raise EInvoiceError(f"e-invoice XML is {len(data):,} bytes, more than {MAX_XML_BYTES:,}")
    try:
        root = safe_xml.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise EInvoiceError(f"e-invoice XML refused: {type(exc).__name__}") from exc
    except Exception as exc:  # ParseError and its kin: malformed XML
        raise EInvoiceError(f"e-invoice XML is malformed: {exc}") from exc
    if root.tag == f"{{{_NS['rsm']}}}CrossIndustryInvoice":
        return _cii(root)
    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    if namespace in UBL_ROOTS and local == UBL_ROOTS[namespace][0]:
        return _ubl(root, *UBL_ROOTS[namespace][1:], credit_note=local == "CreditNote")
    raise EInvoiceError(f"not a CII or UBL invoice (root element {root.tag[:80]})")


def _text(node, path: str) -> str | None:
    found = node.find(path, _NS)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _amount(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or abs(value) >= Decimal(10) ** 12:
        return None
    return f"{value.quantize(Decimal('0.01')) if value.as_tuple().exponent >= -2 else value:f}"


def _date(text: str | None) -> str | None:
    if text and re.fullmatch(r"\d{8}", text):  # format 102: YYYYMMDD
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return None


def _cii(root) -> EInvoice:
    guideline = _text(root, "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID") or ""
    profile = _profile(guideline)
    doc = "rsm:ExchangedDocument"
    trade = "rsm:SupplyChainTradeTransaction"
    agreement = f"{trade}/ram:ApplicableHeaderTradeAgreement"
    settlement = f"{trade}/ram:ApplicableHeaderTradeSettlement"
    sums = f"{settlement}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    found: dict[str, tuple[str | None, str]] = {
        "invoice_number": (_text(root, f"{doc}/ram:ID"), "ExchangedDocument/ID"),
        "invoice_date": (_date(_text(root, f"{doc}/ram:IssueDateTime/udt:DateTimeString")),
                         "ExchangedDocument/IssueDateTime"),
        "vendor_name": (_text(root, f"{agreement}/ram:SellerTradeParty/ram:Name"), "SellerTradeParty/Name"),
        "vendor_address": (_address(root.find(f"{agreement}/ram:SellerTradeParty/ram:PostalTradeAddress", _NS)),
                           "SellerTradeParty/PostalTradeAddress"),
        "customer_name": (_text(root, f"{agreement}/ram:BuyerTradeParty/ram:Name"), "BuyerTradeParty/Name"),
        "currency": (_text(root, f"{settlement}/ram:InvoiceCurrencyCode"), "InvoiceCurrencyCode"),
        "due_date": (_date(_text(root, f"{settlement}/ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString")),
                     "SpecifiedTradePaymentTerms/DueDateDateTime"),
        "subtotal": (_amount(_text(root, f"{sums}/ram:TaxBasisTotalAmount") or _text(root, f"{sums}/ram:LineTotalAmount")),
                     "MonetarySummation/TaxBasisTotalAmount"),
        "tax": (_amount(_text(root, f"{sums}/ram:TaxTotalAmount")), "MonetarySummation/TaxTotalAmount"),
        "total": (_amount(_text(root, f"{sums}/ram:GrandTotalAmount")), "MonetarySummation/GrandTotalAmount"),
    }
    invoice = EInvoice(syntax="CII", profile=profile, guideline=guideline,
                       type_code=_text(root, f"{doc}/ram:TypeCode") or "380",
                       values={k: (v, path) for k, (v, path) in found.items() if v})
    for n, item in enumerate(root.findall(f"{trade}/ram:IncludedSupplyChainTradeLineItem", _NS), 1):
        invoice.line_items.append(LineItem(
            line_no=n, description=_text(item, "ram:SpecifiedTradeProduct/ram:Name"),
            quantity=_quantity(_text(item, "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity")),
            unit_price=_amount(_text(item, "ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice/ram:ChargeAmount")),
            amount=_amount(_text(item, "ram:SpecifiedLineTradeSettlement/"
                                       "ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")),
            confidence=1.0))
    if not {"invoice_number", "total"} <= set(invoice.values):
        raise EInvoiceError("the e-invoice XML has no invoice number or no grand total")
    return invoice


def _profile(guideline: str) -> str:
    profile = next((name for key, name in _PROFILES if key in guideline.lower()), None)
    if profile is None:
        raise EInvoiceError(f"unknown e-invoice profile {guideline[:120]!r}")
    return profile


def _ubl(root, line_tag: str, quantity_tag: str, type_tag: str, credit_note: bool) -> EInvoice:
    """OASIS UBL 2.1 (XRechnung, Peppol BIS): the same fields from their UBL elements."""
    guideline = _text(root, "cbc:CustomizationID") or ""
    supplier = "cac:AccountingSupplierParty/cac:Party"
    customer = "cac:AccountingCustomerParty/cac:Party"
    totals = "cac:LegalMonetaryTotal"

    def name(party: str) -> str | None:
        return _text(root, f"{party}/cac:PartyLegalEntity/cbc:RegistrationName") or _text(root, f"{party}/cac:PartyName/cbc:Name")

    def iso(text: str | None) -> str | None:
        return text if text and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None

    found: dict[str, tuple[str | None, str]] = {
        "invoice_number": (_text(root, "cbc:ID"), "ID"),
        "invoice_date": (iso(_text(root, "cbc:IssueDate")), "IssueDate"),
        "due_date": (iso(_text(root, "cbc:DueDate") or _text(root, "cac:PaymentMeans/cbc:PaymentDueDate")), "DueDate"),
        "vendor_name": (name(supplier), "AccountingSupplierParty/Party"),
        "vendor_address": (_ubl_address(root.find(f"{supplier}/cac:PostalAddress", _NS)),
                           "AccountingSupplierParty/Party/PostalAddress"),
        "customer_name": (name(customer), "AccountingCustomerParty/Party"),
        "currency": (_text(root, "cbc:DocumentCurrencyCode"), "DocumentCurrencyCode"),
        "subtotal": (_amount(_text(root, f"{totals}/cbc:TaxExclusiveAmount")), "LegalMonetaryTotal/TaxExclusiveAmount"),
        "tax": (_amount(_text(root, "cac:TaxTotal/cbc:TaxAmount")), "TaxTotal/TaxAmount"),
        "total": (_amount(_text(root, f"{totals}/cbc:TaxInclusiveAmount") or _text(root, f"{totals}/cbc:PayableAmount")),
                  "LegalMonetaryTotal/TaxInclusiveAmount"),
    }
    invoice = EInvoice(syntax="UBL", profile=_profile(guideline), guideline=guideline,
                       type_code=_text(root, f"cbc:{type_tag}") or ("381" if credit_note else "380"),
                       values={k: (v, path) for k, (v, path) in found.items() if v})
    if credit_note:
        invoice.type_code = invoice.type_code if invoice.type_code in CREDIT_NOTE_CODES else "381"
    for n, item in enumerate(root.findall(f"cac:{line_tag}", _NS), 1):
        invoice.line_items.append(LineItem(
            line_no=n, description=_text(item, "cac:Item/cbc:Name"),
            quantity=_quantity(_text(item, f"cbc:{quantity_tag}")),
            unit_price=_amount(_text(item, "cac:Price/cbc:PriceAmount")),
            amount=_amount(_text(item, "cbc:LineExtensionAmount")), confidence=1.0))
    if not {"invoice_number", "total"} <= set(invoice.values):
        raise EInvoiceError("the e-invoice XML has no invoice number or no total")
    return invoice


def _ubl_address(node) -> str | None:
    if node is None:
        return None
    city = " ".join(p for p in (_text(node, "cbc:PostalZone"), _text(node, "cbc:CityName")) if p)
    parts = [_text(node, "cbc:StreetName"), _text(node, "cbc:AdditionalStreetName"), city,
             _text(node, "cac:Country/cbc:IdentificationCode")]
    return ", ".join(p for p in parts if p) or None


def _quantity(text: str | None) -> str | None:
    try:
        return f"{Decimal(text).normalize():f}" if text else None
    except InvalidOperation:
        return None


def _address(node) -> str | None:
    if node is None:
        return None
    parts = [_text(node, f"ram:{tag}") for tag in ("LineOne", "LineTwo")]
    city = " ".join(p for p in (_text(node, "ram:PostcodeCode"), _text(node, "ram:CityName")) if p)
    parts += [city, _text(node, "ram:CountryID")]
    joined = ", ".join(p for p in parts if p)
    return joined or None


# -- checked against the page ---------------------------------------------------------------------
def _printed_amounts(text: str) -> set[Decimal]:
    return {abs(v) for _, _, v in find_amounts(text)}


def page_mismatches(invoice: EInvoice, pages: list[PageText]) -> list[str]:
    """The booked fields (total, invoice number, date) the page does not print."""
    text = "\n".join(p.text() for p in pages)
    missing = []
    total = invoice.values.get("total")
    if total and abs(Decimal(total[0])) not in _printed_amounts(text):
        missing.append("total")
    number = invoice.values.get("invoice_number")
    if number and re.sub(r"\s+", "", number[0]).casefold() not in re.sub(r"\s+", "", text).casefold():
        missing.append("invoice_number")
    issued = invoice.values.get("invoice_date")
    if issued and issued[0] not in {d.isoformat() for fmt in (True, False) for _, _, d in find_dates(text, fmt)}:
        missing.append("invoice_date")
    return missing


def as_extraction(invoice: EInvoice, page: int | None = 1) -> Extraction:
    """The XML as the document's extraction: every value exact, ``source = e_invoice`` and the
    XML path as its method."""
    values = [ExtractedValue(field_name=name, value_raw=value, value=value, confidence=1.0, page=page,
                             grounded=True, source=TextSource.E_INVOICE, method=f"{invoice.syntax.lower()}:{path}")
              for name, (value, path) in invoice.values.items()]
    return Extraction(doc_type=DocType.INVOICE, values=values, line_items=list(invoice.line_items),
                      credit_note=invoice.credit_note)
