"""The ingest flow. It only wires stages; read it top to bottom as the DAG:

    discover → reuse (documents already processed in OUT under the same processing key)
    → [per other document: render → read (text layer | OCR) → classify → extract → validate
       (rules) → route; its result stored durably as the task ends] → duplicates
    → stage the run's tables → batch gate → publish (or quarantine): one rename

The per-document chain runs inside one task (``tasks.documents``); its body is
``docingest.pipeline.process_document``. The run holds the output folder's lock throughout.
"""

from __future__ import annotations

import platform
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from docingest.config import ExtractorName, Settings
from docingest.engines import TextLayerEngine, build_ocr_engine
from docingest.engines.vlm import VlmEngine, build_client
from docingest.ledger import RunLedger
from docingest.outdir import OutputLock, recover
from docingest.pipeline import Engines, crashed_result, unreadable_result
from docingest.processing_key import processing_key
from docingest.progress import Laps, progress_bar
from docingest.result_store import ResultStore, summarize
from docingest.stages.calibrate import load_table
from docingest.writer import RunWriter
from docingest.schemas.gate import GateVerdict
from docingest.schemas.records import FailureCause, SourceDocument, Status, VlmUsage
from docingest.schemas.runs import ProcessingKey
from docingest.schemas.tables import CONTRACT_VERSION
from docingest.tasks.documents import process_document_task
from docingest.tasks.io import (
    batch_gate_task,
    check_duplicates_task,
    discover_task,
    publish_task,
    reuse_task,
    stage_tables_task,
)


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


@flow(name="ingest", flow_run_name="ingest-{label}", validate_parameters=False, log_prints=True)
def ingest(source: Path | list[Path], out: Path, settings: Settings, label: str = "run",
           vlm_client: Any = None, reprocess: bool = False) -> RunSummary:
    """``vlm_client``: an ``openai.OpenAI``-compatible client, built by the caller (never at
    import); when None and the extractor needs one, ``build_client`` makes it here.
    ``reprocess``: process every document, even those OUT holds a reusable result for."""
    logger = get_run_logger()
    started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
    run_id = started_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    run_date = started_at.date()
    laps = Laps()
    with OutputLock(out):
        # a killed run's leftovers: its staging folder goes, its documents' results stay
        recovered = recover(out)
        writer = RunWriter(out, run_id, run_date.isoformat())
        laps.lap("recover")

        # discover
        documents, unreadable = discover_task(source)
        logger.info("%d files, %d distinct documents", sum(len(d.paths) for d in documents) + len(unreadable),
                    len(documents))
        laps.lap("discover")

        # reuse: documents OUT already holds a result for, under this run's processing key
        key = processing_key(settings)
        store = ResultStore(out, key)
        ledger = RunLedger()
        if not reprocess:
            reuse_task(store, documents, ledger)
        done = ledger.doc_ids()
        todo = [d for d in documents if d.doc_id not in done]
        logger.info("processing key %s: %d documents reused, %d to process", key.digest, len(done), len(todo))
        laps.lap("reuse")

        # render → read → classify → extract → validate → route, one task per document; each
        # result is in the store the moment its task ends
        engines = _engines(settings, vlm_client) if todo else None
        with progress_bar(len(documents), settings.show_progress) as advance:
            for _ in done:
                advance("reused")
            _process(todo, settings, engines, store, ledger, advance)
        failed_reads = [unreadable_result(u.path, u.message) for u in unreadable]
        for r in failed_reads:
            ledger.add(summarize(r))
        laps.lap("process")

        # validate across documents: duplicate invoices in this run and in published runs
        verdicts = check_duplicates_task(ledger, out)
        laps.lap("duplicates")

        # write: the run's tables into its staging folder, a batch of documents at a time
        counts = stage_tables_task(writer, ledger, verdicts, store, failed_reads)
        laps.lap("stage")

        # batch gate (Great Expectations): a broken fail-level expectation quarantines the run
        verdict = batch_gate_task(writer, settings.gate, run_date, out)
        if verdict.failed:
            logger.warning("run %s quarantined: %s", run_id, "; ".join(verdict.reasons()))
        laps.lap("gate")

        # publish (or quarantine): the manifest joins the tables, one rename makes them visible
        seconds = round(time.perf_counter() - t0, 2)
        manifest = _manifest(run_id, started_at, source, out, settings, documents, unreadable,
                             ledger.tally(verdicts),
                             writer.files_written(counts, verdict.published), seconds, engines, verdict, key,
                             recovered, laps)
        manifest_path = publish_task(writer, manifest, verdict.published)
        dropped = store.prune()
        if dropped:
            logger.info("dropped stored results of %d other processing keys", len(dropped))
    _publish_data_docs_link(verdict, out)
    logger.info("run %s: %s in %.1fs", run_id, manifest["counts"], seconds)
    return RunSummary(
        run_id=run_id, out=str(out), manifest=str(manifest_path),
        inputs=manifest["inputs"]["files"], documents=len(ledger),
        processed=manifest["documents"]["processed"], reused=manifest["documents"]["reused"],
        counts=manifest["counts"], failures=counts["failures"],
        rejected_inputs=manifest["failure_causes"].get(FailureCause.INPUT.value, 0),
        seconds=seconds, vlm=manifest["vlm"], published=verdict.published, gate_reasons=verdict.reasons(),
        gate_warnings=manifest["batch_gate"]["warnings"],
        data_docs=str(out / verdict.data_docs) if verdict.data_docs else None, recovered=recovered,
    )


