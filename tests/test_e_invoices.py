"""E-invoices (issue 23): the invoice XML embedded in a ZUGFeRD / Factur-X PDF is read natively,
checked against the printed page, and never trusted as XML (no DTD, no entities, size limits)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from docingest.config import Settings
from docingest.pipeline import process_document
from docingest.samples import INVOICES, _invoice_pdf, attach_xml, invoice_cii, invoice_ubl
from docingest.stages.discover import discover
from docingest.stages.e_invoice import MAX_XML_BYTES, EInvoiceError, parse_e_invoice
from docingest.schemas.records import Status

SPEC = INVOICES[0]


def _hybrid(tmp_path: Path, xml: bytes, name: str = "factur-x.xml", **page) -> Path:
    path = tmp_path / "hybrid.pdf"
    _invoice_pdf(SPEC, path, **page)
    attach_xml(path, xml, name)
    return path


def _process(path: Path, engines):
    docs, _ = discover(path)
    return process_document(docs[0], Settings(show_progress=False), engines)


def test_every_field_and_line_item_is_the_xmls(tmp_path, engines):
    result = _process(_hybrid(tmp_path, invoice_cii(SPEC)), engines)
    assert result.e_invoice.profile == "EN16931" and result.e_invoice.type_code == "380"
    values = {v.field_name: v for v in result.extraction.values}
    expected = {"invoice_number": SPEC.invoice_number, "invoice_date": SPEC.invoice_date, "due_date": SPEC.due_date,
                "vendor_name": SPEC.vendor_name, "customer_name": SPEC.customer_name, "currency": SPEC.currency,
                "subtotal": f"{SPEC.subtotal:.2f}", "tax": f"{SPEC.tax:.2f}", "total": f"{SPEC.total:.2f}"}
    assert {k: values[k].value for k in expected} == expected
    assert all(v.source.value == "e_invoice" and v.method.startswith("cii:") for v in values.values())
    assert [(li.description, li.quantity, li.unit_price, li.amount) for li in result.extraction.line_items] == [
        (i.description, str(i.quantity), f"{i.unit_price:.2f}", f"{i.amount:.2f}") for i in SPEC.items]
    # The XML agrees with its page and passes the rules: accepted on that evidence.
    assert result.status == Status.ACCEPTED, result.review_reasons
    from docingest.writer import rows_for

    row = rows_for([result], "run")["documents"][0]
    assert (row["e_invoice_profile"], row["e_invoice_guideline"], row["e_invoice_type_code"]) == (
        "EN16931", "urn:cen.eu:en16931:2017", "380")


def test_an_xml_total_the_page_does_not_print_goes_to_review(tmp_path, engines):
    result = _process(_hybrid(tmp_path, invoice_cii(SPEC, total=SPEC.total + Decimal("100"))), engines)
    assert result.status == Status.NEEDS_REVIEW
    assert "e_invoice_mismatch:total" in result.review_reasons
    assert result.extraction.get("total").value == f"{SPEC.total + 100:.2f}"  # what would be booked is shown


def test_a_credit_note_code_makes_negative_totals_legitimate(tmp_path, engines):
    spec_total = f"-{SPEC.total:.2f}"
    xml = invoice_cii(SPEC, type_code="381", total=-SPEC.total)
    result = _process(_hybrid(tmp_path, xml, total_text=spec_total), engines)
    assert result.extraction.credit_note and result.e_invoice.type_code == "381"
    assert not [r for r in result.rule_results if r.rule_id == "amounts.non_negative" and not r.passed]


XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">&x;</rsm:CrossIndustryInvoice>"""
LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">""" + b"".join(
    b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"") for _ in range(10)))
    for i in range(1, 10)) + b"""]><lolz>&lol9;</lolz>"""


