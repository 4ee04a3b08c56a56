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
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from docingest.config import Settings
from docingest.errors import WorkerCrashed, WorkersCannotStart
from docingest.pipeline import Engines, build_engines, process_document
from docingest.schemas.records import DocumentResult, SourceDocument

# The worker process's state: its settings and engines, built once by the initializer.
_settings: Settings | None = None
_engines: Engines | None = None


def _start_worker(settings: Settings, cpu_threads: int, run_process: int, ready) -> None:
    global _settings, _engines
    _exit_with(run_process)
    os.environ["OMP_THREAD_LIMIT"] = str(cpu_threads)  # tesseract, a child of this process
    _settings = settings
    _engines = build_engines(settings, cpu_threads=cpu_threads)
    with ready.get_lock():
        ready.value += 1


def _exit_with(run_process: int) -> None:
    """End this worker within a second of the run's process (SIGKILLed, OOM-killed): its task
    queue does not say so, and a worker would wait on it forever. PDFium and onnxruntime release
    the GIL, so a busy worker goes too."""
    def watch() -> None:
        while os.getppid() == run_process:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()


def _process(source: SourceDocument) -> DocumentResult:
    return process_document(source, _settings, _engines)


class DocumentWorkers:
    """``processes`` spawned worker processes (not forked: the flow's process runs threads),
    each with an even share of the cores for OCR."""

    def __init__(self, settings: Settings, processes: int):
        self._settings, self._processes = settings, processes
        self._cpu_threads = max(1, (os.cpu_count() or 1) // processes)
        self._lock = threading.Lock()
        self._cannot_start: str | None = None
        self._pool, self._ready = self._new_pool()

    def _new_pool(self):
        """A pool, and the count of its workers that are ready (shared with them)."""
        context = multiprocessing.get_context("spawn")
        ready = context.Value("i", 0)
        pool = ProcessPoolExecutor(self._processes, mp_context=context, initializer=_start_worker,
                                   initargs=(self._settings, self._cpu_threads, os.getpid(), ready))
        return pool, ready

    def process(self, source: SourceDocument) -> DocumentResult:
        with self._lock:
            if self._cannot_start:
                raise WorkersCannotStart(self._cannot_start)
            pool, ready = self._pool, self._ready
        try:
            return pool.submit(_process, source).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:  # the first to notice replaces it; the others reuse that
                    pool.shutdown(wait=False, cancel_futures=True)
                    if ready.value == 0:
                        self._cannot_start = (
                            "the worker processes exited before any was ready (see their error above; "
                            "a script that starts a run must do so under `if __name__ == '__main__':`, "
                            "spawned workers import it), or use --runner thread")
                    else:
                        self._pool, self._ready = self._new_pool()
                if self._cannot_start:
                    raise WorkersCannotStart(self._cannot_start) from exc
            raise WorkerCrashed(f"the worker process processing {source.name} died: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
