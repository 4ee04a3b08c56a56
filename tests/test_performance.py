"""What makes runs fast without changing what they publish: the runner choice, worker
processes (and what happens when one dies), OCR built only when a page needs it, the command's
own Prefect server. The speed itself is measured by benchmarks/throughput.py."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from docingest.config import RunnerName, Settings
from docingest.errors import WorkerCrashed
from docingest.pipeline import build_engines, process_document
from docingest.schemas.records import SourceDocument, Status
from docingest.stages.discover import discover


def _document(path: Path) -> SourceDocument:
    documents, rejected = discover(path)
    assert not rejected and len(documents) == 1
    return documents[0]


def test_auto_uses_worker_processes_for_a_local_batch_and_threads_otherwise():
    from docingest.tasks.runners import PROCESS_MIN_DOCUMENTS, choose_runner

    local = Settings(workers=2)
    assert local.runner == RunnerName.AUTO
    assert choose_runner(local, PROCESS_MIN_DOCUMENTS) == RunnerName.PROCESS
    # Starting processes costs more than a handful of documents gain from them.
    assert choose_runner(local, PROCESS_MIN_DOCUMENTS - 1) == RunnerName.THREAD
    # One worker: nothing to run beside it.
    assert choose_runner(Settings(workers=1), 1000) == RunnerName.THREAD
    # A VLM run waits on its endpoint: threads.
    vlm = Settings(workers=2, extractor="vlm", vlm_model="m")
    assert choose_runner(vlm, 1000) == RunnerName.THREAD
    # An explicit runner is used as it is.
    assert choose_runner(Settings(workers=2, runner="thread"), 1000) == RunnerName.THREAD
    assert choose_runner(Settings(workers=2, runner="process"), 1) == RunnerName.PROCESS


def test_a_born_digital_document_never_builds_the_ocr_engine(samples_dir, settings):
    engines = build_engines(settings)
    result = process_document(_document(samples_dir / "documents/digital/invoice-en-001.pdf"), settings, engines)
    assert result.status != Status.FAILED
    assert not engines.ocr.built
    scan = process_document(_document(samples_dir / "documents/scanned/invoice-en-001-scan.png"), settings, engines)
    assert scan.status != Status.FAILED and engines.ocr.built
    assert scan.pages[0].text_source.value == "ocr"


def test_worker_processes_give_the_results_of_this_process(samples_dir, settings):
    from docingest.workers import DocumentWorkers

    engines = build_engines(settings)
    paths = [samples_dir / "documents/digital/invoice-en-001.pdf", samples_dir / "documents/scanned/receipt-001-scan.jpg"]
    workers = DocumentWorkers(settings, 2)
    try:
        for path in paths:
            doc = _document(path)
            there, here = workers.process(doc), process_document(doc, settings, engines)
            assert there.model_dump(exclude={"processed_at", "duration_ms", "stage_ms", "pages"}) == \
                here.model_dump(exclude={"processed_at", "duration_ms", "stage_ms", "pages"})
            assert [p.text_source for p in there.pages] == [p.text_source for p in here.pages]
    finally:
        workers.close()


def test_a_worker_that_dies_fails_its_documents_as_transient_and_the_next_ones_run(samples_dir, settings):
    """A segfault in a PDF library or the OOM killer takes a worker down: the documents it had
    are retried (WorkerCrashed is transient), and the pool is replaced for the rest."""
    from docingest.errors import is_transient
    from docingest.workers import DocumentWorkers

    workers = DocumentWorkers(settings, 1)
    slow = _document(samples_dir / "documents/scanned/form-loan-001-scan.tiff")  # OCR: seconds
    outcome: list = []

    def process() -> None:
        try:
            outcome.append(workers.process(slow))
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    try:
        thread = threading.Thread(target=process)
        thread.start()
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while not (pids and workers._shared.ready.value) and time.monotonic() < deadline:
            pids = list(workers._pool._processes or {})  # it exists once it has work
            time.sleep(0.05)
        time.sleep(1.0)  # ready, and reading the scan now
        os.kill(pids[0], signal.SIGKILL)
        thread.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], WorkerCrashed) and is_transient(outcome[0])
        after = workers.process(_document(samples_dir / "documents/digital/receipt-001.pdf"))
        assert after.status != Status.FAILED
    finally:
        workers.close()


def stuck_on_receipts(source, settings, engines):
    """A worker's work (imported by the spawned worker from this module): stuck on receipts,
    as a page of millions of vector paths holds PDFium, the rest processed."""
    if "receipt" in source.name:
        time.sleep(3600)
    return process_document(source, settings, engines)


def test_a_document_stuck_in_a_library_is_given_up_at_the_hard_limit(samples_dir, settings):
    """The time limits are checked between pages; a page stuck inside a library is not. Its
    worker ends itself at the hard limit: that document fails (time_limit, not retried), the
    next one is read by a new worker."""
    from docingest.errors import TimeLimitExceeded, is_transient
    from docingest.workers import DocumentWorkers, hard_limit_seconds

    assert hard_limit_seconds(settings) == settings.limits.max_document_seconds + settings.limits.max_page_seconds + 60
    def waited_too_long(signum, frame):
        raise AssertionError("the stuck document was not given up")

    workers = DocumentWorkers(settings, 1, work=stuck_on_receipts, hard_limit=3)
    previous = signal.signal(signal.SIGALRM, waited_too_long)
    signal.alarm(60)
    try:
        started = time.monotonic()
        with pytest.raises(TimeLimitExceeded) as raised:
            workers.process(_document(samples_dir / "documents/digital/receipt-001.pdf"))
        assert 3 <= time.monotonic() - started < 60 and not is_transient(raised.value)
        assert raised.value.to_record().kind == "time_limit" and "receipt-001.pdf" in str(raised.value)
        after = workers.process(_document(samples_dir / "documents/digital/invoice-en-001.pdf"))
        assert after.status != Status.FAILED
        # What the document's task stores: a failed result with the verdict, not a task failure.
        failed = workers.result(_document(samples_dir / "documents/digital/receipt-001.pdf"))
        assert failed.status == Status.FAILED and [e.kind for e in failed.errors] == ["time_limit"]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for process in list((workers._pool._processes or {}).values()):
            process.kill()  # a worker still stuck (the test failed) would hold close() for an hour
        workers.close()


# A script that starts a run at import and exits, without `if __name__ == "__main__":`. Spawned
# workers import the main module: each runs the script (its own pool cannot start) and exits
# before it is ready.
_UNGUARDED_SCRIPT = """
import os, sys, time
from pathlib import Path
from docingest.config import Settings
from docingest.errors import is_transient
from docingest.stages.discover import discover
from docingest.workers import DocumentWorkers

