"""Hostile inputs (issue 21): no single input can crash, hang or fool a run.

The folder test runs the generated catalogue (tests/hostile.py) beside good documents through
``docingest run`` with routing thresholds at zero, so that good documents are accepted and each
bad input must be stopped by its own failure or review reason, not by a strict threshold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from docingest.config import InputLimits, Settings
from docingest.pipeline import process_document
from docingest.samples import INVOICES, _invoice_pdf
from docingest.stages.discover import discover, display_path, sniff_media_type
from docingest.stages.render import _safe_scale
from docingest.writer import RunWriter
from docingest.schemas.records import (
    Classification,
    DocumentResult,
    Extraction,
    ExtractedValue,
    LineItem,
    Status,
)
from docingest.schemas.fields import DocType
from hostile import _doctored, _invisible_number, _outside_number, _tiny_number, _white_number, generate
from outputs import latest_manifest

ROOT = Path(__file__).resolve().parents[1]
PERMISSIVE = {"DOCINGEST_ROUTING__MIN_FIELD_CONFIDENCE": "0", "DOCINGEST_ROUTING__MIN_DOCUMENT_CONFIDENCE": "0",
              "DOCINGEST_ROUTING__MIN_CLASSIFICATION_CONFIDENCE": "0"}


@contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging: the code under test runs in this process."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _permissive() -> Settings:
    return Settings(show_progress=False, workers=1, routing={"min_field_confidence": 0, "min_document_confidence": 0,
                                                             "min_classification_confidence": 0})


def _process(path: Path, settings: Settings, engines) -> DocumentResult:
    docs, rejected = discover(path)
    assert not rejected and len(docs) == 1
    return process_document(docs[0], settings, engines)


# -- the whole catalogue through `docingest run` ---------------------------------------------------
def test_hostile_folder_beside_good_documents(tmp_path, samples_dir):
    source = tmp_path / "source"
    expected = generate(source / "bad")
    assert len(expected) >= 40
    shutil.copytree(samples_dir / "documents" / "digital", source / "good")
    good = {str(p.resolve()) for p in (source / "good").iterdir()}
    out = tmp_path / "out"
    env = {**os.environ, **PERMISSIVE}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "docingest.cli", "run", str(source), "--out", str(out),
                           "--no-progress", "--workers", "2"],
                          capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    manifest = latest_manifest(out)
    assert manifest["published"] is True
    assert manifest["all_inputs_accounted_for"] is True
    run_dir = out / manifest["files_written"]["documents"]["path"].rsplit("/", 1)[0]
    documents = pq.read_table(run_dir / "documents.parquet").to_pylist()
    failures = pq.read_table(run_dir / "failures.parquet").to_pylist()
    rows_by_path: dict[str, list[dict]] = {}
    for d in documents:
        for p in d["source_paths"]:
            rows_by_path.setdefault(p, []).append(d)
    kinds: dict[tuple, list[str]] = {}
    for f in failures:
        kinds.setdefault((f["doc_id"], f["source_path"]), []).append(f["error_kind"])

    problems = []
    for path, expectation in expected.items():
        rows = rows_by_path.get(path, [])
        if len(rows) != 1:
            problems.append(f"{path}: {len(rows)} rows")
            continue
        d = rows[0]
        errors = kinds.get((d["doc_id"], d["source_path"]), [])
        seen = f"{d['status']} cause={d['failure_cause']} errors={errors} reasons={d['review_reasons']}"
        ok = d["status"] in ("failed", "needs_review") and "internal_error" not in errors
        ok = ok and (d["status"] != "failed" or (d["failure_cause"] == "input" and errors))
        ok = ok and (d["status"] != "needs_review" or bool(d["review_reasons"]))
        if expectation.startswith("failed:"):
            ok = ok and d["status"] == "failed" and expectation.removeprefix("failed:") in errors
        elif expectation.startswith("review:"):
            ok = ok and d["status"] == "needs_review" and any(
                r.startswith(expectation.removeprefix("review:")) for r in d["review_reasons"])
        elif expectation == "review":
            ok = ok and d["status"] == "needs_review"
        if not ok:
            problems.append(f"{path}: expected {expectation}, got {seen}")
    assert not problems, "\n".join(problems)
    # Every row is an input found exactly once; the good documents pass (so the bar is not
    # what stopped the bad ones).
    all_paths = [p for d in documents for p in d["source_paths"]]
    assert len(all_paths) == len(set(all_paths)) == len(expected) + len(good)
    statuses = {p: d["status"] for d in documents for p in d["source_paths"]}
    assert {statuses[p] for p in good} <= {"accepted", "duplicate"}, {p: statuses[p] for p in good}
    assert sum(statuses[p] == "accepted" for p in good) >= 5
    # Nothing outside the source was read: /etc/passwd's text is in no table.
    fields = pq.read_table(run_dir / "fields.parquet").to_pylist()
    assert not any("root:x:0:0" in (f["value_raw"] or "") for f in fields)
    assert time.monotonic() - started < 600


# -- discovery never blocks and never leaves the source -----------------------------------------------
def test_fifo_socket_and_links_out_of_the_source_are_recorded_not_opened(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    _invoice_pdf(INVOICES[0], source / "good.pdf")
    os.mkfifo(source / "pipe.pdf")
    os.symlink("/dev/zero", source / "zero.pdf")
    os.symlink("/etc/passwd", source / "passwd.pdf")
    os.symlink(source / "good.pdf", source / "link-inside.pdf")
    with time_limit(20):
        docs, rejected = discover(source)
    assert [Path(p).name for d in docs for p in d.paths] == ["good.pdf", "link-inside.pdf"]
    kinds = {Path(r.path).name: r.error.kind for r in rejected}
    assert kinds == {"pipe.pdf": "not_regular_file", "zero.pdf": "symlink_outside_source",
                     "passwd.pdf": "symlink_outside_source"}
    with time_limit(20):
        docs, rejected = discover(source, follow_symlinks=True)
    kinds = {Path(r.path).name: r.error.kind for r in rejected}
    assert kinds == {"pipe.pdf": "not_regular_file", "zero.pdf": "not_regular_file"}
    assert "passwd.pdf" in {Path(p).name for d in docs for p in d.paths}


def test_discovery_reads_no_file_beyond_the_size_limit(tmp_path):
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.7\n")
    os.truncate(big, 50 * 1024 * 1024)
    with time_limit(5):
        docs, rejected = discover(tmp_path, max_file_bytes=1024 * 1024)
    assert not docs and rejected[0].error.kind == "file_too_large"


def test_non_utf8_name_is_that_document_only(tmp_path):
    name = os.fsencode(str(tmp_path)) + b"/rechnung-\xe4.pdf"
    _invoice_pdf(INVOICES[0], Path(os.fsdecode(name)))
    _invoice_pdf(INVOICES[1], tmp_path / "fine.pdf")
    docs, rejected = discover(tmp_path)
    assert [d.name for d in docs] == ["fine.pdf"]
    assert len(rejected) == 1 and rejected[0].error.kind == "non_utf8_name"
    assert rejected[0].path == display_path(os.fsdecode(name)) and rejected[0].path.endswith("rechnung-\\xe4.pdf")
    rejected[0].path.encode("utf-8")  # storable text


def test_png_with_pdf_marker_is_a_png():
    assert sniff_media_type(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"%PDF-1.7") == "image/png"
    assert sniff_media_type(b"junk before the header %PDF-1.4\n") == "application/pdf"


def test_huge_page_scale_fits_the_pixel_limit():
    limits = InputLimits()
    for size in [(20_000, 20_000), (14_400, 14_400), (200, 14_400), (12_345.6, 9_876.5)]:
        scale = _safe_scale(size, 200, limits)
        import math
        assert math.ceil(size[0] * scale) * math.ceil(size[1] * scale) <= limits.max_image_pixels


# -- what you see is what is read ----------------------------------------------------------------
@pytest.mark.parametrize("doctor", [_invisible_number, _white_number, _outside_number, _tiny_number],
                         ids=["render-mode-3", "white-on-white", "outside-crop-box", "tiny"])
def test_doctored_text_layer_is_not_read_and_not_accepted(tmp_path, engines, doctor):
    settings = _permissive()
    clean = _process(_invoice_pdf(INVOICES[0], tmp_path / "clean.pdf") or tmp_path / "clean.pdf", settings, engines)
    assert clean.status == Status.ACCEPTED, clean.review_reasons  # the bar itself lets it through
    _doctored(doctor)(tmp_path / "doctored.pdf")
    result = _process(tmp_path / "doctored.pdf", settings, engines)
    assert result.status == Status.NEEDS_REVIEW
    assert any(r.startswith("hidden_text_layer") for r in result.review_reasons), result.review_reasons
    assert result.extraction.get("invoice_number").value == INVOICES[0].invoice_number
    assert result.extraction.get("total").value == clean.extraction.get("total").value
    assert result.pages[0].hidden_words >= 3


def test_white_text_on_a_dark_band_is_visible(tmp_path, engines):
    def banner(c, width, height):
        c.saveState()
        c.setFillColorRGB(0.1, 0.1, 0.3)
        c.rect(40, 40, width - 80, 24, fill=1)
        c.setFillColorRGB(1, 1, 1)
        c.setFont("Helvetica", 10)
        c.drawString(50, 48, "Thank you - questions: billing desk 555 0100")
        c.restoreState()

    _doctored(banner)(tmp_path / "banner.pdf")
    result = _process(tmp_path / "banner.pdf", _permissive(), engines)
    assert result.pages[0].hidden_words == 0
    assert not any(r.startswith("hidden_text_layer") for r in result.review_reasons)


def test_pdf_with_data_after_its_end_goes_to_review(tmp_path, engines):
    path = tmp_path / "polyglot.pdf"
    _invoice_pdf(INVOICES[0], path)
    path.write_bytes(path.read_bytes() + b"PK\x03\x04" + b"\x00" * 64)
    result = _process(path, _permissive(), engines)
    assert result.status == Status.NEEDS_REVIEW
    assert any(r.startswith("pdf_trailing_data") for r in result.review_reasons)


# -- cost bounds -----------------------------------------------------------------------------------------
def test_sixty_blank_pages_take_bounded_time(tmp_path, engines):
    from reportlab.pdfgen import canvas

    path = tmp_path / "blank.pdf"
    c = canvas.Canvas(str(path))
    for _ in range(60):  # a white rectangle: the page draws something, so it is rendered
        c.setFillColorRGB(1, 1, 1)
        c.rect(0, 0, 595, 842, fill=1, stroke=0)
        c.showPage()
    c.save()
    started = time.monotonic()
    with time_limit(120):
        result = _process(path, Settings(show_progress=False), engines)
    seconds = time.monotonic() - started
    assert result.page_count == 60 and len(result.pages) == 60
    assert all(p.strategy_reason.startswith("blank page") for p in result.pages)
    assert result.status == Status.NEEDS_REVIEW and not result.errors
    assert seconds < 30, seconds  # RapidOCR on 60 blank pages: about 140 s here


def test_document_and_ocr_page_limits(tmp_path, engines, samples_dir):
    from PIL import Image

    scan = Image.open(samples_dir / "documents" / "scanned" / "invoice-en-001-scan.png").convert("RGB")
    path = tmp_path / "three-pages.tiff"
    scan.save(path, format="TIFF", save_all=True, append_images=[scan, scan])
    limited = Settings(show_progress=False, limits={"max_ocr_pages": 1})
    result = _process(path, limited, engines)
    assert [e.kind for e in result.errors] == ["ocr_page_limit"]
    assert result.status == Status.NEEDS_REVIEW
    assert sum(p.text_source is not None and p.word_count > 0 for p in result.pages) == 1
    assert "OCR limit" in result.pages[1].strategy_reason
    quick = Settings(show_progress=False, limits={"max_document_seconds": 0.001})
    result = _process(path, quick, engines)
    assert "time_limit" in [e.kind for e in result.errors]
    assert len(result.pages) < 3


# -- the writer never fails a run for one document ----------------------------------------------------
def test_a_value_the_tables_cannot_hold_fails_that_document_only(tmp_path):
    now = datetime.now(timezone.utc)

    def result(doc_id: str, amount: str) -> DocumentResult:
        return DocumentResult(
            doc_id=doc_id, source_path=f"/in/{doc_id}.pdf", source_paths=[f"/in/{doc_id}.pdf"],
            classification=Classification(doc_type=DocType.INVOICE, confidence=0.9),
            extraction=Extraction(doc_type=DocType.INVOICE, values=[
                ExtractedValue(field_name="total", value_raw=amount, value=amount, confidence=0.9)],
                line_items=[LineItem(line_no=1, amount=amount)]),
            status=Status.NEEDS_REVIEW, review_reasons=["x"], processed_at=now)

    writer = RunWriter(tmp_path, "20260101T000000Z-test", "2026-01-01")
    counts = writer.stage([result("a" * 64, "12.50"), result("b" * 64, "1" + "0" * 15), result("c" * 64, "1.00")])
    documents = {d["doc_id"][0]: d for d in writer.read_staged("documents").to_pylist()}
    assert counts["documents"] == 3
    assert documents["b"]["status"] == "failed" and documents["b"]["review_reasons"] == ["write:unstorable_result"]
    assert documents["a"]["status"] == documents["c"]["status"] == "needs_review"
    failures = writer.read_staged("failures").to_pylist()
    assert [f["error_kind"] for f in failures] == ["unstorable_result"]
    assert {li["doc_id"][0] for li in writer.read_staged("line_items").to_pylist()} == {"a", "c"}


# -- bad arguments: one line, exit 2 -------------------------------------------------------------------
@pytest.mark.parametrize("flags,env", [
    (["--dpi", "5"], {}), (["--dpi", "0"], {}), (["--workers", "65"], {}), (["--workers", "0"], {}),
    ([], {"DOCINGEST_LIMITS__MAX_PAGES": "many"}), ([], {"DOCINGEST_ROUTING__MIN_FIELD_CONFIDENCE": "2"}),
    ([], {"DOCINGEST_LIMITS__MAX_DOCUMENT_SECONDS": "-1"}),
])
def test_bad_settings_are_one_line_and_exit_2(tmp_path, samples_dir, flags, env):
    proc = subprocess.run([sys.executable, "-m", "docingest.cli", "run", str(samples_dir), "--out", str(tmp_path / "o"),
                           *flags], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid setting"), proc.stderr


# -- a killed run leaves nothing running ----------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_run_leaves_no_prefect_server_or_worker_process_behind(tmp_path, samples_dir):
    """15 sample documents: the run uses worker processes (runner auto). SIGKILLed while they
    read the scans, nothing of the run may stay: not its server, not its workers."""
    run = subprocess.Popen([sys.executable, "-m", "docingest.cli", "run", str(samples_dir), "--out", str(tmp_path / "o"),
                            "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children_running(marker: bytes) -> list[int]:
        return [c for c in _children(run.pid) if marker in Path(f"/proc/{c}/cmdline").read_bytes()]

    try:
        deadline, servers, workers = time.monotonic() + 120, [], []
        while time.monotonic() < deadline and not (servers and workers):
            servers = servers or children_running(b"uvicorn")
            workers = workers or children_running(b"multiprocessing.spawn")
            time.sleep(0.2)
        assert servers, "the run started no ephemeral Prefect server"
        assert workers, "the run started no worker processes"
        time.sleep(1)
    finally:
        run.kill()  # SIGKILL: no handler of the run gets to stop its server or its workers
        run.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in servers + workers):
        time.sleep(0.2)
    assert not any(_alive(s) for s in servers), "the ephemeral server outlived its run"
    assert not any(_alive(w) for w in workers), "a worker process outlived its run"
