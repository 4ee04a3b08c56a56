"""Normalization, business rules and routing."""

from __future__ import annotations

from datetime import date

import pytest

from docingest.config import RoutingThresholds
from docingest.stages.normalize import format_amount, normalize_currency, parse_amount, parse_date
from docingest.stages.route import route_document
from docingest.stages.rules import apply_rules
from docingest.schemas import Classification, DocType, ExtractedValue, Extraction, LineItem, Stage, StageError, Status

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize("text,expected", [
    ("1.234,56", "1234.56"), ("1,234.56", "1234.56"), ("RM 12.00", "12.00"), ("(5.00)", "-5.00"),
    ("$1,880.00", "1880.00"), ("262.9", "262.90"), ("12,5", "12.50"), ("EUR 481,24", "481.24"),
])
def test_parse_amount(text, expected):
    assert format_amount(parse_amount(text)) == expected


@pytest.mark.parametrize("text,dayfirst,expected", [
    ("18.04.2018", False, "2018-04-18"), ("04/18/2018", True, "2018-04-18"),
    ("03/05/2020", True, "2020-05-03"), ("03/05/2020", False, "2020-03-05"),
    ("Dec 25, 2018", True, "2018-12-25"), ("18. April 2018", True, "2018-04-18"),
    ("2018-04-18", False, "2018-04-18"), ("25 December 18", True, "2018-12-25"),
    # OCR glues the time onto the date.
    ("12Mar201818:19", True, "2018-03-12"), ("Date 06/01/1812.17:26PM", True, "2018-01-06"),
    ("25/12/20188:13:39PM", True, "2018-12-25"),
])
def test_parse_date(text, dayfirst, expected):
    assert parse_date(text, dayfirst).isoformat() == expected


def test_a_policy_number_with_dots_is_no_amount():
    from docingest.stages.normalize import find_amounts

    assert find_amounts("VSNR: 01.234.567.8") == []
    assert [str(v) for _, _, v in find_amounts("Rechnungsbetrag 1.163,40 €")] == ["1163.40"]


def test_a_space_groups_thousands_only_before_a_decimal_comma():
    from docingest.stages.normalize import find_amounts

    assert [str(v) for _, _, v in find_amounts("Total Qty.: 18 144.68")] == ["18", "144.68"]
    assert [str(v) for _, _, v in find_amounts("Montant TTC 1 234,56 €")] == ["1234.56"]


def test_two_amounts_printed_without_a_space_are_both_read():
    from docingest.stages.normalize import find_amounts

    def read(text):
        return [str(v) for _, _, v in find_amounts(text)]

    # No number has two decimal commas: the only reading is two amounts of two decimals each.
    assert read("Steuerbetrag 163,16183,14") == ["163.16", "183.14"]
    assert read("Tax 1,020.0012.50 total") == ["1020.00", "12.50"]
    # A single number, an id, and a thousands-grouped amount stay as they were.
    assert read("Summe 1.163,40") == ["1163.40"]
    assert read("Ref A12,3445,67") == []
    assert read("Betrag 12,345") == ["12345"]


def test_a_tax_printed_in_two_currencies_still_adds_the_subtotal_up_to_the_gross_total():
    from docingest.stages.extract import extract_fields

    # The tax in the invoice's and the booking currency, glued; the gross label kerned apart;
    # a prepayment leaves less to pay than the invoice's total.
    ex = extract_fields([_receipt_page([
        "Werkzeug Nord GmbH", "Rechnung Nr. 90210 vom 02.04.2024", "Rechnungssumme ohne USt. 400,00",
        "Steuerbetrag 76,0068,40", "Br uttosumme 476,00", "Erhaltene Anzahlungen -100,00",
        "Zahlbetrag 376,00"])], DocType.INVOICE)
    assert (ex.get("subtotal").value, ex.get("tax").value, ex.get("total").value) == ("400.00", "76.00", "476.00")


def test_a_date_that_opens_a_period_is_not_the_issue_date():
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page([
        "Versicherung AG", "Beitragsrechnung 24. Januar 2014",
        "Beitrag für den Zeitraum vom 06.12.2013 bis zum 06.12.2014",
        "Gesamtbeitrag 50,00 €", "Versicherungsteuer 19 % 9,50 €", "Rechnungsbeitrag 59,50 €"])], DocType.INVOICE)
    assert ex.get("invoice_date").value == "2014-01-24"
    assert (ex.get("subtotal").value, ex.get("tax").value, ex.get("total").value) == ("50.00", "9.50", "59.50")


def test_currency():
    assert normalize_currency("eur") == "EUR"
    assert normalize_currency("RM") == "MYR"
    assert normalize_currency("XYZ") is None


def _v(name, value, conf=0.95, grounded=True):
    return ExtractedValue(field_name=name, value_raw=value, value=value, confidence=conf, grounded=grounded)


def _invoice(**overrides):
    values = {"vendor_name": "Acme", "vendor_address": "1 Main St, Springfield", "invoice_date": "2025-01-02", "total": "110.00",
              "subtotal": "100.00", "tax": "10.00", "currency": "EUR", "invoice_number": "INV-7",
              "customer_name": "Globex"}
    values.update(overrides)
    return Extraction(doc_type=DocType.INVOICE,
                      values=[_v(k, v) for k, v in values.items() if v is not None])


def _ids(results, passed):
    return sorted(r.rule_id for r in results if r.passed is passed)


def test_rules_pass_on_a_consistent_invoice():
    results = apply_rules(_invoice(), RoutingThresholds(), TODAY)
    assert _ids(results, False) == []
    assert "amounts.total_eq_subtotal_plus_tax" in _ids(results, True)


def test_rules_catch_each_problem():
    th = RoutingThresholds()
    assert _ids(apply_rules(_invoice(total="120.00"), th, TODAY), False) == ["amounts.total_eq_subtotal_plus_tax"]
    assert _ids(apply_rules(_invoice(invoice_date="2031-01-01"), th, TODAY), False) == ["dates.plausible"]
    assert _ids(apply_rules(_invoice(invoice_date="1985-01-01"), th, TODAY), False) == ["dates.plausible"]
    assert _ids(apply_rules(_invoice(currency="EUX"), th, TODAY), False) == ["currency.iso4217"]
    assert _ids(apply_rules(_invoice(vendor_name=None), th, TODAY), False) == ["fields.required"]
    ex = _invoice()
    ex.line_items = [LineItem(line_no=1, amount="60.00"), LineItem(line_no=2, amount="30.00")]
    assert _ids(apply_rules(ex, th, TODAY), False) == ["amounts.total_eq_line_sum"]
    ex.line_items.append(LineItem(line_no=3, amount="10.00"))
    assert _ids(apply_rules(ex, th, TODAY), False) == []


def test_route_accepts_only_clean_documents_and_lists_every_reason():
    th = RoutingThresholds()
    cls = Classification(doc_type=DocType.INVOICE, confidence=0.95)
    ex = _invoice()
    assert route_document(cls, ex, apply_rules(ex, th, TODAY), [], th) == (Status.ACCEPTED, [])

    ex = _invoice(total="999.00")
    ex.values.append(_v("invoice_number", "X-1", conf=0.2, grounded=False))
    low = Classification(doc_type=DocType.INVOICE, confidence=0.4)
    err = StageError(stage=Stage.OCR, kind="ocr_failed", message="boom", page=2)
    status, reasons = route_document(low, ex, apply_rules(ex, th, TODAY), [err], th)
    assert status == Status.NEEDS_REVIEW
    assert reasons == [
        "stage_error:ocr:ocr_failed:p2", "low_classification_confidence:0.40",
        "low_field_confidence:invoice_number:0.20", "ungrounded:invoice_number",
        "rule_failed:amounts.total_eq_subtotal_plus_tax",
    ]
    assert route_document(None, None, [], [err], th)[0] == Status.FAILED


def test_new_row_rules_due_period_tax_rate_and_credit_notes():
    from datetime import date

    from docingest.config import RoutingThresholds
    from docingest.stages.rules import apply_rules
    from docingest.schemas.fields import DocType
    from docingest.schemas.records import ExtractedValue, Extraction

    def ex(credit_note=False, **values):
        return Extraction(doc_type=DocType.INVOICE, credit_note=credit_note, values=[
            ExtractedValue(field_name=k, value_raw=v, value=v, confidence=1.0) for k, v in values.items()])

    def failed(extraction):
        return {r.rule_id for r in apply_rules(extraction, RoutingThresholds(), date(2026, 11, 23)) if not r.passed}

    assert "dates.due_not_before_issue" in failed(ex(invoice_date="2026-10-01", due_date="2026-09-01"))
    assert "dates.due_not_before_issue" not in failed(ex(invoice_date="2026-10-01", due_date="2026-10-31"))
    assert "dates.period_in_order" in failed(ex(period_start="2026-10-01", period_end="2026-09-30"))
    # 19% VAT is fine in euros, 40% is not; 19% is not a plausible US sales tax.
    assert "amounts.tax_rate_plausible" not in failed(ex(currency="EUR", subtotal="100.00", tax="19.00", total="119.00"))
    assert "amounts.tax_rate_plausible" in failed(ex(currency="EUR", subtotal="100.00", tax="40.00", total="140.00"))
    assert "amounts.tax_rate_plausible" in failed(ex(currency="USD", subtotal="100.00", tax="19.00", total="119.00"))
    assert "amounts.non_negative" in failed(ex(total="-119.00"))
    assert "amounts.non_negative" not in failed(ex(credit_note=True, total="-119.00"))