os.environ.setdefault("SCRIPT_PID", str(os.getpid()))  # the workers inherit it: only this one prints
documents, _ = discover(Path(sys.argv[1]))
workers = DocumentWorkers(Settings(), 2)
for attempt in (1, 2):
    started = time.monotonic()
    try:
        workers.process(documents[0])
        outcome = "processed"
    except Exception as exc:
        outcome = f"{type(exc).__name__} {is_transient(exc)} {time.monotonic() - started:.1f} {exc}"
    if os.environ["SCRIPT_PID"] == str(os.getpid()):
        print(outcome.replace(chr(10), " "), flush=True)
workers.close()
sys.exit(0)
"""


def test_workers_that_cannot_start_fail_their_documents_at_once_not_pool_after_pool(tmp_path, samples_dir):
    """Before: each document's attempt spawned a new pool that died the same way (a transient
    WorkerCrashed, retried), a run of 600 documents spawned pools for minutes."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(samples_dir / "documents/digital/receipt-001.pdf")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 2, done.stdout + done.stderr[-2000:]
    first, second = (line.split(" ", 3) for line in lines)
    assert first[:2] == ["WorkersCannotStart", "False"], lines  # not transient: Prefect does not retry it
    assert "__main__" in first[3]  # the message says what to do
    # The next document fails at once: no new pool is spawned for it.
    assert second[:2] == ["WorkersCannotStart", "False"] and float(second[2]) < 0.5, lines


