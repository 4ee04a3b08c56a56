"""The ingest flow. It only wires stages; read it top to bottom as the DAG:

    discover → [per document: render → read (text layer | OCR) → classify → extract
                → validate (rules) → route] → duplicates → batch gate → write (or quarantine)

The per-document chain runs inside one task (``tasks.documents``); its body is
``docingest.pipeline.process_document``.
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
from docingest.pipeline import Engines, crashed_result, unreadable_result
from docingest.progress import progress_bar
from docingest.stages.calibrate import load_table
from docingest.writer import OutputWriter, rows_for
from schemas.gate import GateVerdict
from schemas.records import DocumentResult, Status, VlmUsage
from schemas.tables import CONTRACT_VERSION
from tasks.documents import process_document_task
from tasks.io import batch_gate_task, check_duplicates_task, discover_task, write_tables_task


class RunSummary(BaseModel):
    run_id: str
    out: str
    manifest: str
    inputs: int
    documents: int
    counts: dict[str, int]
    failures: int
    seconds: float
    vlm: dict[str, Any] | None = None  # requests, cache hits, tokens, cost (manifest "vlm")
    published: bool = True  # False: the batch gate quarantined the run's tables
    gate_reasons: list[str] = []
    data_docs: str | None = None


@flow(name="ingest", flow_run_name="ingest-{label}", validate_parameters=False, log_prints=True)
def ingest(source: Path | list[Path], out: Path, settings: Settings, label: str = "run",
           vlm_client: Any = None) -> RunSummary:
    """``vlm_client``: an ``openai.OpenAI``-compatible client, built by the caller (never at
    import); when None and the extractor needs one, ``build_client`` makes it here."""
    logger = get_run_logger()
    started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
    run_id = started_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    writer = OutputWriter(out, run_id, started_at.date().isoformat())

    # discover
    documents, unreadable = discover_task(source)
    logger.info("%d files, %d distinct documents", sum(len(d.paths) for d in documents) + len(unreadable), len(documents))

    # render → read → classify → extract → validate → route, one task per document
    engines = Engines(text_layer=TextLayerEngine(), ocr=build_ocr_engine(settings.ocr),
                      calibration=load_table(settings.calibration_file))
    if settings.effective_extractor() != ExtractorName.LOCAL:
        engines.vlm = VlmEngine.from_settings(settings, vlm_client or build_client(settings.vlm))
    process = process_document_task.with_options(
        retries=settings.task_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay_seconds)(settings.task_retries)
        if settings.task_retries else 0,
    )
    futures = process.map(documents, settings=unmapped(settings), engines=unmapped(engines))
    by_future = {f.task_run_id: d for f, d in zip(futures, documents)}
    results: list[DocumentResult] = []
    with progress_bar(len(documents), settings.show_progress) as advance:
        for future in as_completed(futures):
            doc = by_future[future.task_run_id]
            try:
                results.append(future.result())
            except Exception as exc:  # retries exhausted: the document fails, the run goes on
                results.append(crashed_result(doc, f"{type(exc).__name__}: {exc}"))
            advance(doc.name)
    results.sort(key=lambda r: r.source_path)
    results.extend(unreadable_result(u.path, u.message) for u in unreadable)

    # validate across documents: duplicate invoices in this run and in published runs
    results = check_duplicates_task(results, out)

    # batch gate (Great Expectations): a broken fail-level expectation quarantines the run
    rows = rows_for(results, run_id)
    verdict = batch_gate_task(rows, settings.gate, started_at.date(), writer.data_docs_dir, out)
    if verdict.failed:
        logger.warning("run %s quarantined: %s", run_id, "; ".join(verdict.reasons()))
    _publish_data_docs_link(verdict, out)

    # write
    written = write_tables_task(writer, rows, quarantined=not verdict.published)
    counts = {s.value: sum(r.status == s for r in results) for s in Status}
    seconds = round(time.perf_counter() - t0, 2)
    manifest = _manifest(run_id, started_at, source, out, settings, documents, unreadable,
                         results, counts, written, seconds, engines, verdict)
    manifest_path = writer.write_manifest(manifest)
    logger.info("run %s: %s in %.1fs", run_id, counts, seconds)
    return RunSummary(
        run_id=run_id, out=str(out), manifest=str(manifest_path),
        inputs=manifest["inputs"]["files"], documents=len(results), counts=counts,
        failures=written["failures"]["rows"], seconds=seconds, vlm=manifest["vlm"],
        published=verdict.published, gate_reasons=verdict.reasons(),
        data_docs=str(out / verdict.data_docs) if verdict.data_docs else None,
    )


def run_ingest(source: Path | list[Path], out: Path, settings: Settings, vlm_client: Any = None) -> RunSummary:
    """Run the flow with a bounded worker pool (``Settings.effective_workers``)."""
    runner = ThreadPoolTaskRunner(max_workers=settings.effective_workers())
    label = f"{len(source)}-files" if isinstance(source, list) else source.name
    return ingest.with_options(task_runner=runner)(
        source=source, out=out, settings=settings, label=label, vlm_client=vlm_client)


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


def _manifest(run_id, started_at, source, out, settings, documents, unreadable, results,
              counts, written, seconds, engines: Engines, verdict: GateVerdict) -> dict[str, Any]:
    input_files = sorted({p for d in documents for p in d.paths} | {u.path for u in unreadable})
    accounted = sorted({p for r in results for p in r.source_paths})
    total_ms = sum(r.duration_ms for r in results)
    pages = sum(r.page_count for r in results)
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
            "pages": pages,
        },
        # Nothing lost: every input file is in the documents table exactly once.
        "all_inputs_accounted_for": input_files == accounted,
        "counts": counts,
        # False: a fail-level expectation broke; the tables are in quarantine/<run_id>/.
        "published": verdict.published,
        "batch_gate": {
            "enabled": verdict.enabled,
            "quarantine_reasons": verdict.reasons(),
            "warnings": [f"{o.suite}: {o.expectation}({o.column or ''}) {o.description}".strip()
                         for o in verdict.warnings],
            "data_docs": verdict.data_docs,
            "seconds": verdict.seconds,
            "expectations": [o.model_dump(mode="json") for o in verdict.outcomes],
        },
        "failure_kinds": _count(e.kind for r in results for e in r.errors),
        "doc_types": _count(r.classification.doc_type.value for r in results if r.classification),
        "files_written": written,
        "durations": {
            "wall_seconds": seconds,
            "document_seconds_total": round(total_ms / 1000, 2),
            "pages_per_second": round(pages / seconds, 2) if seconds else None,
        },
        "extractor": settings.effective_extractor().value,
        "calibration": (engines.calibration.fitted_on if engines.calibration else None),
        "vlm": _vlm_summary(results, engines),
        "versions": _versions(),
    }


def _vlm_summary(results: list[DocumentResult], engines: Engines) -> dict[str, Any] | None:
    if engines.vlm is None:
        return None
    total = VlmUsage()
    for r in results:
        total.add(r.vlm_usage)
    return {
        "model": engines.vlm.model,
        **total.model_dump(),
        "cost_usd": round(total.cost_usd, 6),
        "structured_outputs": engines.vlm.structured_outputs_supported,
        "peak_in_flight": engines.vlm.limiter.peak_in_flight,
        "budget_usd": engines.vlm.budget.limit_usd,
        "budget_exhausted_documents": sum(r.budget_exhausted for r in results),
        "pages_by_strategy": _count(p.strategy.value for r in results for p in r.pages if p.strategy),
    }


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("docingest", "prefect", "pyarrow", "pypdfium2", "pillow", "rapidocr", "onnxruntime", "pydantic"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions
