"""The flow once, end to end through Prefect: samples plus every kind of bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from factories import bomb_png, text_pdf, truncated_pdf

TABLES = ["documents", "pages", "fields", "line_items", "rule_results", "review_queue", "failures"]


def _table(out: Path, name: str) -> list[dict]:
    files = sorted(out.glob(f"published/run_date=*/*/{name}.parquet"))
    assert len(files) == 1, (name, files)
    return pq.read_table(files[0]).to_pylist()


@pytest.fixture(scope="module")
def run(tmp_path_factory, samples_dir):
    from docingest.config import Settings
    from docingest.flows.ingest import run_ingest

    inbox = tmp_path_factory.mktemp("inbox")
    shutil.copytree(samples_dir / "documents", inbox / "samples")
    bad = inbox / "bad"
    bad.mkdir()
    good = text_pdf(bad / "good.pdf", ["Invoice Number: X-1", "Total 10.00"])
    truncated_pdf(bad / "truncated.pdf", good)
    text_pdf(bad / "encrypted.pdf", ["secret"], encrypt="pw")
    (bad / "zero.pdf").write_bytes(b"")
    (bad / "report.docx").write_bytes(b"PK\x03\x04 a zip, not a document")
    bomb_png(bad / "bomb.png")
    out = tmp_path_factory.mktemp("out")
    summary = run_ingest(inbox, out, Settings(workers=2, show_progress=False))
    return inbox, out, summary


def test_every_input_is_accounted_for_exactly_once(run):
    inbox, out, summary = run
    inputs = sorted(str(p) for p in inbox.rglob("*") if p.is_file())
    documents = _table(out, "documents")
    accounted = sorted(p for d in documents for p in d["source_paths"])
    assert accounted == inputs
    assert all(d["status"] in {"accepted", "needs_review", "failed"} for d in documents)
    manifest = json.loads(Path(summary.manifest).read_text())
    assert manifest["all_inputs_accounted_for"] is True
    assert manifest["inputs"]["files"] == len(inputs)
    assert manifest["inputs"]["duplicate_files"] == 1
    assert sum(manifest["counts"].values()) == len(documents)
    for table in TABLES:
        assert manifest["files_written"][table]["rows"] == len(_table(out, table))


def test_each_bad_input_is_a_failures_row_with_a_clear_message(run):
    _, out, _ = run
    failures = {Path(f["source_path"]).name: f for f in _table(out, "failures")}
    expected = {
        "truncated.pdf": ("corrupt_document", "cannot open PDF"),
        "upload-corrupt.pdf": ("corrupt_document", "cannot open PDF"),
        "encrypted.pdf": ("encrypted_pdf", "encrypted"),
        "zero.pdf": ("empty_file", "empty"),
        "report.docx": ("unsupported_file_type", "unsupported file type .docx"),
        "bomb.png": ("decompression_bomb", "decompression bomb"),
    }
    for name, (kind, words) in expected.items():
        assert failures[name]["error_kind"] == kind, failures[name]
        assert words in failures[name]["message"]
        assert failures[name]["run_id"]
    statuses = {Path(d["source_path"]).name: d["status"] for d in _table(out, "documents")}
    for name in expected:
        assert statuses[name] == "failed"
    assert statuses["good.pdf"] != "failed"
    assert statuses["invoice-en-001.pdf"] != "failed"


def test_good_documents_complete_with_fields_and_review_reasons(run):
    _, out, summary = run
    documents = _table(out, "documents")
    by_name = {Path(d["source_path"]).name: d for d in documents}
    inv = by_name["invoice-en-001.pdf"]
    assert inv["doc_type"] == "invoice" and 0 <= inv["doc_type_confidence"] <= 1
    fields = [f for f in _table(out, "fields") if f["doc_id"] == inv["doc_id"]]
    assert {f["field_name"]: f["value"] for f in fields}["total"] == "342.07"
    assert all(f["source"] == "text_layer" and len(f["bbox"]) == 4 for f in fields)
    queue = {q["doc_id"] for q in _table(out, "review_queue")}
    for d in documents:
        assert (d["status"] == "needs_review") == (d["doc_id"] in queue)
        if d["status"] == "needs_review":
            assert d["review_reasons"]
    assert {p["text_source"] for p in _table(out, "pages")} == {"text_layer", "ocr"}


def test_cli_exit_codes(tmp_path, samples_dir):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    cmd = [sys.executable, "-m", "docingest.cli", "run", str(samples_dir / "documents" / "digital"),
           "--out", str(blocker / "out"), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not writable" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "docingest.cli", "run", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "docingest.cli", "run", "x", "--out", "y",
                           "--renderer", "magic"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    # Serving needs a Prefect server that keeps the deployment and its schedule.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    proc = subprocess.run([sys.executable, "-m", "docingest.cli", "serve", str(samples_dir), "--out",
                           str(tmp_path / "o"), "--name", "n"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "prefect server start" in proc.stderr
