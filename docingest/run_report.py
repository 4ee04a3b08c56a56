"""What a run reports: its manifest (the commit record written beside its tables) and the
markdown summary shown as the flow run's artifact in the Prefect UI."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from docingest.config import Settings
from docingest.progress import Laps, process_seconds
from docingest.schemas.gate import GateVerdict
from docingest.schemas.runs import ProcessingKey
from docingest.schemas.tables import CONTRACT_VERSION


def build_manifest(run_id: str, started_at: datetime, source, out: Path, settings: Settings, documents,
                   unreadable, tally: dict[str, Any], written: dict[str, Any], seconds: float,
                   vlm: dict[str, Any] | None, calibration: str | None, verdict: GateVerdict,
                   key: ProcessingKey, recovered: list[str], laps: Laps, runner: str,
                   reliability: dict[str, Any] | None = None) -> dict[str, Any]:
    input_files = sorted({p for d in documents for p in d.paths} | {u.path for u in unreadable})
    process = process_seconds()
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
        "review_reasons": tally["review_reasons"],
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
        # Pages of the processed documents by how they were read (text_layer, ocr, vlm, ...).
        "pages_by_strategy": tally["pages_by_strategy"],
        "files_written": written,
        "durations": {
            "wall_seconds": seconds,
            # Inside the flow, up to the publish: recover, discover, reuse, process, duplicates,
            # stage, gate.
            "phases": laps.seconds,
            # Since the process started, up to this manifest: imports, the Prefect server's
            # start and the flow (the honest figure for a `docingest run`).
            "process_seconds": process,
            "document_seconds_total": tally["document_seconds"],
            # Per stage, summed over the processed documents; gate and write are the phases.
            "stage_seconds": {**tally["stage_seconds"], "gate": laps.seconds.get("gate", 0.0),
                              "write": laps.seconds.get("stage", 0.0)},
            "pages_per_second": round(tally["pages"] / seconds, 2) if seconds else None,  # flow time only
            "pages_per_second_process": round(tally["pages"] / process, 2) if process else None,
        },
        "runner": runner,
        "extractor": settings.effective_extractor().value,
        "calibration": calibration,
        # Per kind of document (type|source): what auto-acceptance rests on, and whether it is on.
        "document_reliability": reliability or {},
        "vlm": vlm,
        "recovered": recovered,
        "versions": versions(),
    }


def vlm_summary(tally: dict[str, Any], model: str, engine=None, budget_usd: float | None = None) -> dict[str, Any]:
    """What this run's processed documents cost at the VLM endpoint. ``engine``: the run's VLM
    engine when the documents ran in this process (its limiter and structured-output state)."""
    total = tally["vlm_usage"]
    return {
        "model": model,
        **total.model_dump(),
        "cost_usd": round(total.cost_usd, 6),
        "structured_outputs": engine.structured_outputs_supported if engine else None,
        "peak_in_flight": engine.limiter.peak_in_flight if engine else None,
        "budget_usd": budget_usd,
        "budget_exhausted_documents": tally["budget_exhausted"],
        "pages_by_strategy": tally["pages_by_strategy"],
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("docingest", "prefect", "pyarrow", "pypdfium2", "pillow", "rapidocr", "onnxruntime", "pydantic"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def markdown_summary(manifest: dict[str, Any], out: Path) -> str:
    """The run as a person reads it in the Prefect UI: counts, top review reasons, failures,
    the gate's verdict and where everything is (paths on the machine that ran it)."""
    counts = manifest["counts"]
    published = manifest["published"]
    lines = [
        f"# docingest run {manifest['run_id']}",
        "",
        f"**{'Published' if published else 'QUARANTINED'}**: {manifest['inputs']['files']} input files, "
        f"{sum(counts.values())} documents ({manifest['documents']['processed']} processed, "
        f"{manifest['documents']['reused']} reused from earlier runs), {manifest['inputs']['pages']} pages, "
        f"{manifest['durations']['wall_seconds']:.1f} s.",
        "",
        "| status | documents |", "|---|---:|",
        *(f"| {status} | {n} |" for status, n in counts.items()),
        "",
        "| document type | documents |", "|---|---:|",
        *(f"| {t} | {n} |" for t, n in manifest["doc_types"].items()),
    ]
    if manifest["review_reasons"]:
        lines += ["", "**Top review reasons**", "", "| reason | documents |", "|---|---:|",
                  *(f"| `{r}` | {n} |" for r, n in list(manifest["review_reasons"].items())[:10])]
    if manifest["failure_kinds"]:
        causes = ", ".join(f"{c} {n}" for c, n in manifest["failure_causes"].items())
        lines += ["", f"**Failures** ({causes}; `input` is an upload's own defect, `system` the pipeline's)", "",
                  "| kind | errors |", "|---|---:|", *(f"| `{k}` | {n} |" for k, n in manifest["failure_kinds"].items())]
    gate = manifest["batch_gate"]
    lines += ["", "**Batch gate**: " + ("off" if not gate["enabled"] else
                                       "passed" if not gate["quarantine_reasons"] else "quarantined the run")]
    lines += [f"- fail: {r}" for r in gate["quarantine_reasons"]] + [f"- warn: {w}" for w in gate["warnings"]]
    stopped = {k: r for k, r in manifest.get("document_reliability", {}).items() if not r["auto_accepts"]}
    if stopped:
        lines += ["", "**Not auto-accepted** (the lower bound of the measured share right is below the bar)", "",
                  "| kind | measured | right | lower bound |", "|---|---:|---:|---:|",
                  *(f"| `{k}` | {r['n']} | {r['right']} | {r['lower_bound']:.3f} |" for k, r in stopped.items())]
    where = (out / "published") if published else (out / "quarantine" / manifest["run_id"])
    lines += ["", "**Where**", "",
              f"- tables: `{where.resolve()}`",
              f"- manifest: `{(out / 'runs' / (manifest['run_id'] + '.json')).resolve()}`"]
    if gate.get("data_docs"):
        lines.append(f"- Data Docs: `{(out / gate['data_docs']).resolve()}`")
    if manifest["recovered"]:
        lines += ["", "**Recovered after an earlier, killed run**", "", *(f"- {r}" for r in manifest["recovered"])]
    return "\n".join(lines) + "\n"
