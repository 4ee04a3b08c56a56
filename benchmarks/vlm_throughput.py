"""VLM throughput: the whole flow against a local OpenAI-compatible server with a fixed latency.

    python benchmarks/vlm_throughput.py --latency 1.0 --in-flight 8 --docs 40

With 1 s per request and 8 requests in flight the ceiling is 8 pages/s; the target is >= 6.
Documents are born-digital PDFs (text layer, so the measurement is the VLM path, not OCR):
half one page, half three pages. Every page is rendered, encoded and sent. The rate is pages
divided by the flow's own wall time (the Prefect server's cold start is printed separately).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--docs", type=int, default=40)
    args = parser.parse_args()

    for key, value in {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_LOGGING_LEVEL": "WARNING",
                       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}.items():
        os.environ.setdefault(key, value)
    from tests.factories import text_pdf
    from tests.fake_openai import FakeOpenAI

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(latency=args.latency) as fake:
        tmp_path = Path(tmp)
        docs = tmp_path / "docs"
        docs.mkdir()
        pages = 0
        for n in range(args.docs):
            count = 1 if n % 2 == 0 else 3
            lines = ["Acme Tools GmbH", "Hauptstrasse 1, 10115 Berlin", f"Invoice No: INV-{n:05d}",
                     "Invoice Date: 05.03.2024", "Page {page}", "Subtotal: 100.00", "VAT 19%: 19.00",
                     "Total: EUR 119.00"]
            text_pdf(docs / f"invoice-{n:03d}.pdf", lines, pages=count)
            pages += count
        os.environ.update({
            "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "bench",
            "DOCINGEST_VLM__CACHE_DIR": str(tmp_path / "cache"),
            "DOCINGEST_VLM__MAX_IN_FLIGHT": str(args.in_flight),
        })
        from docingest.config import Settings
        from docingest.flows.ingest import run_ingest

        settings = Settings(extractor="vlm", vlm_model="bench-vlm", show_progress=False)
        t0 = time.perf_counter()
        summary = run_ingest(docs, tmp_path / "out", settings)
        total = time.perf_counter() - t0
        manifest = json.loads(Path(summary.manifest).read_text())

    flow_seconds = manifest["durations"]["wall_seconds"]
    vlm = manifest["vlm"]
    print(f"{args.docs} documents, {pages} pages, latency {args.latency:.1f}s, max in flight {args.in_flight}")
    print(f"requests {vlm['requests']}, peak in flight {vlm['peak_in_flight']}, statuses {summary.counts}")
    print(f"flow wall time {flow_seconds:.1f}s -> {pages / flow_seconds:.2f} pages/s "
          f"(ceiling {args.in_flight / args.latency:.1f}); including Prefect start {total:.1f}s -> "
          f"{pages / total:.2f} pages/s")


if __name__ == "__main__":
    main()
