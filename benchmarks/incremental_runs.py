"""Reruns and memory of whole `docingest run` processes, measured in one run of this script.

    python benchmarks/incremental_runs.py                      # rerun ratios + RSS 100 vs 2000 docs
    python benchmarks/incremental_runs.py --rerun-only --source ../shared/realdata-dev/sroie

1. Rerun: a folder of generated documents (40 born-digital invoices and receipts, 8 scans of
   them; or --source) is run twice into one OUT. Printed: whole-process wall of each run and
   their ratio, and the document-processing time (the flow's reuse + process phases) and its ratio.
2. Memory: 100 and 2000 small generated documents, each into a fresh OUT. Printed: the peak
   resident set of the `docingest run` process (VmHWM, sampled from /proc) for each, and the
   in-memory size of the rows each run published (Arrow nbytes of all its tables): bounded
   memory means the peak grows by no more than the rows.

Generates its documents with reportlab (``pip install -e ".[samples]"``). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_folder(folder: Path, born_digital: int, scans: int) -> None:
    from docingest.samples import INVOICES, RECEIPTS, InvoiceSpec, Item, _invoice_pdf, _receipt_pdf, _scan

    rng = random.Random(18)
    folder.mkdir(parents=True, exist_ok=True)
    pdfs = []
    for i in range(born_digital):
        base = (INVOICES + RECEIPTS)[i % 5]
        spec = InvoiceSpec(
            f"{base.stem}-{i:03d}", base.language, base.vendor_name, base.vendor_address, base.customer_name,
            f"{base.invoice_number}-{i:03d}", base.invoice_date, base.due_date, base.currency, base.tax_rate,
            [Item(it.description, it.quantity + i % 3, it.unit_price + Decimal(i)) for it in base.items])
        path = folder / f"{spec.stem}.pdf"
        (_receipt_pdf if base in RECEIPTS else _invoice_pdf)(spec, path)
        pdfs.append(path)
    for i in range(scans):
        _scan(pdfs[i], rng, dpi=150).convert("L").save(folder / f"scan-{i:03d}.png", optimize=True)


def make_small_documents(folder: Path, n: int) -> None:
    from reportlab.pdfgen import canvas

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = canvas.Canvas(str(folder / f"receipt-{i:05d}.pdf"), pagesize=(300, 200), invariant=1)
        for y, line in zip((170, 150, 130, 110), ("CORNER SHOP LTD", f"Receipt No: R-{i:05d}",
                                                   "Date: 2026-11-02", f"Total {10 + i % 90}.{i % 100:02d}")):
            c.drawString(20, y, line)
        c.showPage()
        c.save()


def run(source: Path, out: Path, *extra: str) -> dict:
    """One `docingest run` process: wall seconds, CPU seconds (user + system, of the process and
    every process it started and reaped: its Prefect server, its workers), peak RSS (MiB) of the
    process, and its manifest."""
    env = dict(os.environ, PREFECT_HOME=os.environ.get("PREFECT_HOME") or str(Path(tempfile.gettempdir()) /
                                                                           "docingest-bench-prefect"))
    cmd = [sys.executable, "-m", "docingest.cli", "run", str(source), "--out", str(out), "--no-progress", *extra]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    output = proc.stdout.read()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"docingest run failed ({proc.returncode}):\n{output}")
    manifests = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    return {"wall": wall, "cpu": cpu, "peak_mib": peak, "manifest": max(manifests, key=lambda m: m["started_at"])}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rows_mib(out: Path, manifest: dict) -> float:
    import pyarrow.parquet as pq

    return sum(pq.read_table(out / w["path"]).nbytes for w in manifest["files_written"].values()) / 2**20


def document_seconds(manifest: dict) -> float:
    phases = manifest["durations"]["phases"]
    return phases["reuse"] + phases["process"]


def bench_rerun(source: Path, work: Path, workers: str) -> None:
    out = work / "rerun-out"
    first = run(source, out, "--workers", workers)
    second = run(source, out, "--workers", workers)
    m1, m2 = first["manifest"], second["manifest"]
    print(f"rerun of an unchanged folder: {source} ({m1['inputs']['documents']} documents, "
          f"{m1['inputs']['pages']} pages), {workers} workers")
    print(f"  first run : {m1['documents']['processed']:4d} processed, {m1['documents']['reused']:4d} reused; "
          f"whole process {first['wall']:7.2f} s; document processing {document_seconds(m1):7.2f} s")
    print(f"  second run: {m2['documents']['processed']:4d} processed, {m2['documents']['reused']:4d} reused; "
          f"whole process {second['wall']:7.2f} s; document processing {document_seconds(m2):7.2f} s")
    print(f"  ratio second/first: whole process {second['wall'] / first['wall']:.3f}, "
          f"document processing {document_seconds(m2) / max(document_seconds(m1), 1e-9):.4f}")


def bench_memory(work: Path, sizes: list[int], workers: str) -> None:
    print(f"peak RSS of `docingest run` on small one-page documents ({workers} workers):")
    measured = []
    for n in sizes:
        folder = work / f"small-{n}"
        make_small_documents(folder, n)
        out = work / f"small-{n}-out"
        result = run(folder, out, "--workers", workers)
        rows = rows_mib(out, result["manifest"])
        measured.append((n, result["peak_mib"], rows))
        print(f"  {n:5d} documents: peak RSS {result['peak_mib']:7.1f} MiB, rows published {rows:6.2f} MiB, "
              f"whole process {result['wall']:6.1f} s")
    (n0, p0, r0), (n1, p1, r1) = measured[0], measured[-1]
    print(f"  {n0} -> {n1} documents: peak RSS {p1 - p0:+.1f} MiB; rows {r1 - r0:+.2f} MiB; "
          f"peak growth per extra document {(p1 - p0) * 1024 / (n1 - n0):.1f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="folder for the rerun benchmark (default: generated)")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--sizes", default="100,2000", help="document counts for the memory benchmark")
    parser.add_argument("--rerun-only", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docingest-bench-") as tmp:
        work = Path(tmp)
        if not args.memory_only:
            source = args.source
            if source is None:
                source = work / "generated"
                make_folder(source, born_digital=40, scans=8)
            bench_rerun(source, work, args.workers)
        if not args.rerun_only:
            bench_memory(work, [int(n) for n in args.sizes.split(",")], args.workers)


if __name__ == "__main__":
    main()
