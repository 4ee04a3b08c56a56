"""Classify and extract on the generated samples, called as plain functions (no Prefect)."""

from __future__ import annotations

import json

import pytest

from docingest.evaluate import values_match
from docingest.pipeline import process_document
from docingest.stages.discover import discover
from schemas import Status, TextSource


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
