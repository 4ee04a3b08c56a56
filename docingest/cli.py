"""Command line: ``docingest run | serve | load | review | apply-reviews | eval | make-samples``."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from pathlib import Path

# Before Prefect is imported: no telemetry from a nightly batch job; INFO logs (a line per
# document) go to the Prefect server, the console shows warnings only (the progress bar and the
# summary say what matters there).
for _key, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    # The first start of the ephemeral server migrates its database and can take > 20 s.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Arrow's default pool (jemalloc) keeps freed memory: a run's peak grew by 14 MiB more from
    # 100 to 2,000 documents with it than with the system allocator (benchmarks/incremental_runs.py).
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}.items():
    os.environ.setdefault(_key, _value)


from docingest.errors import RunError  # noqa: E402  (after the environment defaults above)


def _overrides_from_args(args: argparse.Namespace) -> dict:
    """The settings the CLI flags set, in the shape of ``Settings``."""
    overrides: dict = {}
    for name in ("renderer", "ocr", "workers", "extractor", "vlm_model", "budget_usd", "runner", "dask_address"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    if getattr(args, "dpi", None) is not None:  # --dpi 0 is an error, not "unset"
        overrides["preprocess"] = {"dpi": args.dpi}
    if getattr(args, "follow_symlinks", False):
        overrides["follow_symlinks"] = True
    if getattr(args, "no_progress", False):
        overrides["show_progress"] = False
    return overrides


# The flag that sets each setting, for error messages.
_FLAG_OF = {"preprocess.dpi": "--dpi", "show_progress": "--no-progress", "follow_symlinks": "--follow-symlinks",
            **{name: "--" + name.replace("_", "-") for name in
               ("renderer", "ocr", "workers", "extractor", "vlm_model", "budget_usd", "runner", "dask_address")}}


def load_settings(overrides: dict | None = None):
    """Settings from the environment (DOCINGEST_*) with ``overrides`` on top; a bad value is
    a one-line RunError (exit 2) naming the flag and variable, never a pydantic traceback."""
    from pydantic import ValidationError

    from docingest.config import Settings

    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"])
            flag = _FLAG_OF.get(name)
            where = f"{flag} / " if flag else ""
            env = "DOCINGEST_" + name.replace(".", "__").upper()
            problems.append(f"{where}{env} = {err.get('input')!r}: {err['msg']}")
        raise RunError("invalid setting: " + "; ".join(problems)) from None


def _settings_from_args(args: argparse.Namespace):
    """Env (DOCINGEST_*) first, CLI flags on top; pydantic-settings deep-merges the two."""
    settings = load_settings(_overrides_from_args(args))
    problem = _vlm_setup_problem(settings)
    if problem:
        raise RunError(problem)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from docingest.writer import check_writable

    source, out = Path(args.source), Path(args.out)
    if not source.exists():
        raise RunError(f"source {source} does not exist")
    check_writable(out)
    settings = _settings_from_args(args)
    from docingest.outdir import OutputLock

    # Taken before Prefect starts: a second run into the same OUT is refused at once (exit 2).
    with OutputLock(out), _prefect_api("docingest.flows.ingest", preload_gate=settings.gate.enabled):
        from docingest.flows.ingest import run_ingest

        summary = run_ingest(source, out, settings, reprocess=args.reprocess,
                             load_to=args.load_to, load_schema=args.schema)
    _print_summary(summary)
    # A quarantined batch must not look like a good night in the scheduler: exit 3. A published
    # run whose warehouse load failed stays published; the load is retried by the next run or
    # `docingest load`: exit 4.
    if not summary.published:
        return 3
    return 4 if summary.load_error else 0


def _prefect_api(flow_module: str, preload_gate: bool = False):
    """The Prefect API for this command: unless one is configured, an ephemeral server
    started now, before Prefect is imported, that boots on the other core while this process
    imports the command's flow (and the batch gate's Great Expectations), and dies with this
    process even on SIGKILL."""
    import importlib

    from docingest.prefect_server import EarlyServer, prefect_api

    early = EarlyServer.start()

    def preload() -> None:
        importlib.import_module(flow_module)
        if preload_gate:
            from docingest.stages.gate import preload as preload_gx

            preload_gx()

    return prefect_api(early, while_starting=preload)


def cmd_load(args: argparse.Namespace) -> int:
    """Load OUT's published runs and curated reviews into a warehouse (idempotent)."""
    from docingest.outdir import OutLayout

    out = Path(args.out)
    if not out.is_dir():
        raise RunError(f"output folder {out} does not exist: run `docingest run` first")
    url = args.to or f"duckdb://{(out / 'warehouse.duckdb').resolve()}"
    from docingest.warehouse.load import load

    summary = load(out, url, schema=args.schema)
    for line in summary.migrations:
        print(f"schema: {line}")
    print(f"loaded {len(summary.runs_loaded)} new runs ({summary.documents_replaced} documents replaced or added) "
          f"and {sum(summary.curated_rows.values())} curated rows into {summary.warehouse} "
          f"(schema {summary.schema_name}, contract {summary.contract_version}) in {summary.seconds:.1f}s")
    if not OutLayout(out).published_runs():
        print("note: OUT holds no published run yet")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the deployment ``ingest/NAME`` from this process until Ctrl-C (Prefect's serve):
    runs triggered from the UI or ``prefect deployment run``, and on ``--cron``, run here."""
    from docingest.writer import check_writable

    if not os.environ.get("PREFECT_API_URL"):
        raise RunError("serve needs a Prefect server that keeps deployments and schedules: start one with "
                       "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api")
    source, out = Path(args.source).resolve(), Path(args.out).resolve()
    if not source.exists():
        raise RunError(f"source {source} does not exist")
    check_writable(out)
    _settings_from_args(args)  # a bad flag fails here, not at the first scheduled run
    overrides = {**_overrides_from_args(args), "show_progress": False}
    from docingest.flows.ingest import ingest

    print(f"serving deployment ingest/{args.name}: {source} -> {out}"
          + (f", on cron {args.cron!r}" if args.cron else "") + "  (Ctrl+C to stop)", flush=True)
    ingest.serve(name=args.name, cron=args.cron, parameters={"source": str(source), "out": str(out),
                                                             "settings": overrides, "reprocess": args.reprocess,
                                                             "load_to": args.load_to, "load_schema": args.schema},
                 description=f"docingest: ingest {source} into {out}")
    return 0


def _vlm_setup_problem(settings) -> str | None:
    from docingest.config import ExtractorName

    if settings.extractor != ExtractorName.VLM:
        return None
    if not settings.vlm_model:
        return "--extractor vlm needs a model: --vlm-model NAME or DOCINGEST_VLM_MODEL"
    if not settings.vlm_endpoint_configured():
        return "--extractor vlm needs an endpoint: set OPENAI_BASE_URL and/or OPENAI_API_KEY"
    return None


def _print_summary(summary) -> None:
    from docingest.progress import process_seconds

    for line in summary.recovered:
        print(f"recovered: {line}")
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(f"run {summary.run_id}: {summary.inputs} input files, {summary.documents} documents "
          f"({counts}); {summary.processed} processed, {summary.reused} reused from earlier runs; "
          f"{summary.failures} failure rows; {summary.seconds:.1f}s in the flow, {process_seconds():.1f}s in all")
    if summary.rejected_inputs:
        print(f"warning: {summary.rejected_inputs} inputs rejected for their own defects "
              "(corrupt, encrypted, empty, unsupported, too large): see the failures table")
    if summary.vlm:
        v = summary.vlm
        print(f"vlm {v['model']}: {v['requests']} requests, {v['cache_hits']} cache hits, "
              f"{v['prompt_tokens']}+{v['completion_tokens']} tokens, ${v['cost_usd']:.4f}")
    print(f"outputs: {summary.out}  manifest: {summary.manifest}")
    if summary.data_docs:
        print(f"data docs: {summary.data_docs}")
    if not summary.published:
        print("QUARANTINED (tables in quarantine/, not published): " + "; ".join(summary.gate_reasons))
    if summary.loaded_runs is not None:
        print(f"warehouse: loaded {summary.loaded_runs} new runs into {summary.load_to}")
    if summary.load_error:
        print(f"warehouse load FAILED (the run stays published; `docingest load` retries): {summary.load_error}")


def cmd_eval(args: argparse.Namespace) -> int:
    from docingest.evaluate import run_evaluation

    labels = Path(args.labels)
    if not labels.is_file():
        raise RunError(f"labels file {labels} not found")
    settings = _settings_from_args(args)
    with _prefect_api("docingest.flows.ingest", preload_gate=settings.gate.enabled):
        report = run_evaluation(labels, Path(args.out), settings, limit=args.limit,
                                fit_calibration=Path(args.fit_calibration) if args.fit_calibration else None,
                                source_sets=args.set or None, reprocess=args.reprocess)
    print(report.render_text())
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    import getpass
    import secrets

    import uvicorn

    from docingest.review.app import create_app

    out = Path(args.out)
    if not out.is_dir():
        raise RunError(f"output folder {out} does not exist: run `docingest run` first")
    token = args.token
    if token == "auto":
        token = secrets.token_urlsafe(24)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise RunError(f"--host {args.host} exposes the review app beyond this machine: set --token")
    reviewer = args.reviewer or os.environ.get("DOCINGEST_REVIEWER") or getpass.getuser()
    url = f"http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"review app for {out}: {url}  (Ctrl+C to stop)", flush=True)
    # The bind address is a name clients use; a wildcard is not, so those names come from --allowed-host.
    allowed = [*args.allowed_host, *([args.host] if args.host not in ("0.0.0.0", "::", "") else [])]
    app = create_app(out, token=token, reviewer=reviewer, thresholds=load_settings().routing,
                     allowed_hosts=allowed)
    uvicorn.run(app, host=args.host, port=args.port,
                log_level="warning")
    return 0


def cmd_apply_reviews(args: argparse.Namespace) -> int:
    out = Path(args.out)
    from docingest.outdir import OutLayout

    if not OutLayout(out).published_runs():
        raise RunError(f"no published tables in {out}: run `docingest run` first")
    with _prefect_api("docingest.flows.apply_reviews"):
        from docingest.flows.apply_reviews import apply_reviews

        summary = apply_reviews(out, load_settings({"show_progress": False}),
                                labels=Path(args.export_labels) if args.export_labels else None)
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    print(f"curated {summary.documents} documents with {summary.decisions} review decisions ({counts})")
    print(f"curated tables: {out / 'curated'}")
    if summary.labels:
        print(f"labels: {summary.labelled} reviewed documents -> {summary.labels}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fold reviewed audits (and other would-be-accepted documents) into a calibration table."""
    from docingest.outdir import OutLayout
    from docingest.review.audits import reviewed_counts
    from docingest.stages.calibrate import document_bound, load_table, write_table

    out = Path(args.from_reviews)
    if not OutLayout(out).published_runs():
        raise RunError(f"no published tables in {out}: run `docingest run` first")
    settings = load_settings()
    base = Path(args.table) if args.table else settings.calibration_file
    table = load_table(base)
    if table is None:
        raise RunError(f"calibration table {base} not found (fit one with `docingest eval --fit-calibration`)")
    table.reviewed = reviewed_counts(out)
    target = Path(args.write) if args.write else out / "calibration.json"
    write_table(table, target)
    bar = settings.routing.min_document_confidence
    print(f"{'kind':<24}{'labelled':>10}{'reviewed':>10}{'right':>7}{'bound':>8}  auto-accepts (bar {bar})")
    for kind in table.document_kinds():
        labelled, reviewed, total = (table.documents.get(kind), table.reviewed.get(kind), table.document_count(kind))
        bound = document_bound(total)
        print(f"{kind:<24}{(labelled.n if labelled else 0):>10}{(reviewed.n if reviewed else 0):>10}"
              f"{total.right:>7}{bound:>8.3f}  {'yes' if bound >= bar else 'NO'}")
    print(f"wrote {target}; use it with DOCINGEST_CALIBRATION_FILE={target.resolve()}")
    return 0


def cmd_make_samples(args: argparse.Namespace) -> int:
    from docingest.samples import generate_samples

    written = generate_samples(Path(args.out))
    print(f"wrote {len(written)} sample files and labels.jsonl to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docingest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_engine_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--renderer", choices=["pypdfium2", "pdf2image"])
        p.add_argument("--ocr", choices=["rapidocr", "tesseract"])
        p.add_argument("--workers", type=int, help="documents processed at once (default: CPU count)")
        p.add_argument("--dpi", type=int, help="render resolution for OCR (default 200)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--extractor", choices=["local", "vlm", "auto"],
                       help="local: embedded only; vlm: every page through the VLM; auto (default): "
                            "per page, the VLM only where local reading is weak (local without an endpoint)")
        p.add_argument("--vlm-model", help="model name at the OpenAI-compatible endpoint")
        p.add_argument("--budget-usd", type=float, help="stop sending VLM requests once this is spent")
        p.add_argument("--runner", choices=["auto", "thread", "process", "dask"],
                       help="auto (default): worker processes for a local extraction of 8 or more documents, "
                            "else threads; thread: a thread pool in this process; process: --workers worker "
                            "processes; dask: Dask worker processes")
        p.add_argument("--dask-address", help="an existing Dask scheduler (tcp://host:8786) for --runner dask; "
                                              "default: a local cluster of --workers processes")
        p.add_argument("--follow-symlinks", action="store_true",
                       help="follow links that point outside SOURCE (default: recorded, not followed)")
        p.add_argument("--reprocess", action="store_true",
                       help="process every document again, even those OUT already holds a result for "
                            "under the same processing key")

    run = sub.add_parser("run", help="ingest a folder of PDFs and images into parquet tables")
    run.add_argument("source", help="folder (read recursively) or a single file")
    run.add_argument("--out", required=True, help="output folder for the tables and run manifests")
    run.add_argument("--load-to", metavar="URL", help="after publishing, load OUT into this warehouse "
                                                      "(duckdb:///path/file.duckdb or postgresql://...)")
    run.add_argument("--schema", default="docingest", help="warehouse schema for --load-to (default docingest)")
    add_engine_flags(run)
    run.set_defaults(func=cmd_run)

    sv = sub.add_parser("serve", help="serve the Prefect deployment ingest/NAME (runs on demand and on --cron)")
    sv.add_argument("source", help="folder (read recursively) or a single file")
    sv.add_argument("--out", required=True, help="output folder for the tables and run manifests")
    sv.add_argument("--name", required=True, help="deployment name: ingest/NAME")
    sv.add_argument("--cron", help='schedule, e.g. "0 2 * * *" (UTC)')
    sv.add_argument("--load-to", metavar="URL", help="after each published run, load OUT into this warehouse")
    sv.add_argument("--schema", default="docingest", help="warehouse schema for --load-to (default docingest)")
    add_engine_flags(sv)
    sv.set_defaults(func=cmd_serve)

    ld = sub.add_parser("load", help="load the published runs and curated reviews into a warehouse")
    ld.add_argument("out", help="the output folder of `docingest run`")
    ld.add_argument("--to", help="duckdb:///path/file.duckdb (default: OUT/warehouse.duckdb) or "
                                 "postgresql://user@host:port/db")
    ld.add_argument("--schema", default="docingest", help="schema the tables and views go to (default docingest)")
    ld.set_defaults(func=cmd_load)

    rv = sub.add_parser("review", help="serve the review app over an output folder")
    rv.add_argument("--out", required=True, help="the output folder of `docingest run`")
    rv.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    rv.add_argument("--port", type=int, default=8765)
    rv.add_argument("--token", help="shared secret required by every request ('auto': make one)")
    rv.add_argument("--reviewer", help="name recorded with decisions (default: $DOCINGEST_REVIEWER or the user); "
                                       "never taken from the form")
    rv.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                    help="a Host name clients may use besides 127.0.0.1/localhost/::1 (repeatable): "
                         "other names are refused, so a DNS-rebinding page cannot reach the app")
    rv.set_defaults(func=cmd_review)

    ap = sub.add_parser("apply-reviews", help="merge review decisions into OUT/curated tables")
    ap.add_argument("--out", required=True, help="the output folder of `docingest run`")
    ap.add_argument("--export-labels", metavar="FILE",
                    help="also write reviewed, accepted documents as labels.jsonl (for `docingest eval`)")
    ap.set_defaults(func=cmd_apply_reviews)

    ev = sub.add_parser("eval", help="run over a labelled set and score it")
    ev.add_argument("labels", help="labels.jsonl (paths relative to its folder)")
    ev.add_argument("--out", required=True, help="output folder (tables + eval_report.json)")
    ev.add_argument("--limit", type=int, help="only the first N labelled documents")
    ev.add_argument("--set", action="append", help="only this source set (repeatable)")
    ev.add_argument("--fit-calibration", metavar="FILE",
                    help="fit a confidence calibration table from this run's raw confidences and "
                         "write it to FILE (the shipped one is docingest/calibration.json)")
    add_engine_flags(ev)
    ev.set_defaults(func=cmd_eval)

    cb = sub.add_parser("calibrate", help="fold reviewed audits into the calibration table (earned autonomy)")
    cb.add_argument("--from-reviews", required=True, metavar="OUT",
                    help="an output folder whose review decisions measure would-be-accepted documents")
    cb.add_argument("--table", help="the table to start from (default: DOCINGEST_CALIBRATION_FILE or the shipped one)")
    cb.add_argument("--write", help="where to write the updated table (default OUT/calibration.json)")
    cb.set_defaults(func=cmd_calibrate)

    ms = sub.add_parser("make-samples", help="(re)generate the bundled sample documents")
    ms.add_argument("--out", default="data/samples")
    ms.set_defaults(func=cmd_make_samples)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RunError as exc:  # the run itself cannot run: say why, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``docingest`` command: ``main``, then out as ``sys.exit`` would, less the teardown.

    After a run, tearing down the interpreter (every module and object of Prefect, Great
    Expectations, pandas) took ≈ 1 s of a 7 s one-page run. Everything that must happen at
    exit still does: thread pools are told to stop, non-daemon threads are joined, and the atexit
    handlers run (logging's flush, Prefect's, multiprocessing's); the outputs were written and
    fsynced before."""
    code = main()
    # What the interpreter does at exit, in its order: threading's exit hooks (they tell thread
    # pools to stop) and the join of non-daemon threads; then the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":
    entry()
