"""Worker processes for the per-document work: both cores, not one.

Reading text layers, OCR post-processing, classification and rules are Python and hold the
GIL, so a thread pool runs one document at a time however many threads it has (measured: 2
threads were 0.96× as fast as 1). ``DocumentWorkers`` runs ``process_document`` in spawned
processes instead; each builds its engines once for the whole run. The Prefect task of each
document stays in the flow's process (its state, retries and logs are Prefect's as before; a
task in a Prefect process pool costs ≈ 250 ms of client set-up per document).

A worker that dies (a segfault in a PDF library on a hostile file, the OOM killer) breaks the
pool: the documents in flight get ``WorkerCrashed`` (transient, so Prefect retries them in a
fresh pool), and a document that kills its worker on every attempt ends failed. Workers that
die before any of them is ready (an interpreter that cannot import docingest, a script that
starts a run when imported: spawned workers import the main module) are not a crash to retry:
every document would spawn pool after pool, two at a time, for minutes. Those documents fail at
once with ``WorkersCannotStart``, and so do the run's remaining ones.

The document time limits (``limits.max_document_seconds``, checked between pages, plus one page's
``max_page_seconds``) cannot stop a page stuck inside a library (PDFium rendering a page of
millions of vector paths, a wedged OCR call). A worker process can be: one still on a document
at ``hard_limit_seconds`` records the document and ends itself. That document fails with the
non-transient ``TimeLimitExceeded``; the others it had in flight are retried as for a crash.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from docingest.config import Settings
from docingest.errors import TimeLimitExceeded, WorkerCrashed, WorkersCannotStart
from docingest.pipeline import Engines, build_engines, failed_result, process_document
from docingest.schemas.records import DocumentResult, SourceDocument

# The worker process's state: its settings and engines, built once by the initializer, and
# what it shares with the run's process (the pool's ready count, the document it gave up on).
_settings: Settings | None = None
_engines: Engines | None = None
_shared: "_PoolState | None" = None
_GAVE_UP_EXIT = 70
_HARD_LIMIT_GRACE_SECONDS = 60.0  # classifying, extracting and validating the pages read


def hard_limit_seconds(settings: Settings) -> float:
    """When a worker gives up on a document: its time limit, one page's on top (the limit is
    checked between pages), and a minute for the rest of its work."""
    return settings.limits.max_document_seconds + settings.limits.max_page_seconds + _HARD_LIMIT_GRACE_SECONDS


class _PoolState:
    """Shared by a pool's workers and the run's process: how many workers are ready, and the
    id of the document a worker gave up on at its hard limit."""

    def __init__(self, context) -> None:
        self.ready = context.Value("i", 0)
        self.gave_up = context.Array("c", 128)

    def gave_up_on(self) -> str:
        return self.gave_up.value.decode()


def _start_worker(settings: Settings, cpu_threads: int, run_process: int, shared: _PoolState) -> None:
    global _settings, _engines, _shared
    _exit_with(run_process)
    os.environ["OMP_THREAD_LIMIT"] = str(cpu_threads)  # tesseract, a child of this process
    _settings, _shared = settings, shared
    _engines = build_engines(settings, cpu_threads=cpu_threads)
    with shared.ready.get_lock():
        shared.ready.value += 1


def _exit_with(run_process: int) -> None:
    """End this worker within a second of the run's process (SIGKILLed, OOM-killed): its task
    queue does not say so, and a worker would wait on it forever. PDFium and onnxruntime release
    the GIL, so a busy worker goes too."""
    def watch() -> None:
        while os.getppid() == run_process:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()


def _process(source: SourceDocument, work, hard_limit: float) -> DocumentResult:
    """``work`` (``process_document``) under the hard limit: past it, a timer thread
    records the document and ends the process (PDFium, onnxruntime and tesseract's wait release
    the GIL, and Python code yields it, so the timer runs whatever the document is stuck in)."""
    def give_up() -> None:
        _shared.gave_up.value = source.doc_id.encode()[:128]
        os._exit(_GAVE_UP_EXIT)

    timer = threading.Timer(hard_limit, give_up)
    timer.daemon = True
    timer.start()
    try:
        return work(source, _settings, _engines)
    finally:
        timer.cancel()


class DocumentWorkers:
    """``processes`` spawned worker processes (not forked: the flow's process runs threads),
    each with an even share of the cores for OCR."""

    def __init__(self, settings: Settings, processes: int, work=None, hard_limit: float | None = None):
        """``work`` and ``hard_limit``: what a worker runs on a document, and when it gives up
        (``process_document`` and ``hard_limit_seconds``; tests give others)."""
        self._settings, self._processes = settings, processes
        self._work, self._hard_limit = work or process_document, hard_limit or hard_limit_seconds(settings)
        self._cpu_threads = max(1, (os.cpu_count() or 1) // processes)
        self._lock = threading.Lock()
        self._cannot_start: str | None = None
        self._pool, self._shared = self._new_pool()

    def _new_pool(self) -> tuple[ProcessPoolExecutor, _PoolState]:
        """A pool, and the state its workers share with this process."""
        context = multiprocessing.get_context("spawn")
        shared = _PoolState(context)
        pool = ProcessPoolExecutor(self._processes, mp_context=context, initializer=_start_worker,
                                   initargs=(self._settings, self._cpu_threads, os.getpid(), shared))
        return pool, shared

    def result(self, source: SourceDocument) -> DocumentResult:
        """The document's result; the workers' own verdicts on it (given up at the hard limit,
        workers that cannot start) as a failed result, never retried."""
        try:
            return self.process(source)
        except (TimeLimitExceeded, WorkersCannotStart) as exc:
            return failed_result(source, exc.to_record())

    def process(self, source: SourceDocument) -> DocumentResult:
        with self._lock:
            if self._cannot_start:
                raise WorkersCannotStart(self._cannot_start)
            pool, shared = self._pool, self._shared
        try:
            return pool.submit(_process, source, self._work, self._hard_limit).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:  # the first to notice replaces it; the others reuse that
                    pool.shutdown(wait=False, cancel_futures=True)
                    if shared.ready.value == 0:
                        self._cannot_start = (
                            "the worker processes exited before any was ready (see their error above; "
                            "a script that starts a run must do so under `if __name__ == '__main__':`, "
                            "spawned workers import it), or use --runner thread")
                    else:
                        self._pool, self._shared = self._new_pool()
                if self._cannot_start:
                    raise WorkersCannotStart(self._cannot_start) from exc
            if shared.gave_up_on() == source.doc_id:
                raise TimeLimitExceeded(
                    f"still reading {source.name} after {self._hard_limit:g} s (limits.max_document_seconds + "
                    f"max_page_seconds + {_HARD_LIMIT_GRACE_SECONDS:g} s): its worker process was ended") from exc
            raise WorkerCrashed(f"the worker process processing {source.name} died: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
