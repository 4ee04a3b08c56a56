"""The batch gate: Great Expectations suites over a whole run's tables.

Row rules judge one document; a batch can go wrong as a whole (a model change, a new vendor
layout, a broken OCR install) while every document still passes its own rules. The suites in
``expectations/`` (GX's own JSON, one per table view) state what a healthy batch looks like;
an expectation whose ``meta.severity`` is ``fail`` keeps the run out of the published tables.

GX is imported inside ``run_gate`` only: it costs ~5 s and ~260 MB, and nothing else needs it.
The tables are validated as pandas frames built from the rows the writer is about to write
(``build_views``), with derived columns where an expectation needs arithmetic
(``amount_residual`` = subtotal + tax - total, ``invoice_age_days``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from docingest.config import GateOptions
from docingest.errors import SuiteError
from docingest.schemas.fields import DocType, FieldKind, field_specs
from docingest.schemas.gate import ExpectationOutcome, GateSeverity, GateVerdict

# A suite names the view it validates in meta.table; these are the views there are.
FIELD_VIEW_TYPES = (DocType.INVOICE, DocType.RECEIPT, DocType.CONTRACT)
VIEWS = ("documents", "line_items", *(f"fields_{t.value}" for t in FIELD_VIEW_TYPES))


def load_suite_specs(directory: Path) -> list[dict[str, Any]]:
    """Read every ``*.json`` suite and check what GX itself would not: a severity on every
    expectation and a view that exists. (The count check runs when GX builds the suite.)"""
    if not directory.is_dir():
        raise SuiteError(f"expectations folder {directory} does not exist")
    specs = []
    for path in sorted(directory.glob("*.json")):
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path.name}: not JSON ({exc})") from exc
        table = (spec.get("meta") or {}).get("table")
        if table not in VIEWS:
            raise SuiteError(f"{path.name}: meta.table {table!r} is not one of {', '.join(VIEWS)}")
        for i, e in enumerate(spec.get("expectations") or []):
            severity = (e.get("meta") or {}).get("severity")
            if severity not in {s.value for s in GateSeverity}:
                raise SuiteError(f"{path.name}: expectation {i} ({e.get('type')}) needs meta.severity fail|warn")
            min_rows = (e.get("meta") or {}).get("min_rows")
            if min_rows is not None and not (
                    (isinstance(min_rows, int) and min_rows >= 0)
                    or (isinstance(min_rows, dict) and min_rows.get("$PARAMETER") in PARAMETER_NAMES)):
                raise SuiteError(f"{path.name}: expectation {i} ({e.get('type')}): meta.min_rows must be a "
                                 f"count or {{\"$PARAMETER\": one of {', '.join(sorted(PARAMETER_NAMES))}}}")
        if not spec.get("expectations"):
            raise SuiteError(f"{path.name}: no expectations")
        spec["_file"] = path.name
        specs.append(spec)
    if not specs:
        raise SuiteError(f"no suites (*.json) in {directory}")
    return specs


def gate_parameters(options: GateOptions, run_date: date) -> dict[str, Any]:
    """Values for the suites' ``{"$PARAMETER": name}`` entries. GX's ``mostly`` is a floor on
    the share of rows that pass, so a ceiling on a bad share becomes 1 - ceiling."""
    return {
        "min_share_not_failed": round(1 - options.max_failed_share, 6),
        "min_share_not_review": round(1 - options.max_review_share, 6),
        "min_share_with_total": round(1 - options.max_null_total_share, 6),
        "min_share_non_negative": round(1 - options.max_negative_total_share, 6),
        "min_share_balanced": round(1 - options.max_unbalanced_share, 6),
        "max_invoice_age_days": options.max_invoice_age_days,
        "run_date": run_date.isoformat(),
        "min_rows_for_shares": options.min_rows_for_shares,
    }


PARAMETER_NAMES = frozenset(gate_parameters(GateOptions(), date(2000, 1, 1)))


def build_views(tables: dict[str, pa.Table], run_date: date):
    """pandas frames, one per view a suite can name, from the run's Arrow tables (only the
    columns the views need are converted)."""
    import pandas as pd

    documents = tables["documents"].select(
        ["doc_id", "doc_type", "status", "error_count", "page_count", "size_bytes", "credit_note",
         "failure_cause"]).to_pandas()
    # Column-map expectations skip nulls: a document that did not fail has cause "none", so a
    # share of failures is a share of all documents.
    documents["failure_cause"] = documents["failure_cause"].fillna("none")
    items = tables["line_items"].select(["doc_id", "line_no", "amount", "page"]).to_pandas()
    items["amount"] = items["amount"].map(_float)
    views = {"documents": documents, "line_items": items}
    by_doc: dict[str, dict[str, Any]] = {}
    fields = tables["fields"].select(["doc_id", "field_name", "key", "value"])
    for f in fields.filter(pc.is_null(fields["key"])).to_pylist():
        # The normalized value: what the warehouse loads (a raw-only value is null there).
        by_doc.setdefault(f["doc_id"], {}).setdefault(f["field_name"], f["value"])
    doc_rows = {d["doc_id"]: d for d in tables["documents"].select(
        ["doc_id", "doc_type", "status", "credit_note"]).to_pylist() if d["doc_id"]}
    for doc_type in FIELD_VIEW_TYPES:
        specs = field_specs(doc_type)
        records = []
        for doc_id, d in doc_rows.items():
            if d["doc_type"] != doc_type.value:
                continue
            values = by_doc.get(doc_id, {})
            record: dict[str, Any] = {"doc_id": doc_id, "status": d["status"],
                                      "credit_note": bool(d.get("credit_note"))}
            for spec in specs:
                v = values.get(spec.name)
                record[spec.name] = _float(v) if spec.kind == FieldKind.AMOUNT else v
            if doc_type != DocType.CONTRACT:
                total, subtotal, tax = record["total"], record["subtotal"], record["tax"]
                record["amount_residual"] = (round(subtotal + tax - total, 4)
                                             if None not in (total, subtotal, tax) else None)
                record["invoice_age_days"] = _age_days(record["invoice_date"], run_date)
            records.append(record)
        columns = ["doc_id", "status", "credit_note", *(s.name for s in specs)]
        if doc_type != DocType.CONTRACT:
            columns += ["amount_residual", "invoice_age_days"]
        views[f"fields_{doc_type.value}"] = pd.DataFrame(records, columns=columns)
    return views


def _float(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _age_days(iso: str | None, run_date: date) -> int | None:
    try:
        return (run_date - date.fromisoformat(iso)).days if iso else None
    except ValueError:
        return None


def preload() -> None:
    """Import what the gate uses, ahead of time: `docingest run` does it while its Prefect
    server boots on the other core, so the gate at the end of the run does not wait ≈ 4 s."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import pandas  # noqa: F401

    # GX imports these lazily on first use (its module __getattr__): the bulk of its import time.
    for name in ("get_context", "ExpectationSuite", "ValidationDefinition", "Checkpoint"):
        getattr(gx, name)
    from great_expectations.data_context import EphemeralDataContext  # noqa: F401