def test_the_command_starts_its_own_server_only_without_a_configured_api(monkeypatch):
    from docingest.prefect_server import EarlyServer

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert EarlyServer.start() is None  # a configured server is used as it is
    monkeypatch.delenv("PREFECT_API_URL")
    server = EarlyServer.start()
    try:
        server.wait_healthy(120)
        with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
            assert response.status == 200
    finally:
        server.stop()
    assert server.process.poll() is not None
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "/health", timeout=2)


def test_only_the_recorders_retried_flush_at_shutdown_is_quiet():
    """The command's server drops Prefect's ERROR for a periodic flush cancelled by stopping
    (its events are retried and written by the final flush); every other record stays."""
    import asyncio
    import logging

    from docingest.prefect_server import _RECORDER_LOGGER, retried_flush_on_shutdown_is_quiet

    def record(message: str, exc: BaseException | None) -> logging.LogRecord:
        exc_info = (type(exc), exc, None) if exc else None
        return logging.LogRecord(_RECORDER_LOGGER, logging.ERROR, __file__, 1, message, (), exc_info)

    cancelled = asyncio.CancelledError()
    assert not retried_flush_on_shutdown_is_quiet(record("Error flushing 5 events (5 to retry, 0 dropped)", cancelled))
    # Events dropped, a database error, another message: kept.
    assert retried_flush_on_shutdown_is_quiet(record("Error flushing 5 events (3 to retry, 2 dropped)", cancelled))
    assert retried_flush_on_shutdown_is_quiet(record("Error flushing 5 events (5 to retry, 0 dropped)",
                                                     RuntimeError("database is locked")))
    assert retried_flush_on_shutdown_is_quiet(record("Dropping event 1 after 6 failed attempts", cancelled))


_EXIT_SCRIPT = """
import atexit, concurrent.futures, sys
from docingest import cli

pool = concurrent.futures.ThreadPoolExecutor(1)  # alive at exit: its worker thread is not a daemon
pool.submit(print, "work done").result()
atexit.register(print, "atexit ran")
print("buffered line", end="")  # no newline, no flush: still printed
sys.argv = ["docingest", "run", sys.argv[1], "--out", sys.argv[2]]
cli.entry()
"""


def test_the_command_exits_like_sys_exit_without_the_teardown(tmp_path):
    """`docingest` leaves by os._exit after main: the exit code, the atexit handlers and
    buffered output survive it, and a thread pool still alive does not hang it."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(tmp_path / "missing"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert done.stdout.splitlines() == ["work done", "buffered lineatexit ran"]


def test_process_seconds_count_this_command_not_the_shell_it_replaced():
    """`bash -c '...; docingest run ...'` execs docingest in the shell's process, whose kernel
    start time is the shell's: the manifest's process_seconds counted the shell's work too."""
    import subprocess
    import sys

    code = "import time; from docingest.progress import process_seconds; time.sleep(0.5); print(process_seconds())"
    done = subprocess.run(["bash", "-c", f'sleep 3; exec "{sys.executable}" -c "{code}"'],
                          capture_output=True, text=True, timeout=60, check=True)
    assert 0.5 <= float(done.stdout) < 2.0, done.stdout


def test_the_ocr_of_a_page_whose_sparse_text_layer_is_kept_counts_as_ocr(tmp_path, settings, engines):
    """A page with a word or two in its text layer is OCRed; when OCR reads fewer words the
    layer is kept, and the seconds OCR took are still OCR's in the manifest's stage seconds."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    from docingest.result_store import stage_ms

    path = tmp_path / "signature-page.pdf"
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.setFont("Helvetica", 2)  # in the layer, too small for OCR at the render's resolution
    c.drawString(50, 800, "Signature")
    c.rect(100, 300, 300, 200, fill=1)  # the page is not blank: it is rendered and OCRed
    c.showPage()
    c.save()
    result = process_document(_document(path), settings, engines)
    page = result.pages[0]
    assert "kept the text layer" in page.strategy_reason and page.text_source.value == "text_layer"
    stages = stage_ms(result)
    assert stages["ocr"] == page.read_ms > 0 and stages["text"] == 0