def _receipt_page(lines: list[str]):
    from docingest.schemas.records import PageText, TextSource, Word

    words = []
    for i, line in enumerate(lines):
        x = 0.05
        for token in line.split():
            words.append(Word(text=token, bbox=(x, 0.03 * i, x + 0.02 * len(token), 0.03 * i + 0.02),
                              confidence=0.95, line=i))
            x += 0.02 * len(token) + 0.01
    return PageText(page=1, source=TextSource.OCR, words=words)


@pytest.mark.parametrize("lines, expected", [
    # OCR dropped the decimal point of the total; cash − change says 7.00.
    (["FY EAGLE ENTERPRISE", "SUB-TOTAL 6.60", "TOTAL 700", "CASH 10.00", "CHANGE 3.00"], "7.00"),
    # The labelled total is not found ("Total Includes GST"), cash − change points at the amount.
    (["FUYI MINI MARKET", "Total Includes GST 6% 9.00", "Cash 50.00", "Change 41.00"], "9.00"),
    # Rounded: the till prints the unrounded total first, then "Total RM" after rounding.
    (["POPULAR BOOK CO", "Total RM Incl. of GST 49.39", "Rounding Adj 0.01", "Total RM 49.40",
      "Cash -50.00", "CHANGE 0.60"], "49.40"),
    # Agreeing evidence leaves a right total alone.
    (["SHOP", "TOTAL 12.50", "CASH 20.00", "CHANGE 7.50"], "12.50"),
])
def test_receipt_totals_are_reconciled_with_what_was_paid(lines, expected):
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    total = extract_fields([_receipt_page(lines)], DocType.RECEIPT).get("total")
    assert total is not None and total.value == expected


@pytest.mark.parametrize("text, expected", [
    ("AEON C0.(M) BHD", "AEON CO.(M) BHD"), ("WAHIN HARDWARE SIN BHD", "WAHIN HARDWARE SDN BHD"),
    ("Timeless Kitchenette San Bhd", "Timeless Kitchenette Sdn Bhd"), ("99 SPEED MART S/D", "99 SPEED MART S/B"),
    ("MR D.I.Y.(H)SDN BHD", "MR D.I.Y.(M)SDN BHD"), ("Dimiliki:banh mi cafe sdn bhd", "banh mi cafe sdn bhd"),
    ("7-ELEVEN 2000 SDN BHD", "7-ELEVEN 2000 SDN BHD"), ("ACME GmbH", "ACME GmbH"),
    ("Taste Of The WorId Sdn Bhd", "Taste Of The World Sdn Bhd"), ("KEDAI IKAN", "KEDAI IKAN"),
])
def test_company_names_undo_typical_ocr_confusions(text, expected):
    from docingest.stages.normalize import clean_company_name

    assert clean_company_name(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("(JM0352019-K) NO.53 JALAN PUTRA 1", "NO.53 JALAN PUTRA 1"),
    ("22Mar201818:24 (867388-U) 12,Jalan Tampoi", "12,Jalan Tampoi"),
    ("BRNo.:(124525-H) NO19-G", "NO19-G"), ("(Co.No.113825-W)", None),
    ("L0T 1851-A, 8110O JOHOR", "LOT 1851-A, 81100 JOHOR"), ("Leve1 6, Peta1ing Jaya", "Level 6, Petaling Jaya"),
    ("12345 Musterstadt", "12345 Musterstadt"), ("D-10115 Berlin", "D-10115 Berlin"),
    # A shop name before the street and ids after it are not the address; commas keep a prefix.
    ("IKEA Cheras No 2A Jalan Cochrane 55100 KUALA LUMPUR GSTNo.:0001", "No 2A Jalan Cochrane 55100 KUALA LUMPUR"),
    ("S117, Second Floor, Aeon City, 1, Jalan Desa", "S117, Second Floor, Aeon City, 1, Jalan Desa"),
    ("Musterstr. 12, 12345 Musterstadt Telefon: +49 1234", "Musterstr. 12, 12345 Musterstadt"),
    # A timestamp read with its spaces; 1 and 0 for L and O in the leading "LOT".
    ("03 Mar 2018 18:22 (867388-U) 12, Jalan Tampoi", "12, Jalan Tampoi"),
    ("10T 1851-A & 1851-B, JALAN KPB 6", "LOT 1851-A & 1851-B, JALAN KPB 6"),
    ("1.OT 1851-A, JALAN KPB 6", "LOT 1851-A, JALAN KPB 6"),
    # A street word or state one confusion away is that word; an l between digits is a 1.
    ("NO. 53, JALAN 8ESAR, 45600", "NO. 53, JALAN BESAR, 45600"), ("40170 EANDAR SETIA", "40170 BANDAR SETIA"),
    ("41150 KLANG, SCLANGOR", "41150 KLANG, SELANGOR"), ("12, Jaian Tampoi 7/4", "12, Jalan Tampoi 7/4"),
    ("No 8, Jalan 7/1l8B", "No 8, Jalan 7/118B"),
    # Only a typical confusion is undone: "BALAN" is one letter from JALAN, but B is not what
    # OCR reads for J; "Beser" is two from BESAR; German words keep their letters.
    ("JALAN BALAN 3", "JALAN BALAN 3"), ("Jalan Beser", "Jalan Beser"),
    ("Bahnhofstr. 5, 10115 Berlin", "Bahnhofstr. 5, 10115 Berlin"),
])
def test_addresses_lose_registration_numbers_and_ocr_digit_confusions(text, expected):
    from docingest.stages.normalize import clean_address

    assert clean_address(text) == expected


@pytest.mark.parametrize("lines, expected", [
    # One unambiguous month-first date (11/17) settles "11/03/2017" as November 3rd.
    (["Au bon moulin SARL", "Invoice Date 11/03/2017", "Total 100.00 EUR", "Wire transfer 11/17/2017"], "2017-11-03"),
    # The invoice's own "Nr. ... vom" line, not the order it refers to.
    (["Lieferant GmbH", "Handelsrechnung Nr. 471102 vom 05.03.2018",
      "Rechnung gemäß Bestellung Nr. 2018-471331 vom 01.03.2018", "Gesamtbetrag 10,00 EUR"], "2018-03-05"),
])
def test_issue_dates_read_the_document_s_own_date_order_and_number_line(lines, expected):
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    date = extract_fields([_receipt_page(lines)], DocType.INVOICE).get("invoice_date")
    assert date is not None and date.value == expected


def test_calibration_uses_the_method_entry_and_falls_back_to_the_pooled_field():
    from docingest.stages.calibrate import calibrated, fit_table

    obs = [("invoice_number", "text_layer", 0.9, True, "invoice_label")] * 20
    obs += [("invoice_number", "text_layer", 0.9, i % 2 == 0, "generic_label") for i in range(20)]
    obs += [("invoice_number", "text_layer", 0.9, True, "rare")] * 3
    table = fit_table(obs, "test")
    assert calibrated(table, "invoice_number", "text_layer", 0.9, "invoice_label") == round(21 / 22, 4)
    assert calibrated(table, "invoice_number", "text_layer", 0.9, "generic_label") == round(11 / 22, 4)
    # Too few values found that way: the field's pooled entry (33 right of 43) speaks.
    assert calibrated(table, "invoice_number", "text_layer", 0.9, "rare") == round(34 / 45, 4)


def test_optional_fields_below_the_bar_are_withheld_required_ones_send_to_review():
    from docingest.stages.route import withhold_unverified

    th = RoutingThresholds()
    cls = Classification(doc_type=DocType.INVOICE, confidence=0.95)
    ex = _invoice()
    ex.values.append(_v("due_date", "2025-02-01", conf=0.85))
    assert withhold_unverified(ex, th) == ["due_date"]
    assert route_document(cls, ex, apply_rules(ex, th, TODAY), [], th) == (Status.ACCEPTED, [])

    ex = _invoice()
    ex.values = [v for v in ex.values if v.field_name != "customer_name"] + [_v("customer_name", "Globex", conf=0.8)]
    assert withhold_unverified(ex, th) == []
    status, reasons = route_document(cls, ex, apply_rules(ex, th, TODAY), [], th)
    assert status == Status.NEEDS_REVIEW and reasons == ["low_field_confidence:customer_name:0.80"]

    # Forms have no required fields: their key/values are the document and are never withheld.
    form = Extraction(doc_type=DocType.FORM, values=[
        ExtractedValue(field_name="key_values", key="Name", value_raw="x", value="x", confidence=0.5, grounded=True)])
    assert withhold_unverified(form, th) == [] and not form.values[0].withheld
    # Switched off, the strict routing reviews every low field.
    ex = _invoice()
    ex.values.append(_v("due_date", "2025-02-01", conf=0.85))
    strict = RoutingThresholds(withhold_optional_fields=False)
    assert withhold_unverified(ex, strict) == []
    assert route_document(cls, ex, apply_rules(ex, strict, TODAY), [], strict)[0] == Status.NEEDS_REVIEW