@pytest.mark.parametrize("xml,why", [
    (b"<rsm:CrossIndustryInvoice><unclosed>", "malformed"),
    (XXE, "refused"),
    (LAUGHS, "refused"),
    (invoice_cii(SPEC, guideline="urn:example:made-up-profile"), "unknown e-invoice profile"),
    (b"<Invoice xmlns='urn:example'/>", "not a CII or UBL invoice"),
    (b"<" * (MAX_XML_BYTES + 1), "more than"),
])
def test_unusable_xml_is_a_warning_and_the_page_is_read(tmp_path, engines, xml, why):
    with pytest.raises(EInvoiceError, match=why):
        parse_e_invoice(xml)
    started = time.monotonic()
    result = _process(_hybrid(tmp_path, xml), engines)
    assert time.monotonic() - started < 30
    assert result.e_invoice is None
    assert [e.kind for e in result.errors] == ["e_invoice_unreadable"]
    assert result.status == Status.NEEDS_REVIEW
    assert result.extraction.get("invoice_number").value == SPEC.invoice_number  # read from the page
    assert not any("root:" in (v.value_raw or "") for v in result.extraction.values)


def test_an_xml_e_invoice_on_its_own_is_read_and_a_bad_one_fails_alone(tmp_path, engines):
    from docingest.stages.discover import sniff_media_type

    (tmp_path / "in").mkdir()
    good = tmp_path / "in" / "xrechnung.xml"
    good.write_bytes(invoice_cii(SPEC, guideline="urn:cen.eu:en16931:2017#compliant#urn:xoev-de:kosit:standard:xrechnung_3.0"))
    assert sniff_media_type(good.read_bytes()[:2048]) == "application/xml"
    assert sniff_media_type(b"<?xml version='1.0'?><html/>") is None  # other XML is not a document
    result = _process(good, engines)
    assert result.e_invoice.profile == "XRECHNUNG" and result.page_count == 0
    assert result.extraction.get("total").value == f"{SPEC.total:.2f}"
    assert len(result.extraction.line_items) == len(SPEC.items)
    assert result.status == Status.ACCEPTED, result.review_reasons
    bad = tmp_path / "in" / "laughs.xml"
    bad.write_bytes(LAUGHS.replace(b"<lolz>", b"<lolz><!-- CrossIndustryInvoice -->"))
    result = _process(bad, engines)
    assert result.status == Status.FAILED and [e.kind for e in result.errors] == ["e_invoice_unreadable"]


@pytest.mark.parametrize("credit_note", [False, True], ids=["invoice", "credit-note"])
def test_a_ubl_xrechnung_is_read_field_for_field(tmp_path, engines, credit_note):
    path = tmp_path / "xrechnung-ubl.xml"
    path.write_bytes(invoice_ubl(SPEC, credit_note=credit_note))
    result = _process(path, engines)
    assert result.e_invoice.syntax == "UBL" and result.e_invoice.profile == "XRECHNUNG"
    assert result.e_invoice.type_code == ("381" if credit_note else "380")
    assert result.extraction.credit_note is credit_note
    values = {v.field_name: v.value for v in result.extraction.values}
    assert values == {"invoice_number": SPEC.invoice_number, "invoice_date": SPEC.invoice_date,
                      "due_date": SPEC.due_date, "vendor_name": SPEC.vendor_name,
                      "vendor_address": f"{SPEC.vendor_address[0]}, {SPEC.vendor_address[-1]}",
                      "customer_name": SPEC.customer_name, "currency": SPEC.currency,
                      "subtotal": f"{SPEC.subtotal:.2f}", "tax": f"{SPEC.tax:.2f}", "total": f"{SPEC.total:.2f}"}
    assert [(li.description, li.quantity, li.unit_price, li.amount) for li in result.extraction.line_items] == [
        (i.description, str(i.quantity), f"{i.unit_price:.2f}", f"{i.amount:.2f}") for i in SPEC.items]
    assert all(v.method.startswith("ubl:") for v in result.extraction.values)