def run_gate(tables: dict[str, pa.Table], options: GateOptions, run_date: date,
             docs_dir: Path, out: Path) -> GateVerdict:
    """Validate the run's tables against every suite and build Data Docs into ``docs_dir``."""
    if not options.enabled:
        return GateVerdict(enabled=False)
    t0 = time.perf_counter()
    # GX's file store wants an absolute folder (`--out out` is relative).
    docs_dir, out = docs_dir.resolve(), out.resolve()
    specs = load_suite_specs(options.expectations_dir)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx  # lazy: see the module docstring

    # GX logs its temp folders and metric progress at INFO; a nightly log wants none of it.
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    # The ephemeral context makes a default docs site in a temp folder; ours is the run's folder.
    for site in list(context.variables.data_docs_sites or {}):
        base = context.variables.data_docs_sites[site].get("store_backend", {}).get("base_directory")
        context.delete_data_docs_site(site)
        if base and Path(base).is_dir() and Path(base).name.startswith("tmp"):
            shutil.rmtree(base, ignore_errors=True)
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    context.add_data_docs_site(site_name="run", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    source = context.data_sources.add_pandas("docingest")
    views = build_views(tables, run_date)
    parameters = gate_parameters(options, run_date)
    outcomes: list[ExpectationOutcome] = []
    for spec in specs:
        name, table = spec["name"], spec["meta"]["table"]
        raw, skipped = _too_few_rows(spec, len(views[table]), parameters)
        outcomes.extend(skipped)
        if not raw:
            continue
        try:
            suite = gx.ExpectationSuite(name=name, expectations=raw, meta={"table": table})
        except Exception as exc:  # noqa: BLE001 - GX raises many kinds for a bad entry
            raise SuiteError(f"{spec['_file']}: {exc}") from exc
        # GX drops entries it does not know without a word: a typo would silently weaken the gate.
        if len(suite.expectations) != len(raw):
            raise SuiteError(f"{spec['_file']}: {len(raw)} expectations written, GX loaded "
                             f"{len(suite.expectations)}; check the expectation types")
        suite = context.suites.add(suite)
        batch_definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("run")
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=name, validation_definitions=[validation], result_format={"result_format": "SUMMARY"}))
        result = checkpoint.run(batch_parameters={"dataframe": views[table]},
                                expectation_parameters=parameters)
        for validation_result in result.run_results.values():
            for r in validation_result.results:
                outcomes.append(_outcome(name, r))
    # Data Docs once for every suite's results (an UpdateDataDocsAction per checkpoint rebuilt
    # the site after each suite).
    context.build_data_docs(site_names=["run"])
    # GX reports in its own order; sort for a stable manifest.
    outcomes.sort(key=lambda o: (o.suite, o.severity != GateSeverity.FAIL, o.expectation, o.column or ""))
    verdict = GateVerdict(outcomes=outcomes, seconds=round(time.perf_counter() - t0, 2))
    verdict.published = not verdict.failed
    index = docs_dir / "index.html"
    verdict.data_docs = str(index.relative_to(out)) if index.exists() else None
    return verdict