def test_a_document_whose_kind_was_measured_unreliable_waits_however_confident_its_values():
    from docingest.stages.calibrate import document_reliability, fit_documents
    from docingest.schemas.calibration import Bucket, CalibrationTable
    from docingest.schemas.records import TextSource

    th = RoutingThresholds()
    cls = Classification(doc_type=DocType.RECEIPT, confidence=0.95)
    receipt = Extraction(doc_type=DocType.RECEIPT, values=[
        ExtractedValue(field_name=n, value_raw=v, value=v, confidence=0.95, grounded=True, source=TextSource.OCR)
        for n, v in (("vendor_name", "Kedai"), ("vendor_address", "1 Jalan"), ("invoice_date", "2025-01-02"),
                     ("total", "9.00"))])
    rules = apply_rules(receipt, th, TODAY)
    buckets = [Bucket(low=0.0, high=1.0, n=0, right=0)]
    table = CalibrationTable(entries={"total|ocr": buckets, "total|text_layer": buckets})
    # An older table without a documents section, or a source it never measured: no verdict.
    assert document_reliability(table, receipt) is None
    table.documents = fit_documents([("receipt", "ocr", True)] * 51 + [("receipt", "ocr", False)] * 4
                                    + [("invoice", "text_layer", True)] * 42)
    # 51 of 55 right is 0.927 measured, but only at least 0.848 with 95% confidence: the bound decides.
    assert document_reliability(table, receipt) == ("receipt|ocr", 0.8475, 55)
    status, reasons = route_document(cls, receipt, rules, [], th, document_reliability=("receipt|ocr", 0.8475, 55))
    assert status == Status.NEEDS_REVIEW and reasons == ["unproven_document_reliability:receipt|ocr:0.85:n55"]
    assert route_document(cls, receipt, rules, [], th,
                          document_reliability=("invoice|text_layer", 0.99, 300)) == (Status.ACCEPTED, [])
    # A kind of document never seen passing is unmeasured: it does not auto-accept.
    form = Extraction(doc_type=DocType.FORM, values=[ExtractedValue(
        field_name="key_values", key="Name", value_raw="x", value="x", confidence=0.99, grounded=True,
        source=TextSource.OCR)])
    assert document_reliability(table, form) == ("form|ocr", 0.0, 0)
    # The least reliable reading decides: one OCR value makes an invoice an OCR one. 42 of 42
    # right is a bound of 0.940: a point estimate of 1.0 from 42 documents is no guarantee.
    invoice = _invoice()
    assert document_reliability(table, invoice) == ("invoice|text_layer", 0.9395, 42)
    invoice.values[0].source = TextSource.OCR
    assert document_reliability(table, invoice)[0] == "invoice|ocr"


def test_document_reliability_is_fitted_on_the_documents_whose_values_all_pass(tmp_path):
    from docingest.evaluate import document_observations
    from docingest.schemas.calibration import Bucket, CalibrationTable

    def buckets(n, right):  # every raw confidence in one bucket
        return [Bucket(low=lo, high=hi, n=n, right=right) for lo, hi in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.85),
                                                                           (0.85, 0.95), (0.95, 1.0))]

    table = CalibrationTable(entries={"total|ocr": buckets(100, 99), "vendor_name|ocr": buckets(100, 99),
                                      "due_date|ocr": buckets(100, 50)})
    labels, docs, fields = [], [], []
    cases = {  # name: (total read, review reasons)
        "right": ("9.00", []), "wrong": ("8.00", []),
        "held": ("9.00", ["rule_failed:amounts.total_eq_subtotal_plus_tax"]),
        "was_low": ("9.00", ["low_field_confidence:total:0.80"]),
    }
    for name, (total, reasons) in cases.items():
        labels.append({"id": name, "path": f"{name}.jpg", "source_set": "s", "doc_type": "receipt",
                       "classify": True, "fields": {"total": "9.00", "vendor_name": "KEDAI"}})
        docs.append({"doc_id": name, "source_path": str(tmp_path / f"{name}.jpg"), "source_paths": None,
                     "status": "needs_review" if reasons else "accepted", "doc_type": "receipt",
                     "review_reasons": reasons})
        for field_name, value in (("total", total), ("vendor_name", "KEDAI"), ("due_date", "2025-01-09")):
            fields.append({"doc_id": name, "field_name": field_name, "key": None, "value": value,
                           "value_raw": value, "confidence": 0.5, "confidence_raw": 0.9, "source": "ocr",
                           "method": None, "withheld": False})
    observed = document_observations(labels, docs, fields, tmp_path, table, RoutingThresholds())
    # A rule holds "held" whatever its confidences; "was_low" passes under the new table; the
    # optional due date below the bar is withheld, not a reason to leave a document out.
    assert sorted(observed) == [("receipt", "ocr", False), ("receipt", "ocr", True), ("receipt", "ocr", True)]


def test_an_accepted_document_with_a_withheld_labelled_field_is_not_counted_right(tmp_path):
    from docingest.evaluate import score

    label = {"id": "x", "path": "x.pdf", "source_set": "s", "doc_type": "invoice", "classify": True,
             "fields": {"total": "10.00", "due_date": "2025-02-01"}}
    doc = {"doc_id": "d", "source_path": str(tmp_path / "x.pdf"), "source_paths": None,
           "status": "accepted", "doc_type": "invoice"}

    def field(name, value, withheld):
        return {"doc_id": "d", "field_name": name, "key": None, "value": value, "value_raw": value,
                "withheld": withheld}

    for withheld, right in ((False, 1.0), (True, 0.0)):
        fields = [field("total", "10.00", False), field("due_date", "2025-02-01", withheld)]
        overall, _, _, _ = score([label], [doc], fields, tmp_path)
        assert overall["accepted_precision"] == right


@pytest.mark.parametrize("lines, expected", [
    # The amount alone on the next line, a four-decimal unit price, a unit and a tax rate.
    (["Beschreibung Nettopreis Menge Steuersatz Nettobetrag", "1 Trennblätter A4 9,9000 20 Stk 19 %", "198,00",
      "Umsatzsteuer (S) 198,00 19 37,62", "Gesamtbetrag 235,62"], []),
    (["Beschreibung Nettopreis Menge Steuersatz Nettobetrag", "1 Trennblätter A4 9,9000 20 Stk 19 %", "198,00",
      "Umsatzsteuer (S) 198,00 19 37,62", "Summe netto 198,00"], [("Trennblätter A4", "20", "9.90", "198.00")]),
    # The quantity printed before the description.
    (["Menge Produkt USt. Preis Gesamtbetrag", "400,00 Luftballon: Bunt, ca. 500ml 19% 0,79 € 316,00 €",
      "Nettobetrag: 316,00 €"], [("Luftballon: Bunt, ca. 500ml", "400", "0.79", "316.00")]),
    # A row of numbers only: its description is printed above it.
    (["Beschreibung Nettopreis Menge USt. Betrag", "Trennblätter", "A4", "9,9000 20 Stk 19 % 198,00",
      "Summe 198,00"], [("Trennblätter A4", "20", "9.90", "198.00")]),
    (["Description Qty Unit Amount", "Widget 2 x 4.50 9.00", "Total 9.00"], [("Widget", "2", "4.50", "9.00")]),
    # A till receipt prints no item header: counted rows up to the totals; the unit price is
    # the amount over the count. "05 X RM 12.50" under a description is no row of its own.
    (["KEDAI MAJU", "1 x TEH O 2.50", "3 x ROTI BAKAR 7.50", "05 X RM 12.50", "TOTAL 10.00", "2 x SEBAB 1.00"],
     [("TEH O", "1", "2.50", "2.50"), ("ROTI BAKAR", "3", "2.50", "7.50")]),
    # A column title wrapped under the header ("Positions- / betrag / ohne / USt.") is no table end.
    (["Beschreibung Nettopreis Menge USt.", "Positions-", "betrag", "ohne", "USt.",
      "Trennblätter A4 9,9000 20 Stk 19 % 198,00", "Rechnungssumme ohne USt. 198,00"],
     [("Trennblätter A4", "20", "9.90", "198.00")]),
    # Both whole: the price is the one printed with decimals, not the smaller number.
    (["Beschreibung Nettopreis Menge USt. Betrag", "Pils 20/0500 12,0000 15 Stk 19 % 180,00",
      "Summe 180,00"], [("Pils 20/0500", "15", "12.00", "180.00")]),
    # The number printed before a unit is the quantity, even when it is not whole ("6,5 Stk").
    (["Beschreibung Nettopreis Menge USt. Betrag", "Kilometer 2,0000 6,5 Stk 7 % 13,00",
      "Summe 13,00"], [("Kilometer", "6.5", "2.00", "13.00")]),
    (["Description Qty Unit Amount", "Hosting 100,0000 Stk 5,0000 500,00", "Total 500,00"],
     [("Hosting", "100", "5.00", "500.00")]),
])
def test_line_items_read_quantity_price_and_amount(lines, expected):
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    items = extract_fields([_receipt_page(lines)], DocType.INVOICE).line_items
    assert [(i.description, i.quantity, i.unit_price, i.amount) for i in items] == expected


def test_item_rows_are_delivered_only_when_they_add_up_to_a_printed_sum():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    header = "Beschreibung Nettopreis Menge Steuer Betrag"

    def read(rows):
        ex = extract_fields([_receipt_page(["Werkhaus GmbH", header, *rows])], DocType.INVOICE)
        results = {r.rule_id: r for r in apply_rules(ex, RoutingThresholds(), TODAY)}
        return ex, [(i.description, i.quantity, i.amount) for i in ex.line_items], results

    # Items add up to the printed item sum; discounts put the subtotal elsewhere: the line-sum
    # rule passes on the printed item sum.
    ex, items, results = read(["Schrauben 2,00 10 Stk 19 % VAT (S) 20,00", "Dübel 1,50 4 Stk 19 % VAT (S) 6,00",
                               "Positionssumme 26,00", "Rabatt -1,00", "Nettobetrag 25,00", "MwSt 19 % 4,75",
                               "Bruttosumme 29,75"])
    assert items == [("Schrauben", "10", "20.00"), ("Dübel", "4", "6.00")]
    assert ex.line_items_sum == "26.00" and results["amounts.total_eq_line_sum"].passed
    assert "line_items.withheld" not in results
    # A row priced once stays when it makes the rows add up ...
    _, items, _ = read(["Schrauben 2,00 10 Stk 20,00", "Anfahrtspauschale 1 45,00", "Nettobetrag 65,00"])
    assert items == [("Schrauben", "10", "20.00"), ("Anfahrtspauschale", None, "45.00")]
    # ... and goes when the rows that verify themselves add up without it (a deposit line).
    _, items, _ = read(["Schrauben 2,00 10 Stk 20,00", "Kaution 2 99,00", "Nettobetrag 20,00"])
    assert items == [("Schrauben", "10", "20.00")]
    # A credit note's rows add up to its negative sum.
    _, items, _ = read(["Rücknahme Schrauben 2,00 -10 Stk -20,00", "Nettobetrag -20,00"])
    assert items == [("Rücknahme Schrauben", "-10", "-20.00")]
    # A row whose rounded price does not multiply out ("0,05 x 10000 KWH" for 52,00) keeps its
    # amount without a quantity, because it makes the rows add up.
    _, items, _ = read(["Schrauben 2,00 10 Stk 20,00", "Strom 0,05 10000 KWH 52,00", "Nettobetrag 72,00"])
    assert items == [("Schrauben", "10", "20.00"), ("Strom", None, "52.00")]
    # A table read in part (a row with only its amount is not read as a row) is withheld, with
    # a warning that says so.
    ex, items, results = read(["Schrauben 2,00 10 Stk 20,00", "Strom 52,00", "Nettobetrag 72,00"])
    assert items == [] and ex.line_items_withheld is not None
    warning = results["line_items.withheld"]
    assert not warning.passed and warning.severity.value == "warning" and "20.00" in warning.message
    assert "amounts.total_eq_line_sum" not in results


def test_a_column_of_form_labels_is_no_customer_and_an_order_number_says_so():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    ex = extract_fields([_receipt_page(["WXYZ Television", "Buyer", "Salesperson", "Product", "Brand",
                                        "Order #: 123456", "Total 10.00"])], DocType.INVOICE)
    assert ex.get("customer_name") is None or ex.get("customer_name").value_raw != "Salesperson"
    assert ex.get("invoice_number").method == "order_label"
    ex = extract_fields([_receipt_page(["Rechnungswährung : GBP", "Kurs 1 EUR = 0,88 GBP", "Betrag 10,00 €",
                                        "Summe 20,00 €"])], DocType.INVOICE)
    assert ex.get("currency").value == "GBP" and ex.get("currency").method == "currency_label"


def test_a_return_address_line_with_a_country_gives_a_grounded_vendor_address():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    ex = extract_fields([_receipt_page(["Invoice # RE-1 issued at 2019-06-10", "Due payable: 571.04 €",
                                        "Bei Spiel GmbH ● Ecke 12 ● 12345 Stadthausen ● Germany",
                                        "Theodor Est", "Bahnstr. 42"])], DocType.INVOICE)
    address = ex.get("vendor_address")
    assert ex.get("vendor_name").value == "Bei Spiel GmbH"
    assert address.value == "Ecke 12, 12345 Stadthausen, Germany" and address.grounded
    assert ex.get("customer_name").value == "Theodor Est"


@pytest.mark.parametrize("predicted, expected, match", [
    ("Ecke 12, 12345 Stadthausen", "Ecke 12, 12345 Stadthausen, DE", True),  # the page prints no country
    ("Ecke 12 ● 12345 Stadthausen ● Germany", "Ecke 12, 12345 Stadthausen, DE", True),
    ("DE 80333 München Lieferantenstraße 20", "Lieferantenstraße 20, 80333 München, DE", True),
    ("Ecke 12, 12345 Stadthausen, France", "Ecke 12, 12345 Stadthausen, DE", False),  # another country
    ("Ecke 12", "Ecke 12, 12345 Stadthausen, DE", False),
    ("Lyon", "FR", False),
    ("NO 5 JALAN", "NO 5 JALAN KL", False),  # "KL" is a town, not a country code
])
def test_an_address_label_s_country_code_is_matched_by_the_printed_country_or_none(predicted, expected, match):
    from docingest.evaluate import values_match

    assert values_match("vendor_address", predicted, expected) is match


def test_a_company_name_printed_whole_before_its_suffix_does_not_take_the_brand_line_above():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    def vendor(lines):
        return extract_fields([_receipt_page(lines + ["TOTAL 9.00"])], DocType.RECEIPT).get("vendor_name").value

    assert vendor(["Geoventure", "TasteOfTheWorldSdnBhd", "Lot 38, Jalan Kenari 5"]) == "TasteOfTheWorldSdnBhd"
    assert vendor(["PASARAYA BORONG PINTAR", "SDN BHD", "NO 5 JALAN PUTRA"]) == "PASARAYA BORONG PINTAR SDN BHD"
    # The registration number closes a name printed on two lines.
    assert vendor(["RESTAURANT JIAWEI", "JIAWEI HOUSE", "002693074-K", "13 JLN TASIK UTAMA 8"]) == \
        "RESTAURANT JIAWEI JIAWEI HOUSE"
    assert vendor(["TEO HENG STATIONERY & BOOKS", "(001451637-M)", "NO.53 JALAN BESAR"]) == \
        "TEO HENG STATIONERY & BOOKS"


def _table_page(rows: list[list[tuple[float, str]]]):
    """A text-layer page of cells: each row is a list of (x, text) printed at that position."""
    from docingest.schemas.records import PageText, TextSource, Word

    words = []
    for i, row in enumerate(rows):
        for x, cell in row:
            for token in cell.split():
                words.append(Word(text=token, bbox=(x, 0.03 * i, x + 0.01 * len(token), 0.03 * i + 0.012),
                                  confidence=1.0, line=i))
                x += 0.01 * len(token) + 0.004
    return PageText(page=1, source=TextSource.TEXT_LAYER, words=words)


def test_a_letterhead_address_ends_with_its_country():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    ex = extract_fields([_receipt_page([
        "KEDAI BUKU MAJU SDN BHD", "No 8, Jalan 7/118B, Desa Tun Razak", "56000 Kuala Lumpur, Malaysia",
        "MIDVALLEY BRANCH", "Receipt No: 1234", "TOTAL 12.00"])], DocType.RECEIPT)
    assert ex.get("vendor_address").value == "No 8, Jalan 7/118B, Desa Tun Razak 56000 Kuala Lumpur, Malaysia"


def test_a_party_block_reads_its_own_column_not_the_invoice_details_beside_it():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    page = _table_page([
        [(0.06, "Rechnungsersteller")],
        [(0.08, "Nordlicht Papier GmbH")],
        [(0.08, "Hafenweg 4"), (0.60, "RECHNUNG")],
        [(0.08, "24103 Kiel"), (0.60, "Rechnungsnummer"), (0.90, "5521")],
        [(0.08, "Deutschland"), (0.60, "Rechnungsdatum"), (0.88, "02.05.2024")],
        [(0.60, "Leistungsdatum"), (0.88, "30.04.2024")],
        [(0.06, "Rechnungsempfänger")],
        # A label and its value sit a column apart; that is one row of the block.
        [(0.08, "Name:"), (0.40, "Werft Süd AG")],
        [(0.08, "Gesamtbetrag 119,00 EUR")],
    ])
    ex = extract_fields([page], DocType.INVOICE)
    assert ex.get("vendor_name").value == "Nordlicht Papier GmbH"
    assert ex.get("vendor_address").value == "Hafenweg 4 24103 Kiel Deutschland"
    assert ex.get("customer_name").value == "Werft Süd AG"


def test_a_header_row_label_takes_the_cell_under_it_and_a_contract_number_beats_an_order_number():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    page = _table_page([
        [(0.05, "WXYZ Television Inc")],
        [(0.05, "Advertiser"), (0.40, "Contract / Revision"), (0.70, "Alt Order #")],
        [(0.05, "Amy for America"), (0.40, "378700 / 1"), (0.70, "09749211")],
        [(0.05, "Gross Amount $1,200.00")],
    ])
    ex = extract_fields([page], DocType.INVOICE)
    assert ex.get("customer_name").value == "Amy for America"
    assert ex.get("invoice_number").value == "378700" and ex.get("invoice_number").method == "contract_label"
    # "Advertiser: X" introduces the value beside it; a label as a value is no customer.
    page = _table_page([[(0.05, "Advertiser:"), (0.30, "Bernie 2020")], [(0.05, "Product Desc:"), (0.30, "TV")]])
    assert extract_fields([page], DocType.INVOICE).get("customer_name").value == "Bernie 2020"
    page = _table_page([[(0.05, "Advertiser"), (0.30, "Original Date / Revision")], [(0.60, "Total 10.00")]])
    assert extract_fields([page], DocType.INVOICE).get("customer_name") is None


def test_the_tax_that_adds_the_subtotal_up_to_the_total_beats_a_charge_s_own_tax_line():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    ex = extract_fields([_receipt_page(["Lieferant GmbH", "Nettobetrag 177,49", "Steuerbetrag 20,16",
                                        "Bruttosumme 197,65", "Zuschlag Versandkosten 115,30 7 % UST (S) 5,80"])],
                        DocType.INVOICE)
    assert (ex.get("subtotal").value, ex.get("tax").value, ex.get("total").value) == ("177.49", "20.16", "197.65")


def test_an_invoice_issuer_block_and_a_dash_separated_return_address_name_the_vendor():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    ex = extract_fields([_receipt_page(["Rechnungsersteller", "Lieferant GmbH", "Lieferantenstraße 20",
                                        "80333 München", "Gesamtbetrag 10,00 EUR"])], DocType.INVOICE)
    assert ex.get("vendor_name").value == "Lieferant GmbH"
    ex = extract_fields([_receipt_page(["Au bon moulin SARL - 1242 chemin de l'olive - 84340 Malaucène - France",
                                        "Facture FA-2017-0010", "Total TTC 671,15 €"])], DocType.INVOICE)
    assert ex.get("vendor_name").value == "Au bon moulin SARL"
    assert ex.get("vendor_address").value == "1242 chemin de l'olive, 84340 Malaucène, France"


@pytest.mark.parametrize("lines, expected", [
    # Registration lines under the name in their OCR spellings belong to the name, not the address.
    (["MR.D.I.Y(M)SDN BHD", "Co-REG:860671-D", "LOT1851-A,JALANKPB6,", "43300 SERI KEMBANGAN,SELANGOR",
      "(GSTID N0 :000306020352)"], "LOT1851-A,JALANKPB6, 43300 SERI KEMBANGAN,SELANGOR"),
    (["ADVANCO COMPANY", "Company Reg. No. : 725186-V", "NO 1&3, Jalan Wangsa Delima 12", "53300 Kuala Lumpur",
      "03-41318972"], "NO 1&3, Jalan Wangsa Delima 12 53300 Kuala Lumpur"),
    # A phone number with its country code ends the address.
    (["HON HWA HARDWARE TRADING", "CompanyReg.No.:001055194x", "NO 37,JALAN MANIS7,TAMAN SEGAR,",
      "56100 CHERAS,KUALA LUMPUR.", "+603-91302672"], "NO 37,JALAN MANIS7,TAMAN SEGAR, 56100 CHERAS,KUALA LUMPUR."),
    # A label glued to its number by OCR ("Telephone03-...") still ends it; "LOT'2685" is a lot number.
    (["Shell ISNI PETRO TRADING", "Company No:002643278-A", "LOT'2685 JLN GENTING KLANG", "53300KL Site:1066",
      "Telephone03-40212008", "CSTNo:001090105344"], "LOT'2685 JLN GENTING KLANG 53300KL Site:1066"),
    # OCR that keeps the spaces inside phone numbers ("07-355 2616", "T: 03-2093 7358").
    (["ABC HO TRADING", "No.2&4, JALAN HARMONI 3/2,", "81100 JOHOR BAHRU.JOHOR", "07-355 2616"],
     "No.2&4, JALAN HARMONI 3/2, 81100 JOHOR BAHRU.JOHOR"),
    (["BENS GROCER SDN. BHD", "Lot 6, Jalan Batai,", "50490, Kuala Lumpur", "T: 03-2093 7358 | F: 03-2093 7359"],
     "Lot 6, Jalan Batai, 50490, Kuala Lumpur"),
    (["HON HWA HARDWARE TRADING", "NO 37, JALAN MANIS 7,", "56100 CHERAS.", "+603-9130 2672"],
     "NO 37, JALAN MANIS 7, 56100 CHERAS."),
    # Tax and company ids between the name and the address belong to the name; a run of house
    # numbers is no date; "Guest Check" is the slip's title.
    (["Timeless Kitchenette Sdn Bhd", "Company no : 1174703-K", "GST Reg no : 0000 6771 0976",
      "Lot 50, Floor T2, Sky Avenue", "Pahang, 69000 Pahang Malaysia", "Guest Check"],
     "Lot 50, Floor T2, Sky Avenue Pahang, 69000 Pahang Malaysia"),
    (["FUYI MINIMARKET", "BR No.: 0195932-X", "NO 43-45-47G,", "TAMAN SEJATI,", "03-3279 1851,"],
     "NO 43-45-47G, TAMAN SEJATI"),
    # A former name and a licence line under the name: the state on the line after the
    # six-line window still closes the address, because a tax line follows it.
    (["Gerai Makan Sdn Bhd", "(65351-M)", "formerly known as", "Kedai Lama Sdn Bhd", "Licensee of Acme",
      "Level 6, Bangunan Maju", "No.3, Jalan SS21/39,47400 Petaling Jaya", "Selangor", "(GST ID No: 0005)"],
     "Level 6, Bangunan Maju No.3, Jalan SS21/39,47400 Petaling Jaya Selangor"),
    # An e-mail address or a toll-free careline ends the address.
    (["KEDAI RUNCIT SDN BHD", "LOT R1, JALAN BESAR,", "84600,PAGOH,JOHOR", "careline: 1800 88 1231",
      "care@kedai.com.my"], "LOT R1, JALAN BESAR, 84600,PAGOH,JOHOR"),
    (["KEDAI RUNCIT SDN BHD", "LOT R1, JALAN BESAR,", "84600,PAGOH,JOHOR", "care@kedai.com.my"],
     "LOT R1, JALAN BESAR, 84600,PAGOH,JOHOR"),
])
def test_a_receipt_letterhead_address_skips_registration_lines_and_stops_at_a_phone(lines, expected):
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    address = extract_fields([_receipt_page(lines + ["TOTAL 9.00"])], DocType.RECEIPT).get("vendor_address")
    assert address is not None and address.value == expected


def test_a_form_row_with_several_keys_gives_each_key_its_own_value():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    page = _table_page([
        [(0.05, "Brand: PHOENIX"), (0.40, "Style: HLB-KS")],
        [(0.05, "Country:"), (0.40, "CYPRUS")],
        [(0.05, "DATE:")],
        [(0.05, "March 27, 1984"), (0.60, "Page 1")],
    ])
    pairs = {(v.key, v.value_raw) for v in extract_fields([page], DocType.FORM).values}
    assert {("Brand", "PHOENIX"), ("Style", "HLB-KS"), ("Country", "CYPRUS"), ("DATE", "March 27, 1984")} <= pairs


def test_a_priced_order_under_a_contract_title_is_a_money_document():
    from docingest.stages.classify import classify_document

    terms = ["The parties intend the Standard Terms to be part of their agreement.",
             "The agreement binds the parties and their agents."]
    table = [f"Line {i} 02/{i:02d}/20 News at 6 30 Spots 2 $1,{i}25.00 $2,{i}50.00" for i in range(1, 8)]
    order = _receipt_page(["CONTRACT", "Contract # 42311 Advertiser: Friends of Pat", "Agency: Blue Media",
                           *table, "Time Period # of Spots Gross Amount Agency Comm. Net Amount",
                           "Totals 14 $19,110.00 ($2,866.50) $16,243.50", *terms])
    nda = _receipt_page(["MUTUAL NON-DISCLOSURE AGREEMENT", *terms, "Either party shall give notice of termination.",
                         "Whereas the parties wish to exchange confidential information",
                         "In witness whereof the parties have signed this agreement."])
    assert classify_document([order], []).doc_type == DocType.INVOICE
    assert classify_document([nda], []).doc_type == DocType.CONTRACT


@pytest.mark.parametrize("clauses, expected", [
    # A non-solicit period comes first in the text; the agreement's own term is the "Term." section.
    (["You agree that, for a period of one (1) year from the date hereof, you will not solicit employees.",
      "17. Term. This letter agreement will terminate two (2) years from the date hereof."], "2_years"),
    (["6.1 This Agreement shall terminate in its entirety one year after the date of this Agreement.",
      "The obligations shall survive any termination for a period of three (3) years."], "1_year"),
    (["This agreement is governed by the laws of the State of Delaware."], None),
    # A bare "for a period of" is a non-solicit or survival clause, not the agreement's term.
    (["You agree that, for a period of one (1) year from the date hereof, you will not solicit employees."],
     None),
    # A "Duration." or "TERM AND TERMINATION" section states the term, survival wording or not.
    (["5. Duration. The restrictions on use shall survive for a period of two (2) years."], "2_years"),
    (["3. TERM AND TERMINATION The obligations of the Parties shall survive for a period of three (3) years."],
     "3_years"),
    # The duration the agreement defines as its term.
    (["It shall apply to all information furnished for a period of one year following the Effective Date "
      "(\u201cthe Term\u201d)."], "1_year"),
    # "The term of this Agreement shall be ..." states it outright, before a survival clause.
    (["The obligations with respect to Confidential Information shall extend for a period of five years.",
      "17. The term of this Agreement shall be one (1) year from the date hereof."], "1_year"),
])
def test_contract_term_is_the_agreements_own_duration(clauses, expected):
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page(["NON-DISCLOSURE AGREEMENT", "This Agreement is made as of January 5, 2015",
                                        "between Alpha Corp. and Beta LLC.", *clauses])], DocType.CONTRACT)
    term = ex.get("term")
    assert (term.value if term else None) == expected


@pytest.mark.parametrize("opening, expected", [
    ("This Agreement, dated this 11th day of January, 2012, is by and among Alpha Corp. and Beta LLC.", "2012-01-11"),
    ("This Agreement made and entered into this 3 day of July 2005, by and between Alpha Corp. and Beta LLC.",
     "2005-07-03"),
    ("This Agreement is made effective as of the 1st day of August, 2008, by Alpha Corp.", "2008-08-01"),
])
def test_contract_effective_date_in_the_day_of_style(opening, expected):
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page(["NON-DISCLOSURE AGREEMENT", "Reference 03/02/2001", opening])],
                        DocType.CONTRACT)
    assert ex.get("effective_date").value == expected
    assert ex.get("effective_date").method == "effective_phrase"


def test_the_date_an_agreement_names_effective_wins_over_the_date_it_is_dated():
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page([
        "CONFIDENTIALITY AGREEMENT",
        "This Agreement, dated as of October 15, 2012 and effective as of September 20, 2012 (the",
        "\u201cEffective Date\u201d), is made between Alpha Corp. and Beta LLC."])], DocType.CONTRACT)
    assert ex.get("effective_date").value == "2012-09-20"


@pytest.mark.parametrize("lines, expected, method", [
    # No effective date stated: the agreement takes effect when the last party signs.
    (["Alpha Corp. Beta LLC", "By: /s/ A. Smith By: /s/ B. Jones", "Date: January 19, 2016",
      "Date: 1/27/16"], "2016-01-27", "signature_date"),
    # No signature date either: the first date of the document stays the fallback.
    (["Alpha Corp. Beta LLC", "By: /s/ A. Smith"], "2011-03-02", "first_date"),
])
def test_an_agreement_without_an_effective_date_takes_its_last_signature_date(lines, expected, method):
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page(["MUTUAL NONDISCLOSURE AGREEMENT", "Reference 03/02/2011",
                                        "The parties agree as follows.", *lines])], DocType.CONTRACT)
    date = ex.get("effective_date")
    assert (date.value, date.method) == (expected, method)


@pytest.mark.parametrize("opening, expected", [
    ("This Agreement is made by and between Cubic Corporation, a corporation (the Company) organized and "
     "existing under the laws of the State of Delaware having its principal offices at San Diego, and "
     "John D. Thomas (the Employee).",
     ["Cubic Corporation", "John D. Thomas"]),
    ("This Agreement is made between AOL Inc. (AOL) and Verizon Services Group Inc. (Verizon).",
     ["AOL Inc.", "Verizon Services Group Inc."]),
    ("This Agreement, dated this 11th day of January, 2012, is by and among First Financial Northwest, Inc. "
     "(the Company) and Stilwell Associates, L.P. (Stilwell).", ["First Financial Northwest, Inc.", "Stilwell Associates, L.P."]),
    ("This Agreement is made between Alpha Corp. (the Company) and its affiliates or subsidiaries "
     "(together the Group).", ["Alpha Corp."]),
    # The clause around the names is no party; a lower-case company name is; a title ends.
    ("This Agreement is made between Galil Medical Inc. (Galil) and, in consideration of the rights and "
     "obligations set forth herein, both parties hereby agree as follows: 1. Definitions.", ["Galil Medical Inc."]),
    ("This Agreement is entered into between salesforce.com, inc. (the Company) and Patricia Sueltz (you). "
     "The parties agree.", ["salesforce.com, inc.", "Patricia Sueltz"]),
    # A filing's title names the parties by short names; the clause after it names them in full.
    ("AGREEMENT BETWEEN AUSPEX AND TEVA, DATED MARCH 1, 2015 Exhibit 10.2 This Agreement is entered into "
     "between AUSPEX PHARMACEUTICALS, located at 3333 North Torrey Pines Court (Company), and TEVA "
     "PHARMACEUTICAL INDUSTRIES, LTD., with a principal place of business in Israel.",
     ["AUSPEX PHARMACEUTICALS", "TEVA PHARMACEUTICAL INDUSTRIES, LTD."]),
    # The "and" of a description is not the one that names the second party.
    ("This Agreement is made by and between Flexsteel Industries, Inc., a corporation organized and existing "
     "under the laws of Minnesota (Flexsteel) on behalf of itself and its subsidiaries and Jerald K. Dittmer "
     "(Employee).", ["Flexsteel Industries, Inc.", "Jerald K. Dittmer"]),
    # An initial is no article, and a credential is no part of the name.
    ("This Agreement is by and between Corus Pharma, Inc., a Delaware corporation (Company) and "
     "A. Bruce Montgomery, M.D. (Employee).", ["Corus Pharma, Inc.", "A. Bruce Montgomery"]),
    # One description after both names; a clause that names no one gives way to the next.
    ("Whereas the parties wish to discuss a transaction between the parties relating to a possible business "
     "relationship (the Purpose). This Agreement is entered into by and between Galil Medical, Inc., and "
     "Perseon Corporation, a Delaware corporation.", ["Galil Medical, Inc.", "Perseon Corporation"]),
    # A role is no name.
    ("This Agreement is between the Bank and Employee.", []),
])
def test_contract_parties_are_names_not_their_descriptions(opening, expected):
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page(["NON-DISCLOSURE AGREEMENT", opening])], DocType.CONTRACT)
    assert [v.value for v in ex.values if v.field_name == "parties"] == expected


def test_a_name_ends_where_the_next_label_on_its_line_begins():
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page([
        "Contract # 26898588 Flight: 4/17/20 - 4/23/20",
        "Agency: Del Ray Media LLC Advertiser: America First Action Inc Market: Harrisburg-Lebanon Total $: $20,400.00",
    ])], DocType.INVOICE)
    assert ex.get("customer_name").value == "America First Action Inc"
    assert ex.get("total").value == "20400.00"


def test_a_label_alone_takes_the_cell_that_starts_under_it_not_the_next_columns_value():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.records import PageText, TextSource, Word

    def word(text, x0, y0, line):
        return Word(text=text, bbox=(x0, y0, x0 + 0.01 * len(text), y0 + 0.008), confidence=1.0, line=line)

    # "Contract / Revision" heads a column; "Alt Order #" heads the next one. Both values sit on
    # the row under the labels; the order number starts just past the contract label's end.
    words = [word("Contract", 0.665, 0.069, 0), word("/", 0.717, 0.069, 0), word("Revision", 0.726, 0.069, 0),
             word("Alt", 0.81, 0.069, 1), word("Order", 0.83, 0.069, 1), word("#", 0.867, 0.069, 1),
             word("26821990", 0.811, 0.084, 2), word("2418178", 0.678, 0.084, 3), word("/", 0.747, 0.085, 3),
             word("Total", 0.1, 0.5, 4), word("$1,050.00", 0.2, 0.5, 4)]
    ex = extract_fields([PageText(page=1, source=TextSource.TEXT_LAYER, words=words)], DocType.INVOICE)
    assert ex.get("invoice_number").value == "2418178"


def test_contract_dates_name_the_flight_before_a_table_of_time_periods():
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page([
        "CONTRACT", "Contract Dates", "03/09/20 - 04/12/20", "Time Period # of Spots Gross Amount",
        "03/30/20 - 04/05/20 12 $8,900.00", "Totals 12 $8,900.00"])], DocType.INVOICE)
    assert (ex.get("period_start").value, ex.get("period_end").value) == ("2020-03-09", "2020-04-12")


@pytest.mark.parametrize("title, expected", [
    ("Invoice FA-2017-0008", "FA-2017-0008"), ("Gutschrift AV-2017-0005", "AV-2017-0005"), ("Invoice 3 of 4", None),
])
def test_a_title_followed_by_its_number_gives_the_invoice_number(title, expected):
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page(["Au bon moulin SARL", title, "Invoice Date 11/03/2017", "Total 12.00 €"])],
                        DocType.INVOICE)
    number = ex.get("invoice_number")
    assert (number.value if number else None) == expected


def test_the_total_of_the_discounts_is_not_the_invoice_total():
    from docingest.stages.extract import extract_fields

    ex = extract_fields([_receipt_page([
        "Rechnung Nr. 4711", "Positionssumme 850,00", "Gesamtbetrag der Zuschläge 30,00",
        "Gesamtbetrag der Abschläge -21,25", "Rechnungssumme ohne USt. 858,75", "Zahlbetrag 1021,91"])],
        DocType.INVOICE)
    assert ex.get("total").value == "1021.91"


