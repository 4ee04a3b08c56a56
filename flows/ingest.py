"""The ingest flow. It only wires stages; read it top to bottom as the DAG:

    discover → reuse (documents already processed in OUT under the same processing key)
    → [per other document: render → read (text layer | OCR) → classify → extract → validate
       (rules) → route; its result stored durably as the task ends] → duplicates
    → stage the run's tables → batch gate → publish (or quarantine): one rename

The per-document chain runs inside one task (``tasks.documents``); its body is
``docingest.pipeline.process_document``. The run holds the output folder's lock throughout.

Every parameter is JSON, so the same flow runs from ``docingest run``, from a deployment and
from ``prefect deployment run ingest/NAME --param source=...``: ``settings`` overrides the
``DOCINGEST_*`` environment with the shape of ``docingest.config.Settings``.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.futures import as_completed
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from docingest.config import RunnerName, Settings
from docingest.ledger import RunLedger
from docingest.outdir import OutputLock, recover
from docingest.pipeline import crashed_result, rejected_result
from docingest.processing_key import processing_key
from docingest.progress import Laps, progress_bar
from docingest.result_store import ResultStore, summarize
from docingest.run_report import build_manifest, markdown_summary, vlm_summary
from docingest.schemas.records import FailureCause, SourceDocument
from docingest.stages.calibrate import load_table
from docingest.tasks.documents import DOCUMENT_FAILED, cached_engines, process_document_task
from docingest.tasks.io import (
    batch_gate_task,
    check_duplicates_task,
    discover_task,
    load_task,
    publish_task,
    reuse_task,
    stage_tables_task,
)
from docingest.tasks.runners import choose_runner, task_runners
from docingest.warehouse.backends import describe
from docingest.warehouse.load import LoadSummary
from docingest.writer import RunWriter


class RunSummary(BaseModel):
    run_id: str
    out: str
    manifest: str
    inputs: int
    documents: int
    processed: int  # documents this run processed
    reused: int  # documents whose result an earlier run computed under the same processing key
    counts: dict[str, int]
    failures: int
    rejected_inputs: int = 0  # failed for their own defects (not counted by the batch gate)
    seconds: float
    vlm: dict[str, Any] | None = None  # requests, cache hits, tokens, cost (manifest "vlm")
    published: bool = True  # False: the batch gate quarantined the run's tables
    gate_reasons: list[str] = []
    gate_warnings: list[str] = []
    data_docs: str | None = None
    recovered: list[str] = []  # what was cleaned up after an earlier, killed run
    load_to: str | None = None  # the warehouse (password hidden)
    loaded_runs: int | None = None  # runs the warehouse load added
    load_error: str | None = None  # the load failed (after its retries); the run stays published


def run_name() -> str:
    """``ingest <source> <UTC date and time>``: tonight's run is not last night's in the UI."""
    from prefect.runtime import flow_run

    source = flow_run.parameters.get("source")
    label = Path(source).name if isinstance(source, str) else f"{len(source or [])} files"
    return f"ingest {label} {datetime.now(timezone.utc):%Y-%m-%d %H:%M}"


@flow(name="ingest", flow_run_name=run_name, log_prints=True)
def ingest(source: str | list[str], out: str, settings: dict[str, Any] | None = None,
           reprocess: bool = False, load_to: str | None = None, load_schema: str = "docingest") -> RunSummary:
    """``source``: a folder (read recursively), a file, or a list of files; ``out``: the output
    folder; ``settings``: overrides of the DOCINGEST_* environment; ``reprocess``: process every
    document, even those OUT holds a reusable result for; ``load_to``: a warehouse URL the
    published runs are loaded into after publishing (``docingest load``)."""
    logger = get_run_logger()
    config = Settings(**(settings or {}))  # read once, passed down
    source_paths = [Path(p) for p in source] if isinstance(source, list) else Path(source)
    out_dir = Path(out)
    started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
    run_id = started_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    run_date = started_at.date()
    laps = Laps()
    with OutputLock(out_dir):
        # a killed run's leftovers: its staging folder goes, its documents' results stay
        recovered = recover(out_dir)
        writer = RunWriter(out_dir, run_id, run_date.isoformat())
        laps.lap("recover")

        # discover
        documents, unreadable = discover_task(source_paths, config.follow_symlinks, config.limits.max_file_bytes)
        logger.info("%d files, %d distinct documents", sum(len(d.paths) for d in documents) + len(unreadable),
                    len(documents))
        laps.lap("discover")

        # reuse: documents OUT already holds a result for, under this run's processing key
        key = processing_key(config)
        store = ResultStore(out_dir, key)
        ledger = RunLedger()
        if not reprocess:
            reuse_task(store, documents, ledger)
        done = ledger.doc_ids()
        todo = [d for d in documents if d.doc_id not in done]
        logger.info("processing key %s: %d documents reused, %d to process", key.digest, len(done), len(todo))
        laps.lap("reuse")

        # render → read → classify → extract → validate → route, one task per document; each
        # result is in the store the moment its task ends
        runner = choose_runner(config, len(todo))
        with progress_bar(len(documents), config.show_progress) as advance:
            progress = RunProgress(len(documents), advance)
            progress.advance_by(len(done))
            _process(todo, runner, config, store, ledger, run_id, progress)
        failed_reads = [rejected_result(u.path, u.error) for u in unreadable]
        for r in failed_reads:
            ledger.add(summarize(r))
        laps.lap("process")

        # validate across documents: duplicate invoices in this run and in published runs
        verdicts = check_duplicates_task(ledger, out_dir)
        laps.lap("duplicates")

        # write: the run's tables into its staging folder, a batch of documents at a time
        counts = stage_tables_task(writer, ledger, verdicts, store, failed_reads)
        laps.lap("stage")

        # batch gate (Great Expectations): a broken fail-level expectation quarantines the run
        verdict = batch_gate_task(writer, config.gate, run_date, out_dir)
        if verdict.failed:
            logger.warning("run %s quarantined: %s", run_id, "; ".join(verdict.reasons()))
        laps.lap("gate")

        # publish (or quarantine): the manifest joins the tables, one rename makes them visible
        seconds = round(time.perf_counter() - t0, 2)
        tally = ledger.tally(verdicts)
        manifest = build_manifest(
            run_id, started_at, source, out_dir, config, documents, unreadable, tally,
            writer.files_written(counts, verdict.published), seconds, _vlm(tally, config, run_id),
            _calibration(config), verdict, key, recovered, laps, runner.value, reliability=_reliability(config))
        manifest_path = publish_task(writer, manifest, verdict.published)
        dropped = store.prune()
        if dropped:
            logger.info("dropped stored results of %d other processing keys", len(dropped))
    _report(manifest, out_dir)
    logger.info("run %s: %s in %.1fs", run_id, manifest["counts"], seconds)

    # load: its own task, retried on transient database errors; a failed load leaves the run published
    loaded = _load(out_dir, load_to, load_schema, config) if load_to and verdict.published else None
    return RunSummary(
        run_id=run_id, out=str(out_dir), manifest=str(manifest_path),
        inputs=manifest["inputs"]["files"], documents=len(ledger),
        processed=manifest["documents"]["processed"], reused=manifest["documents"]["reused"],
        counts=manifest["counts"], failures=counts["failures"],
        rejected_inputs=manifest["failure_causes"].get(FailureCause.INPUT.value, 0),
        seconds=seconds, vlm=manifest["vlm"], published=verdict.published, gate_reasons=verdict.reasons(),
        gate_warnings=manifest["batch_gate"]["warnings"],
        data_docs=str(out_dir / verdict.data_docs) if verdict.data_docs else None, recovered=recovered,
        load_to=describe(load_to) if load_to else None,
        loaded_runs=len(loaded.runs_loaded) if isinstance(loaded, LoadSummary) else None,
        load_error=loaded if isinstance(loaded, str) else None,
    )


def run_ingest(source: Path | list[Path], out: Path, settings: Settings, reprocess: bool = False,
               load_to: str | None = None, load_schema: str = "docingest") -> RunSummary:
    """Run the flow in this process with these settings (the CLI, the evaluation, tests)."""
    return ingest(source=[str(p) for p in source] if isinstance(source, list) else str(source), out=str(out),
                  settings=settings_overrides(settings), reprocess=reprocess, load_to=load_to,
                  load_schema=load_schema)


def _load(out: Path, url: str, schema: str, settings: Settings) -> LoadSummary | str:
    """The warehouse load after publishing; its error as text when it failed after its retries."""
    try:
        return load_task.with_options(retries=settings.task_retries, retry_delay_seconds=settings.retry_delay_seconds)(
            out, url, schema)
    except Exception as exc:  # noqa: BLE001 - the run is published; the next load catches up
        get_run_logger().error("warehouse load into %s failed: %s", describe(url), exc)
        return f"{type(exc).__name__}: {exc}"


def settings_overrides(settings: Settings) -> dict[str, Any]:
    """The settings as the flow's JSON parameter: what was set (by the environment or in code)."""
    return settings.model_dump(mode="json", exclude_unset=True)


# Documents per child flow run. Prefect keeps per-task bookkeeping (contexts, cancel events)
# until the flow run that ran the task ends: in child runs of this size it is released batch by
# batch, so memory does not grow with the number of documents.
BATCH_DOCUMENTS = 250


def _process(todo: list[SourceDocument], runner_name: RunnerName, settings: Settings, store: ResultStore,
             ledger: RunLedger, run_id: str, progress: "RunProgress") -> None:
    """The documents in batches, each a child flow run on the runner ``runner_name``; their
    summaries go into the ledger."""
    if not todo:
        return
    with task_runners(runner_name, settings, run_id) as runner:
        for start in range(0, len(todo), BATCH_DOCUMENTS):
            batch = todo[start:start + BATCH_DOCUMENTS]
            process_batch.with_options(task_runner=runner())(
                batch=batch, settings=settings, store=store, run_id=run_id, progress=progress,
                label=f"{start + 1}-{start + len(batch)}")
            for doc in batch:
                ledger.add(store.summary(doc.doc_id))


@flow(name="process-documents", flow_run_name="documents-{label}", validate_parameters=False)
def process_batch(batch: list[SourceDocument], settings: Settings, store: Any, run_id: str, progress: Any,
                  label: str) -> None:
    """One mapped task per document. A failed document is a Failed task state and its result
    is stored like any other; a task that raised after its retries is stored as failed here
    (never reused), and the run goes on. ``store`` (``ResultStore``) and ``progress`` are typed
    Any: Prefect builds a parameter schema for every flow."""
    process = process_document_task.with_options(
        retries=settings.task_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay_seconds)(
            settings.task_retries) if settings.task_retries else 0,
    )
    futures = process.map(batch, settings=unmapped(settings), store=unmapped(store), run_id=unmapped(run_id))
    by_future = {f.task_run_id: d for f, d in zip(futures, batch)}
    for future in as_completed(futures):
        doc = by_future[future.task_run_id]
        future.wait()
        state = future.state
        if (state.is_failed() and state.name != DOCUMENT_FAILED) or state.is_crashed():
            store.save(crashed_result(doc, state.message or f"task ended {state.name}"))
        progress.advance(doc.name)