def _too_few_rows(spec: dict[str, Any], rows: int,
                  parameters: dict[str, Any]) -> tuple[list[dict[str, Any]], list[ExpectationOutcome]]:
    """Split a suite's expectations into those to run and those skipped for too few rows. A
    share says something about a batch only over enough documents: one future-dated invoice in
    a run of six is 17 %, and its own row rule already holds that document for review. An
    expectation opts in with ``meta.min_rows`` (a number or a ``$PARAMETER``)."""
    run, skipped = [], []
    for e in spec["expectations"]:
        meta = e.get("meta") or {}
        need = meta.get("min_rows")
        if isinstance(need, dict):
            need = parameters[need["$PARAMETER"]]
        if need and rows < need:
            skipped.append(ExpectationOutcome(
                suite=spec["name"], expectation=e["type"], column=(e.get("kwargs") or {}).get("column"),
                severity=GateSeverity(meta["severity"]), success=True, skipped=True,
                observed={"rows": rows, "min_rows": need}, description=meta.get("description", "")))
        else:
            run.append({k: v for k, v in e.items() if k in ("type", "kwargs", "meta")})
    return run, skipped


def _outcome(suite: str, r) -> ExpectationOutcome:
    config = r.expectation_config
    observed = {k: r.result.get(k) for k in ("element_count", "unexpected_count", "unexpected_percent",
                                               "observed_value", "partial_unexpected_list")
                if r.result.get(k) not in (None, [])}
    if r.exception_info and r.exception_info.get("raised_exception"):
        observed["exception"] = str(r.exception_info.get("exception_message"))[:300]
    elif r.exception_info and not r.success and not r.result:
        # A metric that failed to compute reports its traceback keyed by metric id.
        observed["exception"] = str(r.exception_info)[:300]
    return ExpectationOutcome(
        suite=suite, expectation=config.type, column=config.kwargs.get("column"),
        severity=GateSeverity((config.meta or {}).get("severity", "fail")), success=bool(r.success),
        observed=json.loads(json.dumps(observed, default=str)),
        description=(config.meta or {}).get("description", ""),
    )