def test_a_header_row_label_takes_the_cell_under_it_not_the_next_header_or_column():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.records import PageText, TextSource, Word

    def word(text, x0, y0, line, height=0.008):
        return Word(text=text, bbox=(x0, y0, x0 + 0.008 * len(text), y0 + height), confidence=1.0, line=line)

    # "Advertiser" and "Original Date / Revision" head two columns; under them, one text line
    # holds both values. A short dash does not split the advertiser's cell.
    words = [word("Advertiser", 0.505, 0.101, 0),
             word("Original", 0.792, 0.101, 1), word("Date", 0.86, 0.101, 1),
             word("DSCC", 0.506, 0.116, 2), word("-", 0.543, 0.12, 2, height=0.001), word("Peters", 0.555, 0.116, 2),
             word("for", 0.607, 0.116, 2), word("Senate", 0.634, 0.116, 2),
             word("05/12/20", 0.803, 0.116, 2), word("05/12/20", 0.89, 0.116, 2),
             word("Total", 0.1, 0.5, 3), word("$1,050.00", 0.2, 0.5, 3)]
    ex = extract_fields([PageText(page=1, source=TextSource.TEXT_LAYER, words=words)], DocType.INVOICE)
    assert ex.get("customer_name").value == "DSCC - Peters for Senate"


def test_a_media_orders_buyer_is_a_person_and_the_advertiser_is_the_customer():
    from docingest.stages.extract import extract_fields

    from docingest.schemas.records import PageText, TextSource, Word

    # Labels in one column, their values in the next, each cell its own text line (a billing
    # invoice's header block as a PDF text layer has it).
    cells = [(0.39, 0.063, "Buyer"), (0.39, 0.078, "Salesperson"), (0.39, 0.131, "Advertiser"),
             (0.50, 0.063, "MUNDY,CAROLE"), (0.50, 0.078, "SMITH,JOHN"),
             (0.50, 0.131, "Kennedy for Massachusetts Senate-D"), (0.39, 0.3, "Total $1,050.00")]
    words = []
    for line, (x, y, text) in enumerate(cells):
        for token in text.split():
            words.append(Word(text=token, bbox=(x, y, x + 0.008 * len(token), y + 0.008), confidence=1.0, line=line))
            x += 0.008 * len(token) + 0.004
    ex = extract_fields([PageText(page=1, source=TextSource.TEXT_LAYER, words=words)], DocType.INVOICE)
    assert ex.get("customer_name").value == "Kennedy for Massachusetts Senate-D"


def test_from_in_small_print_is_no_vendor_label():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    page = _receipt_page(["TRI SHAAS SDN BHD", "4-20, Jalan Ria 25/62", "Tel : 03-51217970", "TOTAL 5.00",
                          "tax invoice must be made within 3 months", "from the date of purchase. If the request"])
    assert extract_fields([page], DocType.RECEIPT).get("vendor_name").value == "TRI SHAAS SDN BHD"
    labelled = _receipt_page(["Receipt", "From: Acme Trading Ltd", "TOTAL 5.00"])
    assert extract_fields([labelled], DocType.RECEIPT).get("vendor_name").value == "Acme Trading Ltd"


def test_a_sheet_without_money_is_no_bill_and_one_agreement_is_no_contract():
    from docingest.stages.classify import classify_document

    spec = _receipt_page(["TRIAL SPECIFICATION", "Total Pressure Drop 62 mm", "Total Weight 900 mg",
                          "Net Tobacco 858 mg", "Net Filter 27 mm", "Supplier(s): ECUSTA"])
    memo = _receipt_page(["Attention: R. Smith", "Unit price per order number",
                          "Per our agreement with the vendor", "Approved by"])
    assert classify_document([spec], []).doc_type == DocType.FORM
    assert classify_document([memo], []).doc_type == DocType.FORM
    # With money it is a bill; with many clauses a contract; with nothing known, other.
    bill = _receipt_page(["TRIAL SPECIFICATION", "Net 100.00", "Total 119.00", "Invoice No 7"])
    assert classify_document([bill], []).doc_type == DocType.INVOICE
    assert classify_document([_receipt_page(["Hello world", "see you"])], []).doc_type == DocType.OTHER


def _cells_page(cells: list[tuple[float, float, str]]):
    """A text-layer page whose every cell is its own text line, in the order given (PDF
    producers emit a form's labels first and its values after)."""
    from docingest.schemas.records import PageText, TextSource, Word

    words = []
    for line, (x, y, cell) in enumerate(cells):
        for token in cell.split():
            words.append(Word(text=token, bbox=(x, y, x + 0.01 * len(token), y + 0.01), confidence=1.0, line=line))
            x += 0.01 * len(token) + 0.004
    return PageText(page=1, source=TextSource.TEXT_LAYER, words=words)


def test_a_lone_contract_cell_names_the_number_beside_it_but_a_numbered_label_wins():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.fields import DocType

    invoice = _cells_page([(0.05, 0.03, "OFFICIAL BILLING INVOICE"), (0.70, 0.05, "Inv Date"),
                           (0.70, 0.07, "Contract"), (0.80, 0.05, "3/8/2020"), (0.80, 0.07, "4263696"),
                           (0.05, 0.20, "Total $1,050.00")])
    number = extract_fields([invoice], DocType.INVOICE).get("invoice_number")
    assert number is not None and number.value == "4263696"
    titled = _cells_page([(0.05, 0.03, "CONTRACT"), (0.20, 0.03, "2960 North Meridian Street"),
                          (0.05, 0.08, "Contract / Revision"), (0.05, 0.10, "2486250 / 1"),
                          (0.05, 0.20, "Total $1,050.00")])
    assert extract_fields([titled], DocType.INVOICE).get("invoice_number").value == "2486250"


def test_a_stations_account_number_after_the_advertiser_is_not_part_of_its_name():
    from docingest.stages.extract import extract_fields

    page = _cells_page([(0.39, 0.03, "Advertiser"), (0.50, 0.03, "Amy for America (135176)"),
                        (0.39, 0.30, "Total $1,050.00")])
    customer = extract_fields([page], DocType.INVOICE).get("customer_name")
    assert customer.value == "Amy for America" and customer.value_raw == "Amy for America (135176)"
    assert customer.grounded
    # A number that is part of the name stays.
    page = _cells_page([(0.39, 0.03, "Advertiser"), (0.50, 0.03, "Mike Bloomberg 2020"),
                        (0.39, 0.30, "Total $1,050.00")])
    assert extract_fields([page], DocType.INVOICE).get("customer_name").value == "Mike Bloomberg 2020"


def test_an_orders_first_page_outweighs_the_terms_and_conditions_printed_after_it():
    from docingest.stages.classify import classify_document

    # A broadcast order: one page of priced spots (more amounts than the old money cap counted).
    table = [f"{i} WXYZ 03/{i:02d}/20 M-F News at 6 :30 Spots 2 ${i},100.00 ${i},050.00" for i in range(1, 10)]
    order = _receipt_page(["Contract / Revision 280677 / 1", "Advertiser Friends of Pat Agency Blue Media",
                           "Estimate # 3 Order # 77", "Line Description Spots Gross Amount Net Amount", *table,
                           "Totals 18 $45,900.00 $39,015.00", "Agency Comm. $6,885.00",
                           "This order is subject to the station's standard terms and conditions."])
    clauses = ["The parties hereby agree that this Agreement shall bind Agency and Advertiser.",
               "Agency shall indemnify Station; either party may seek termination of this Agreement."]
    terms = [_receipt_page(["STANDARD TERMS AND CONDITIONS", *clauses]) for _ in range(2)]
    assert classify_document([order, *terms], []).doc_type == DocType.INVOICE

    # An agreement whose schedule prices a few items stays an agreement.
    nda = _receipt_page(["MUTUAL NON-DISCLOSURE AGREEMENT", *clauses, "WHEREAS the parties wish to talk,",
                         "governed by the laws of Ohio, In witness whereof the parties have signed."])
    fees = _receipt_page(["Schedule A: fees", "Review fee $1,200.00", "Late fee $150.00"])
    assert classify_document([nda, terms[0], fees], []).doc_type == DocType.CONTRACT


def test_a_customer_label_under_the_advertiser_label_is_no_customer():
    from docingest.stages.extract import extract_fields
    from docingest.schemas.records import PageText, TextSource, Word

    # OCR reads a station's header block row by row, each row's box reaching into the next
    # one's, so the cell under "Advertiser" is two rows down: the label "Buyer".
    rows = [[(0.26, "REMIT TO Sinclair"), (0.41, "Advertiser"), (0.56, "Commonwealth Leaders Fund")],
            [(0.26, "c/o WJAC"), (0.41, "Agency"), (0.56, "Universal Media"), (0.76, "Invoice 7437149")],
            [(0.26, "PO Box 206270"), (0.41, "Buyer"), (0.76, "Inv Date 5/31/2020")],
            [(0.41, "Total"), (0.56, "$5,200.00")]]
    words = []
    for i, row in enumerate(rows):
        for x, cell in row:
            for token in cell.split():
                words.append(Word(text=token, bbox=(x, 0.06 + 0.012 * i, x + 0.01 * len(token), 0.074 + 0.012 * i),
                                  confidence=0.95, line=i))
                x += 0.01 * len(token) + 0.004
    page = PageText(page=1, source=TextSource.OCR, words=words)
    customer = extract_fields([page], DocType.INVOICE).get("customer_name")
    assert customer is None or customer.value != "Buyer"


def test_the_lower_case_words_of_a_clause_are_no_customer():
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.05, "Advertiser"), (0.5, "Original Date / Revision")],
                        [(0.05, "Priorities USA Action"), (0.5, "05/01/20 05/01/20")],
                        [(0.05, "Totals 12 $24,150.00")],
                        [(0.05, "Terms: payment is due within 30 days from the date of the invoice to be")],
                        [(0.05, "made to the station.")]])
    assert extract_fields([page], DocType.INVOICE).get("customer_name").value == "Priorities USA Action"


def _rows_page(rows: list[list[tuple[float, str]]], pitch: float = 0.012):
    """A text-layer page of rows of (x, text) cells, rows ``pitch`` apart (0.01 high)."""
    from docingest.schemas.records import PageText, TextSource, Word

    words = []
    for i, row in enumerate(rows):
        for x, cell in row:
            for token in cell.split():
                words.append(Word(text=token, bbox=(x, 0.1 + pitch * i, x + 0.008 * len(token), 0.11 + pitch * i),
                                  confidence=1.0, line=i))
                x += 0.008 * len(token) + 0.004
    return PageText(page=1, source=TextSource.TEXT_LAYER, words=words)


@pytest.mark.parametrize("under, expected", [
    ("Leadership Fund", "Congressional Leadership Fund"),  # the name wraps in its cell
    ("711 Third Avenue", "Congressional"),  # an address under the name is not its rest
    ("Product: PA-10", "Congressional"),  # nor is the next label
])
def test_a_name_wrapped_in_its_cell_continues_on_the_line_under_it(under, expected):
    from docingest.stages.extract import extract_fields

    page = _rows_page([[(0.30, "Agency: FlexPoint Media Inc."), (0.48, "Advertiser: Congressional")],
                       [(0.48 + 0.008 * 11 + 0.004, under)],
                       [(0.30, "Market: Harrisburg"), (0.70, "Total $: $90,725.00")]])
    assert extract_fields([page], DocType.INVOICE).get("customer_name").value == expected


@pytest.mark.parametrize("rows, expected", [
    # A cost per rating point printed after the order's total is no total.
    ([[(0.3, "Agency: ASSEMBLY"), (0.7, "Total $: $3,640.00")], [(0.3, "Service: Nielsen"), (0.7, "Total CPP: $0.00")]],
     "3640.00"),
    # A revision note names the old total first.
    ([[(0.1, "Total 0 $0.00")], [(0.1, "Changes: Total $ from $18,140.00 to $0.00, Total Spots from 41 to 0")]],
     "0.00"),
])
def test_audience_measures_and_revision_notes_are_no_order_total(rows, expected):
    from docingest.stages.extract import extract_fields

    assert extract_fields([_table_page(rows)], DocType.INVOICE).get("total").value == expected


def test_a_stations_order_and_revision_number_beats_an_alternate_order_number():
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.1, "Alt Order #: WOC12499614"), (0.5, "Advertiser: Friends of Pat")],
                        [(0.1, "Order / Rev: 1996189 / 1"), (0.5, "Flight Dates: 05/08/20 - 05/14/20")],
                        [(0.1, "Agency Order #: 26903389"), (0.5, "Total $: $2,185.00")]])
    number = extract_fields([page], DocType.INVOICE).get("invoice_number")
    assert (number.value, number.method) == ("1996189", "order_revision_label")


def test_a_letter_agreements_parties_include_the_companies_above_the_signature_lines():
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.1, "CONFIDENTIALITY AGREEMENT")],
                        [(0.1, "Ladies and Gentlemen: In connection with your consideration of a possible transaction")],
                        [(0.1, "with MAP Pharmaceuticals, Inc. you agree to keep the Evaluation Material confidential.")],
                        [(0.1, "Very truly yours,")],
                        [(0.1, "MAP PHARMACEUTICALS, INC."), (0.55, "Recipient Name: Allergan, Inc.")],
                        [(0.1, "By: /s/ Timothy S. Nelson"), (0.55, "By: /s/ David Lawrence")],
                        [(0.1, "Name: Timothy S. Nelson"), (0.55, "Name: David Lawrence")]])
    parties = [v.value for v in extract_fields([page], DocType.CONTRACT).values if v.field_name == "parties"]
    assert parties == ["MAP PHARMACEUTICALS, INC.", "Allergan, Inc."]


def test_a_broadcast_orders_schedule_dates_are_its_flight_period():
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.1, "Schedule Dates 05/08/20-05/12/20"), (0.6, "Print Date 05/07/20")],
                        [(0.1, "1.0 Normal Line / SPOT 05/08/20-05/08/20 3 :30 The Doctors $10.00")],
                        [(0.1, "Total $: $10.00")]])
    got = extract_fields([page], DocType.INVOICE)
    assert (got.get("period_start").value, got.get("period_end").value) == ("2020-05-08", "2020-05-12")


def test_a_totals_row_is_a_total_label():
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.1, "Month"), (0.3, "# Spots"), (0.45, "Gross Amount")],
                        [(0.1, "February 2020"), (0.3, "21"), (0.45, "$7,495.00"), (0.65, "$6,370.75")],
                        [(0.1, "March 2020"), (0.3, "9"), (0.45, "$2,295.00"), (0.65, "$1,950.75")],
                        [(0.1, "Totals"), (0.3, "30"), (0.45, "$9,790.00"), (0.65, "$8,321.50")]])
    assert extract_fields([page], DocType.INVOICE).get("total").value == "9790.00"


def test_a_contract_cell_at_the_end_of_an_ocr_row_names_its_number():
    from docingest.stages.extract import extract_fields

    page = _receipt_page(["REMIT TO Sinclair Broadcast Advertiser Commonwealth Leaders Fund (136435)",
                          "Dallas, TX 75320-6270 Salesperson TeleRep/PHL Terms CIA",
                          "ph: (610) 293-4100 Contract 4377405",
                          "Total $5,200.00"])
    assert extract_fields([page], DocType.INVOICE).get("invoice_number").value == "4377405"
    # Prose that mentions a contract is no label.
    clause = _receipt_page(["Payment is due as set out in the Contract 2", "Total $5,200.00"])
    assert extract_fields([clause], DocType.INVOICE).get("invoice_number") is None


def test_a_tax_summary_column_ends_in_the_invoice_total():
    from docingest.stages.extract import extract_fields

    header = [(0.08, "Warenwert"), (0.43, "Skonto"), (0.57, "Nettobetrag"), (0.69, "MwSt-Betrag"),
              (0.79, "MwSt-%"), (0.88, "Endbetrag")]
    page = _table_page([header,
                        [(0.11, "326,50"), (0.60, "321,40"), (0.73, "61,07"), (0.80, "19,0"), (0.90, "382,47")],
                        [(0.11, "130,70"), (0.60, "127,59"), (0.73, "8,93"), (0.80, "7,0"), (0.90, "136,52")],
                        [(0.11, "457,20"), (0.60, "448,99"), (0.73, "70,00"), (0.80, "EUR"), (0.90, "518,99")],
                        [(0.08, "MUSTERLIEFERANT GMBH Geschäftsführung: Max Muster")]])
    assert extract_fields([page], DocType.INVOICE).get("total").value == "518.99"


def test_a_gross_commission_and_net_stack_is_no_sum_row():
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.1, "Spots 6"), (0.6, "Total")],
                        [(0.1, "Gross"), (0.6, "$180.00")],
                        [(0.1, "Agency Commission"), (0.6, "-$27.00")],
                        [(0.1, "Net"), (0.6, "$153.00")]])
    assert extract_fields([page], DocType.INVOICE).get("total").value == "180.00"


def test_an_article_number_after_vat_is_no_tax():
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.1, "Net total"), (0.6, "2,076.76 €")],
                        [(0.1, "Total"), (0.6, "2,076.76 €")],
                        [(0.1, "French VAT exemption according to articles 262 ter I of CGI")]])
    assert extract_fields([page], DocType.INVOICE).get("tax") is None


@pytest.mark.parametrize("clause, expected", [
    ("The laws of the State of Indiana shall govern this Agreement.", "Indiana"),
    ("THIS AGREEMENT SHALL BE GOVERNED BY THE LAWS OF THE STATE OF DELAWARE WITHOUT GIVING EFFECT TO", "Delaware"),
    ("This Agreement is governed by the laws of the United States and State of Minnesota applicable", "Minnesota"),
    ("This Agreement shall be governed by the laws of the State of New York.", "New York"),
])
def test_governing_law_before_its_verb_in_capitals_or_after_the_united_states(clause, expected):
    from docingest.stages.extract import extract_fields

    page = _table_page([[(0.1, "MUTUAL NONDISCLOSURE AGREEMENT")], [(0.1, clause)]])
    assert extract_fields([page], DocType.CONTRACT).get("jurisdiction").value == expected
