"""Classify and extract on the generated samples, called as plain functions (no Prefect)."""

from __future__ import annotations

import json

import pytest

from docingest.evaluate import values_match
from docingest.pipeline import process_document
from docingest.stages.discover import discover
from docingest.schemas import Status, TextSource


def _labels(samples_dir):
    return [json.loads(l) for l in (samples_dir / "labels.jsonl").read_text().splitlines()]


def _digital(samples_dir):
    return [l for l in _labels(samples_dir) if l["source_set"] == "samples-digital"]


@pytest.mark.parametrize("index", range(7))
def test_born_digital_samples_are_read_right(samples_dir, settings, engines, index):
    label = _digital(samples_dir)[index]
    docs, _ = discover(samples_dir / label["path"])
    result = process_document(docs[0], settings, engines)
    assert result.classification.doc_type.value == label["doc_type"]
    assert result.pages[0].text_source == TextSource.TEXT_LAYER
    predicted: dict[str, list[str]] = {}
    for v in result.extraction.values:
        predicted.setdefault(v.field_name, []).append(v.value)
        assert v.page == 1 and v.bbox is not None and 0 <= v.confidence <= 1
    for name, expected in label["fields"].items():
        if name == "vendor_address":
            continue  # multi-line addresses are joined differently; scored in eval only
        if isinstance(expected, list):
            assert sorted(predicted.get(name, [])) == sorted(expected), name
        else:
            assert values_match(name, (predicted.get(name) or [None])[0], expected), (name, predicted.get(name))
    for item, expected in zip(result.extraction.line_items, label.get("line_items", [])):
        assert item.amount == expected["amount"]


def test_scanned_receipt_is_read_by_ocr(samples_dir, settings, engines):
    label = next(l for l in _labels(samples_dir) if l["path"].endswith("receipt-001-scan.jpg"))
    docs, _ = discover(samples_dir / label["path"])
    result = process_document(docs[0], settings, engines)
    assert result.pages[0].text_source == TextSource.OCR
    assert "OCR with rapidocr" in result.pages[0].strategy_reason
    assert result.classification.doc_type.value == "receipt"
    got = {v.field_name: v for v in result.extraction.values}
    for name in ("total", "invoice_date", "subtotal"):
        assert values_match(name, got[name].value, label["fields"][name]), name
        assert got[name].source == TextSource.OCR and got[name].grounded


def test_a_page_error_is_recorded_and_never_passes_as_success(tmp_path, settings, engines):
    from PIL import Image

    frames = [Image.new("RGB", (800, 1000), "white"), Image.new("RGB", (8, 8), "white")]
    frames[0].save(tmp_path / "two.tiff", save_all=True, append_images=frames[1:])
    docs, _ = discover(tmp_path / "two.tiff")
    result = process_document(docs[0], settings, engines)
    assert result.page_count == 2
    assert [(e.kind, e.page) for e in result.errors] == [("image_too_small", 2)]
    assert result.status != Status.ACCEPTED


def test_a_scan_with_a_garbled_ocr_layer_is_read_again_by_ocr(tmp_path, samples_dir, settings, engines):
    """A scanner's invisible OCR layer full of noise has plenty of words: the word count alone
    would trust it. Its words are not word-shaped, so the page is OCRed and the OCR kept."""
    from PIL import Image
    from reportlab.pdfgen import canvas

    label = next(l for l in _labels(samples_dir) if l["path"].endswith("invoice-en-001-scan.png"))
    scan = samples_dir / label["path"]
    width, height = Image.open(scan).size
    pdf = tmp_path / "scanned-with-garbled-layer.pdf"
    page = canvas.Canvas(str(pdf), pagesize=(width * 72 / 150, height * 72 / 150))
    page.drawImage(str(scan), 0, 0, width * 72 / 150, height * 72 / 150)
    layer = page.beginText(40, height * 72 / 150 - 60)
    layer.setTextRenderMode(3)  # invisible, as scanners embed their OCR
    for line in ["lNVoiCE rcdTwr $cchllllilq DrrD Effinrll", "SlaUon oilred or Fqrtded grler ty llrs S&rdalr",
                 "8roaffiGrcsp. {.hBy Sd!.Fron Bry Tohtu0pt{,FhH*hh(E0a", "ToTaL 3O-PaVme* ii dre rd,ttrln 30 &f"]:
        layer.textLine(line)
    page.drawText(layer)
    page.save()

    docs, _ = discover(pdf)
    result = process_document(docs[0], settings, engines)
    info = result.pages[0]
    assert info.text_source == TextSource.OCR and "garbled" in info.strategy_reason, info.strategy_reason
    assert result.classification.doc_type.value == "invoice"
    total = next(v for v in result.extraction.values if v.field_name == "total")
    assert values_match("total", total.value, label["fields"]["total"])


def test_legible_words_are_word_shaped_whatever_the_language_or_code():
    from docingest.stages.legibility import is_legible, legible_share

    for word in ["Rechnung", "Lieferantenstraße", "Id.-Nr.:", "DE123456789", "7:48AM", "3rd", "c/o",
                 "(4),Mo,Tu,We,Th,Fr", "1.234,56", "O'Neil"]:
        assert is_legible(word), word
    for word in ["SlaUon", "fIttN", "8roaffiGrcsp", "ltronrUnorucdHrofe@EnD", "{.hBy"]:
        assert not is_legible(word), word
    assert is_legible("—") is None and legible_share([]) == 1.0
    assert legible_share(["Total", "SlaUon", "—"]) == 0.5


def test_the_shipped_calibration_holds_a_kind_of_document_measured_unreliable(samples_dir, settings, engines):
    from dataclasses import replace

    from docingest.stages.calibrate import load_table
    from docingest.schemas.calibration import DocumentCount

    label = next(l for l in _digital(samples_dir) if l["doc_type"] == "invoice")
    docs, _ = discover(samples_dir / label["path"])
    table = load_table(settings.calibration_file)
    assert table is not None and table.documents, "the shipped table measures documents"
    table.documents["invoice|text_layer"] = DocumentCount(n=20, right=15)
    result = process_document(docs[0], settings, replace(engines, calibration=table))
    assert "unproven_document_reliability:invoice|text_layer:0.57:n20" in result.review_reasons
    assert result.reliability.n == 20 and result.reliability.lower_bound == 0.5678
    assert result.status == Status.NEEDS_REVIEW
