"""Durable, incremental runs of the real CLI: a SIGKILL at any moment loses nothing and
publishes nothing torn, a rerun redoes nothing and changes nothing, bad uploads never hold good
documents back, and one run at a time writes an output folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docingest.outdir import OutLayout, OutputLock
from docingest.published import run_table_rows
from factories import bomb_png, text_pdf, truncated_pdf
from outputs import latest_manifest, snapshot

ROOT = Path(__file__).resolve().parents[1]


def published_run_dirs(out: Path) -> list[Path]:
    return OutLayout(out).published_runs()


def stored_results(out: Path) -> list[Path]:
    return list((out / "_state" / "results").glob("*/*/*.json.gz"))


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    """The CLI in its own process group (a kill takes its Prefect server too) with its own
    Prefect home, apart from this test process's server."""
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-cli"))
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_run(source: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "docingest.cli", "run", str(source), "--out", str(out), "--no-progress", *extra]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def kill_when(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    """SIGKILL the run's whole process group as soon as ``ready()`` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before the kill point:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def inbox(tmp_path_factory, samples_dir) -> Path:
    folder = tmp_path_factory.mktemp("inbox")
    shutil.copytree(samples_dir / "documents", folder / "samples")
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, inbox, cli_env) -> tuple[Path, dict]:
    """An uninterrupted run: what every interrupted one must end up publishing."""
    out = tmp_path_factory.mktemp("reference")
    code, output = finish(start_run(inbox, out, cli_env, "--workers", "2"))
    assert code == 0, output
    manifest = latest_manifest(out)
    assert manifest["documents"] == {"processed": 15, "reused": 0}
    return out, snapshot(out, manifest["run_id"])


def test_a_run_killed_while_processing_loses_only_documents_in_flight_and_resumes(tmp_path, inbox, cli_env,
                                                                                   reference):
    out = tmp_path / "out"
    proc = start_run(inbox, out, cli_env, "--workers", "1")
    kill_when(proc, lambda: len(stored_results(out)) >= 3)
    finished = len(stored_results(out))
    assert 3 <= finished < 13
    # Nothing published, nothing torn: no run folder, no table file anywhere a reader looks.
    assert published_run_dirs(out) == [] and not (out / "runs").exists()
    assert not [p for p in out.rglob("*.parquet")]

    code, output = finish(start_run(inbox, out, cli_env, "--workers", "2"))
    assert code == 0, output
    manifest = latest_manifest(out)
    # The finished documents were not processed again.
    assert manifest["documents"]["reused"] >= finished and sum(manifest["documents"].values()) == 15
    assert snapshot(out, manifest["run_id"]) == reference[1]


def test_a_run_killed_while_writing_its_tables_publishes_nothing_and_the_rerun_equals_an_uninterrupted_one(
        tmp_path, inbox, cli_env, reference):
    out = tmp_path / "out"
    staging = out / "_state" / "staging"
    proc = start_run(inbox, out, cli_env, "--workers", "2")
    # The staged documents table exists once every table is written; the batch gate runs next.
    kill_when(proc, lambda: any(staging.glob("*/documents.parquet")))
    assert list(staging.glob("*/documents.parquet")), "the kill came after the run was published"
    assert published_run_dirs(out) == [] and not (out / "runs").exists()
    assert not (out / "quarantine").exists()
    assert len(stored_results(out)) == 15

    code, output = finish(start_run(inbox, out, cli_env, "--workers", "2"))
    assert code == 0, output
    assert "recovered: removed the staging folder of unfinished run" in output
    manifest = latest_manifest(out)
    assert manifest["documents"] == {"processed": 0, "reused": 15}
    assert manifest["all_inputs_accounted_for"] is True
    assert len(published_run_dirs(out)) == 1 and not any(staging.iterdir())
    assert not [p for p in out.rglob(".*.tmp")]
    assert snapshot(out, manifest["run_id"]) == reference[1]
    # Only the finished run's Data Docs are left.
    assert [p.name for p in (out / "data_docs").iterdir()] == [manifest["run_id"]]


def test_the_same_folder_again_processes_nothing_and_publishes_the_same(reference, inbox, cli_env):
    out, first = reference
    code, output = finish(start_run(inbox, out, cli_env, "--workers", "2"))
    assert code == 0, output
    assert "0 processed, 15 reused" in output
    manifest = latest_manifest(out)
    assert manifest["documents"] == {"processed": 0, "reused": 15}
    again = snapshot(out, manifest["run_id"])
    assert again == first
    # No document became a duplicate of itself, nor of any other copy of it published earlier.
    doc_ids = {d[0] for d in again["documents"]}
    for doc_id, rule_id, passed, message in again["rule_results"]:
        if rule_id == "duplicates.invoice" and not passed:
            assert f"duplicate of {doc_id}" not in message and "earlier run" not in message, message
    assert all(d[3] == "" or d[3] in doc_ids for d in again["documents"])


def test_a_changed_processing_setting_reprocesses(tmp_path):
    from docingest.cli import main

    source = tmp_path / "in"
    source.mkdir()
    text_pdf(source / "invoice.pdf", ["ACME Supplies GmbH", "Invoice Number: INV-7", "Total 119.00 EUR"])
    text_pdf(source / "note.pdf", ["Meeting notes", "nothing to extract here at all"])
    out = tmp_path / "out"
    runs = [("--workers", "1"), ("--workers", "2"), ("--dpi", "150"), ("--dpi", "150", "--ocr", "tesseract"),
            ("--dpi", "150", "--ocr", "tesseract", "--reprocess")]
    processed = []
    for extra in runs:
        assert main(["run", str(source), "--out", str(out), "--no-progress", *extra]) == 0
        processed.append(latest_manifest(out)["documents"]["processed"])
    # Workers change nothing a document reads; dpi and the OCR engine do; --reprocess forces all.
    assert processed == [2, 0, 2, 2, 2]
    key = latest_manifest(out)["processing_key"]
    assert key["components"]["ocr"] == "tesseract" and key["components"]["preprocess"]["dpi"] == 150
    # Results stored under keys no longer in use are dropped.
    assert [p.name for p in (out / "_state" / "results").iterdir()] == [key["digest"]]


def test_good_documents_are_published_beside_bad_uploads(tmp_path):
    from docingest.cli import main

    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    for i in range(3):
        text_pdf(inbox / f"good-{i}.pdf", ["ACME Supplies GmbH", f"Invoice Number: INV-{i}",
                                           "Invoice Date: 2026-10-01", "Total 119.00 EUR"])
    truncated_pdf(inbox / "corrupt.pdf", inbox / "good-0.pdf")
    text_pdf(inbox / "encrypted.pdf", ["secret"], encrypt="pw")
    (inbox / "empty.pdf").write_bytes(b"")
    (inbox / "report.docx").write_bytes(b"PK\x03\x04 a zip, not a document")
    bomb_png(inbox / "bomb.png")
    (inbox / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
    assert main(["run", str(inbox), "--out", str(out), "--no-progress", "--workers", "2"]) == 0
    manifest = latest_manifest(out)
    assert manifest["published"] is True
    assert manifest["failure_causes"] == {"input": 6}
    assert any("rejected for their own defects" in w for w in manifest["batch_gate"]["warnings"])
    failures = {Path(f["source_path"]).name: f for f in run_table_rows(out, "failures", manifest["run_id"])}
    expected = {"corrupt.pdf": "corrupt_document", "encrypted.pdf": "encrypted_pdf", "empty.pdf": "empty_file",
                "report.docx": "unsupported_file_type", "bomb.png": "decompression_bomb",
                "photo.jpg": "corrupt_document"}
    assert {name: f["error_kind"] for name, f in failures.items()} == expected
    assert all(len(f["message"]) > 10 for f in failures.values())
    documents = {Path(d["source_path"]).name: d for d in run_table_rows(out, "documents", manifest["run_id"])}
    assert {n for n, d in documents.items() if d["status"] != "failed"} == {f"good-{i}.pdf" for i in range(3)}
    assert {d["failure_cause"] for n, d in documents.items() if n in expected} == {"input"}

    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    for name in ("corrupt.pdf", "empty.pdf", "report.docx"):
        shutil.copy(inbox / name, only_bad / name)
    assert main(["run", str(only_bad), "--out", str(tmp_path / "out2"), "--no-progress"]) == 0
    manifest = latest_manifest(tmp_path / "out2")
    assert manifest["published"] is True
    assert len(run_table_rows(tmp_path / "out2", "failures", manifest["run_id"])) == 3


def test_a_second_run_into_the_same_output_folder_is_refused_while_one_runs(tmp_path, cli_env):
    source = tmp_path / "in"
    source.mkdir()
    text_pdf(source / "invoice.pdf", ["ACME Supplies GmbH", "Invoice Number: INV-7", "Total 119.00 EUR"])
    out = tmp_path / "out"
    with OutputLock(out):
        t0 = time.monotonic()
        code, output = finish(start_run(source, out, cli_env))
        assert code == 2, output
        assert "is in use by another run" in output and f'"pid": {os.getpid()}' in output
        assert time.monotonic() - t0 < 60  # refused before Prefect starts
    assert not (out / "published").exists()
    code, output = finish(start_run(source, out, cli_env))
    assert code == 0, output


def test_two_runs_started_together_run_one_after_the_other(tmp_path, cli_env):
    """One invoice sent twice (other bytes, same vendor and number) arrives in two folders, and
    two runs into one OUT start at once: one runs, the other is refused. Run again, the second
    copy finds the first one published and names it as its original."""
    lines = ["Nordlicht Bürobedarf GmbH", "Hafenstraße 12, 20457 Hamburg", "Invoice Number: NB-2026-0415",
             "Invoice Date: 2026-10-01", "Bill to: Muster & Partner GmbH", "Subtotal 100.00", "VAT 19% 19.00",
             "Total 119.00 EUR"]
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    a.mkdir(), b.mkdir()
    text_pdf(a / "inv.pdf", lines)
    text_pdf(b / "inv-resent.pdf", lines + ["Sent again on request"])
    runs = {"a": start_run(a, out, cli_env), "b": start_run(b, out, cli_env)}
    results = {name: finish(proc) for name, proc in runs.items()}
    assert sorted(code for code, _ in results.values()) == [0, 2], results
    refused = next(name for name, (code, _) in results.items() if code == 2)
    assert "is in use by another run" in results[refused][1]
    code, output = finish(start_run(a if refused == "a" else b, out, cli_env))
    assert code == 0, output
    first, second = published_run_dirs(out)
    original = run_table_rows(out, "documents", first.name)[0]
    rules = [r for r in run_table_rows(out, "rule_results", second.name) if r["rule_id"] == "duplicates.invoice"]
    assert len(rules) == 1 and not rules[0]["passed"]
    assert f"duplicate of {original['doc_id']}" in rules[0]["message"], rules