def run_ingest(source: Path | list[Path], out: Path, settings: Settings, vlm_client: Any = None,
               reprocess: bool = False) -> RunSummary:
    """Run the flow with a bounded worker pool (``Settings.effective_workers``)."""
    runner = ThreadPoolTaskRunner(max_workers=settings.effective_workers())
    label = f"{len(source)}-files" if isinstance(source, list) else source.name
    return ingest.with_options(task_runner=runner)(
        source=source, out=out, settings=settings, label=label, vlm_client=vlm_client, reprocess=reprocess)


# Documents per child flow run. Prefect keeps per-task bookkeeping (contexts, cancel events)
# until the flow run that ran the task ends: in child runs of this size it is released batch by
# batch, so memory does not grow with the number of documents.
BATCH_DOCUMENTS = 250


def _process(todo: list[SourceDocument], settings: Settings, engines: Engines | None, store: ResultStore,
             ledger: RunLedger, advance) -> None:
    """The documents in batches, each a child flow run; their summaries go into the ledger."""
    for start in range(0, len(todo), BATCH_DOCUMENTS):
        batch = todo[start:start + BATCH_DOCUMENTS]
        process_batch.with_options(task_runner=ThreadPoolTaskRunner(max_workers=settings.effective_workers()))(
            batch=batch, settings=settings, engines=engines, store=store, advance=advance,
            label=f"{start + 1}-{start + len(batch)}")
        for doc in batch:
            ledger.add(store.summary(doc.doc_id))


@flow(name="process-documents", flow_run_name="documents-{label}", validate_parameters=False)
def process_batch(batch: list[SourceDocument], settings: Settings, engines: Any, store: Any,
                  advance: Any, label: str) -> None:
    """One mapped task per document; a document whose task failed after its retries is stored
    as failed (never reused), and the run goes on. ``engines`` (``Engines``) and ``store``
    (``ResultStore``) are typed Any: Prefect builds a parameter schema for every flow, and an
    engine Protocol has none."""
    process = process_document_task.with_options(
        retries=settings.task_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay_seconds)(
            settings.task_retries) if settings.task_retries else 0,
    )
    futures = process.map(batch, settings=unmapped(settings), engines=unmapped(engines), store=unmapped(store))
    by_future = {f.task_run_id: d for f, d in zip(futures, batch)}
    for future in as_completed(futures):
        doc = by_future[future.task_run_id]
        try:
            future.result()
        except Exception as exc:  # retries exhausted: the document fails, the run goes on
            store.save(crashed_result(doc, f"{type(exc).__name__}: {exc}"))
        advance(doc.name)


def _engines(settings: Settings, vlm_client: Any) -> Engines:
    """The engines of a run, built only when a document needs processing."""
    engines = Engines(text_layer=TextLayerEngine(), ocr=build_ocr_engine(settings.ocr),
                      calibration=load_table(settings.calibration_file))
    if settings.effective_extractor() != ExtractorName.LOCAL:
        engines.vlm = VlmEngine.from_settings(settings, vlm_client or build_client(settings.vlm))
    return engines