class RunProgress:
    """Documents done: the console's progress bar and, where a Prefect server records the run,
    a progress artifact (updated at most once per percent and every 2 seconds, and at 100 %:
    each update is an API call, ≈ 1.2 s of the flow process's CPU per 100 of them)."""

    MIN_UPDATE_SECONDS = 2.0

    def __init__(self, total: int, advance_bar):
        self.total, self.done, self._bar = total, 0, advance_bar
        self._artifact, self._shown, self._shown_at = None, -1, float("-inf")
        try:
            from prefect.artifacts import create_progress_artifact

            self._artifact = create_progress_artifact(progress=0.0, key="ingest-progress",
                                                      description="documents processed or reused")
        except Exception as exc:  # noqa: BLE001 - the UI's progress is a convenience, never a reason to fail
            get_run_logger().warning("no progress artifact: %s", exc)

    def advance(self, label: str) -> None:
        self._bar(label)
        self.advance_by(1)

    def advance_by(self, n: int) -> None:
        self.done += n
        percent = int(100 * self.done / self.total) if self.total else 100
        now = time.monotonic()
        if self._artifact is not None and percent != self._shown and (
                percent == 100 or now - self._shown_at >= self.MIN_UPDATE_SECONDS):
            from prefect.artifacts import update_progress_artifact

            try:
                update_progress_artifact(self._artifact, progress=float(percent))
                self._shown, self._shown_at = percent, now
            except Exception:  # noqa: BLE001
                self._artifact = None


def _calibration(settings: Settings) -> str | None:
    table = load_table(settings.calibration_file)
    return table.fitted_on if table else None


def _reliability(settings: Settings) -> dict[str, Any]:
    """Per kind of document in the calibration table: measured, right, the lower bound routing
    uses, and whether that kind is auto-accepted at all (a drop in audited precision stops it)."""
    from docingest.stages.calibrate import document_bound

    table = load_table(settings.calibration_file)
    if table is None:
        return {}
    bar = settings.routing.min_document_confidence
    counts = {kind: table.document_count(kind) for kind in table.document_kinds()}
    return {kind: {"n": c.n, "right": c.right, "lower_bound": document_bound(c),
                   "auto_accepts": document_bound(c) >= bar}
            for kind, c in counts.items()}


def _vlm(tally: dict[str, Any], settings: Settings, run_id: str) -> dict[str, Any] | None:
    from docingest.config import ExtractorName

    if settings.effective_extractor() == ExtractorName.LOCAL:
        return None
    # The engine's own state (limiter, structured outputs) where the documents ran in this process.
    engines = cached_engines(run_id)
    return vlm_summary(tally, settings.vlm_model, engines.vlm if engines else None, settings.budget_usd)


def _report(manifest: dict[str, Any], out: Path) -> None:
    """The run's markdown summary as an artifact of this flow run in the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact

    try:
        create_markdown_artifact(
            markdown=markdown_summary(manifest, out), key="ingest-summary",
            description=("published" if manifest["published"] else "QUARANTINED: "
                         + "; ".join(manifest["batch_gate"]["quarantine_reasons"])))
    except Exception as exc:  # noqa: BLE001 - the UI summary is a convenience, never a reason to fail
        get_run_logger().warning("could not create the summary artifact: %s", exc)
