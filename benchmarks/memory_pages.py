"""Peak memory of one long document: are pages really streamed?

    python benchmarks/memory_pages.py --pages 500 --kind text
    python benchmarks/memory_pages.py --pages 500 --kind scanned   # every page rendered + OCRed

Generates the PDF itself (reportlab, ``pip install -e ".[samples]"``), runs the per-document stage
function without Prefect and samples the resident set size while it runs. Bounded means the RSS
after the last page is close to the RSS after the first tenth of the pages. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_pdf(path: Path, pages: int, kind: str) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas
    from PIL import Image, ImageDraw

    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    width, height = A4
    for page in range(1, pages + 1):
        lines = [f"INVOICE INV-{page:05d}", f"Date: 2024-03-{1 + page % 28:02d}",
                 f"Page {page} of {pages}", "Widget  2 x 10.00  20.00", "Total: EUR 20.00"]
        if kind == "text":
            y = 800
            for line in lines * 8:
                c.drawString(50, y, line)
                y -= 18
        else:
            # A page with no text layer: a full-page scan image, distinct per page.
            image = Image.new("L", (1240, 1754), 255)
            draw = ImageDraw.Draw(image)
            for i, line in enumerate(lines):
                draw.text((100, 120 + i * 60), line, fill=0, font_size=36)
            c.drawImage(ImageReader(image), 0, 0, width, height)
        c.showPage()
    c.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--kind", choices=["text", "scanned"], default="text")
    parser.add_argument("--ocr", default="rapidocr")
    args = parser.parse_args()

    from docingest.config import Settings
    from docingest.engines.base import build_ocr_engine
    from docingest.engines.text_layer import TextLayerEngine
    from docingest.pipeline import Engines, process_document
    from docingest.stages.discover import discover

    settings = Settings(ocr=args.ocr, workers=1, show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / f"long-{args.kind}.pdf"
        t0 = time.perf_counter()
        make_pdf(pdf, args.pages, args.kind)
        print(f"generated {pdf.name}: {args.pages} pages, {pdf.stat().st_size / 2**20:.1f} MiB "
              f"in {time.perf_counter() - t0:.1f}s")
        engines = Engines(text_layer=TextLayerEngine(), ocr=build_ocr_engine(settings.ocr))
        source = discover(pdf)[0][0]
        baseline = rss_mib()
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_mib())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        result = process_document(source, settings, engines)
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()

    tenth = samples[: max(1, len(samples) // 10)]
    print(f"status {result.status.value}, {result.page_count} pages, {len(result.errors)} errors, "
          f"{seconds:.1f}s ({result.page_count / seconds:.1f} pages/s)")
    print(f"RSS before {baseline:.0f} MiB; max during first tenth {max(tenth):.0f} MiB; "
          f"max overall {max(samples):.0f} MiB; process peak (VmHWM) {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