def _publish_data_docs_link(verdict: GateVerdict, out: Path) -> None:
    """A link to the run's Data Docs in the Prefect UI (an artifact of this flow run)."""
    if not verdict.data_docs:
        return
    from prefect.artifacts import create_link_artifact

    try:
        create_link_artifact(
            key="data-docs", link=(out / verdict.data_docs).resolve().as_uri(),
            link_text="Great Expectations Data Docs",
            description=("published" if verdict.published else "QUARANTINED: " + "; ".join(verdict.reasons())),
        )
    except Exception as exc:  # noqa: BLE001 - the UI link is a convenience, never a reason to fail
        get_run_logger().warning("could not create the Data Docs artifact: %s", exc)


def _manifest(run_id, started_at, source, out, settings, documents, unreadable, tally: dict[str, Any],
              written, seconds, engines: Engines | None, verdict: GateVerdict, key: ProcessingKey,
              recovered: list[str], laps: Laps) -> dict[str, Any]:
    input_files = sorted({p for d in documents for p in d.paths} | {u.path for u in unreadable})
    return {
        "run_id": run_id,
        "contract_version": CONTRACT_VERSION,
        "started_at": started_at,
        "finished_at": datetime.now(timezone.utc),
        "source": str(source) if not isinstance(source, list) else f"{len(source)} listed files",
        "out": str(out),
        "settings": settings.model_dump(mode="json"),
        "inputs": {
            "files": len(input_files),
            "documents": len(documents) + len(unreadable),
            "duplicate_files": sum(len(d.paths) - 1 for d in documents),
            "pages": tally["pages"],
        },
        # Reused: processed by an earlier run (finished or killed) under the same processing key.
        "documents": {"processed": tally["processed"], "reused": tally["reused"]},
        "processing_key": key.model_dump(),
        # Nothing lost: every input file is in the documents table exactly once.
        "all_inputs_accounted_for": input_files == tally["source_paths"],
        "counts": tally["counts"],
        # False: a fail-level expectation broke; the tables are in quarantine/<run_id>/.
        "published": verdict.published,
        "batch_gate": {
            "enabled": verdict.enabled,
            "quarantine_reasons": verdict.reasons(),
            "warnings": [f"{o.suite}: {o.expectation}({o.column or ''}) {o.description}".strip()
                         for o in verdict.warnings],
            "skipped": [f"{o.suite}: {o.expectation}({o.column or ''}) needs {o.observed.get('min_rows')} rows, "
                        f"the view has {o.observed.get('rows')}" for o in verdict.outcomes if o.skipped],
            "data_docs": verdict.data_docs,
            "seconds": verdict.seconds,
            "expectations": [o.model_dump(mode="json") for o in verdict.outcomes],
        },
        # Failed documents by cause: "input" (the upload's own defect) or "system" (the pipeline's).
        "failure_causes": tally["failure_causes"],
        "failure_kinds": tally["failure_kinds"],
        "doc_types": tally["doc_types"],
        "files_written": written,
        "durations": {
            "wall_seconds": seconds,
            # Inside the flow, up to the publish: recover, discover, reuse, process, duplicates,
            # stage, gate.
            "phases": laps.seconds,
            "document_seconds_total": tally["document_seconds"],
            "pages_per_second": round(tally["pages"] / seconds, 2) if seconds else None,
        },
        "extractor": settings.effective_extractor().value,
        "calibration": (engines.calibration.fitted_on if engines and engines.calibration else None),
        "vlm": _vlm_summary(tally, engines),
        "recovered": recovered,
        "versions": _versions(),
    }


def _vlm_summary(tally: dict[str, Any], engines: Engines | None) -> dict[str, Any] | None:
    """What this run's processed documents cost at the VLM endpoint."""
    if engines is None or engines.vlm is None:
        return None
    total: VlmUsage = tally["vlm_usage"]
    return {
        "model": engines.vlm.model,
        **total.model_dump(),
        "cost_usd": round(total.cost_usd, 6),
        "structured_outputs": engines.vlm.structured_outputs_supported,
        "peak_in_flight": engines.vlm.limiter.peak_in_flight,
        "budget_usd": engines.vlm.budget.limit_usd,
        "budget_exhausted_documents": tally["budget_exhausted"],
        "pages_by_strategy": tally["pages_by_strategy"],
    }


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("docingest", "prefect", "pyarrow", "pypdfium2", "pillow", "rapidocr", "onnxruntime", "pydantic"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions
