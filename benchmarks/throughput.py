"""Whole-process speed of `docingest run` against bare library loops on the same files, measured
in one run of this script (issue 24).

    python benchmarks/throughput.py                        # generated documents (+ realdata-dev if present)
    python benchmarks/throughput.py --dev none             # generated documents only
    python benchmarks/throughput.py --contracts 40 --invoices 20 --scans 6   # a quicker pass

Printed, each figure from runs made back to back in this process's lifetime:

1. A 1-page run: the whole `docingest run` process, wall seconds (target ≤ 10 s).
2. Born-digital PDFs the script generates (multi-page contracts, invoices and receipts), and the
   PDFs of ../shared/realdata-dev's zugferd, kleister-nda and vrdu-adbuy sets that the pipeline
   reads from their text layers on every page, when present: the whole `docingest run` process
   (2 workers) against a bare pypdfium2 process that reads every page's text and char boxes
   (target ≤ 4×); and `--workers 1` against `--workers 2` (target ≥ 1.5× faster). Each of those
   runs ``--repeat`` times (2), alternately; the fastest of each counts, and all are printed.
3. Scans (generated, and sroie receipts on realdata-dev): OCR pages per second of the whole
   `docingest run` process against a bare RapidOCR process (engine built once, every image read
   once) on the same images (target ≥ 0.9×).

Every `docingest run` processes all its documents (fresh OUT). The Prefect home is a new scratch
folder in each invocation, warmed by one run first (its first run migrates the database): the
server's database holds this invocation's runs only. Linux; needs reportlab
(``pip install -e ".[samples]"``).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from incremental_runs import make_folder, run  # noqa: E402

DEV = ROOT.parent / "shared" / "realdata-dev"
BORN_DIGITAL_SETS = ("zugferd-corpus", "kleister-nda", "vrdu-adbuy-deepform")

# Python's own startup: the bare loops run as processes too, so both sides pay an interpreter.
BARE_TEXT = """
import sys, time
import pypdfium2 as pdfium
pages = 0
for path in sys.argv[1:]:
    pdf = pdfium.PdfDocument(path)
    for i in range(len(pdf)):
        page = pdf[i]
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        boxes = [textpage.get_charbox(c) for c in range(len(text))]
        textpage.close()
        page.close()
        pages += 1
    pdf.close()
print(pages)
"""

BARE_OCR = """
import sys
import numpy as np
from PIL import Image
from rapidocr import RapidOCR
engine = RapidOCR(params={"Global.log_level": "error"})
pages = 0
for path in sys.argv[1:]:
    with Image.open(path) as image:
        engine(np.asarray(image.convert("RGB")))
    pages += 1
print(pages)
"""

_WORDS = ("agreement party parties confidential information disclose obligation term notice law "
          "state court remedy breach damages receiving disclosing purpose evaluation business "
          "relationship employee agent advisor written consent return destroy copies survive "
          "termination assignment successor waiver amendment counterpart entire understanding "
          "provision enforceable jurisdiction venue injunctive relief").split()


def make_contracts(folder: Path, n: int, seed: int = 24) -> None:
    """``n`` contracts of 3 to 8 dense pages each (clauses of generated legal prose)."""
    from reportlab.lib.pagesizes import LETTER
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    rng = random.Random(seed)
    styles = getSampleStyleSheet()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = [Paragraph(f"MUTUAL NON-DISCLOSURE AGREEMENT No. C-{i:04d}", styles["Title"])]
        for page in range(rng.randint(3, 8)):
            for clause in range(7):
                words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(45, 70)))
                body.append(Paragraph(f"{page * 7 + clause + 1}. {words.capitalize()}.", styles["BodyText"]))
            body.append(PageBreak())
        SimpleDocTemplate(str(folder / f"contract-{i:04d}.pdf"), pagesize=LETTER, invariant=1).build(body)


def timed(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, done.stdout.strip()


def bare_text(files: list[Path]) -> tuple[float, int]:
    wall, out = timed([sys.executable, "-c", BARE_TEXT, *map(str, files)])
    return wall, int(out)


def bare_ocr(files: list[Path]) -> tuple[float, int]:
    wall, out = timed([sys.executable, "-c", BARE_OCR, *map(str, files)])
    return wall, int(out)


def docingest(source: Path, out: Path, *flags: str) -> dict:
    result = run(source, out, "--reprocess", *flags)
    m = result["manifest"]
    return {"wall": result["wall"], "cpu": result["cpu"], "pages": m["inputs"]["pages"], "documents": m["inputs"]["documents"],
            "process_phase": m["durations"]["phases"]["process"],
            "runner": m["runner"], "stages": m["durations"]["stage_seconds"], "counts": m["counts"],
            "pages_by_strategy": m["pages_by_strategy"]}


def born_digital(label: str, source: Path, work: Path, repeat: int, *flags: str) -> None:
    """The bare loop, then ``docingest run`` with 2 workers and with 1, alternately, ``repeat``
    times each: the machine's speed drifts by about 10 % from run to run, and each figure is the
    fastest of its runs (every run is printed)."""
    files = sorted(source.rglob("*.pdf"))
    bare_wall, bare_pages = min(bare_text(files) for _ in range(repeat))
    twos, ones = [], []
    for i in range(repeat):
        twos.append(docingest(source, work / f"{label}-w2-{i}", "--workers", "2", *flags))
        ones.append(docingest(source, work / f"{label}-w1-{i}", "--workers", "1", *flags))
    two, one = (min(runs, key=lambda r: r["wall"]) for runs in (twos, ones))
    print(f"born-digital {label}: {len(files)} PDFs, {two['pages']} pages ({two['pages_by_strategy']})")
    print(f"  bare pypdfium2 text + char boxes: {bare_wall:7.2f} s ({bare_pages / bare_wall:6.1f} pages/s)")
    print(f"  docingest run --workers 2 ({two['runner']}): {two['wall']:7.2f} s "
          f"({two['pages'] / two['wall']:6.1f} pages/s) = {two['wall'] / bare_wall:.2f}x the bare loop "
          f"(target <= 4x); runs {_walls(twos)}")
    print(f"  docingest run --workers 1 ({one['runner']}): {one['wall']:7.2f} s; 2 workers are "
          f"{one['wall'] / two['wall']:.2f}x as fast as 1 (target >= 1.5x); runs {_walls(ones)}; the documents' "
          f"phase {one['process_phase']:.2f} s against {two['process_phase']:.2f} s = "
          f"{one['process_phase'] / two['process_phase']:.2f}x")
    print(f"  stage seconds (2 workers, summed over documents): {two['stages']}")
    print_cpu_bound(one, two)


def _walls(runs: list[dict]) -> str:
    return ", ".join(f"{r['wall']:.2f}" for r in runs) + " s"


def print_cpu_bound(one: dict, two: dict) -> None:
    """However well scheduled, a run cannot finish before its CPU seconds, spread over all the
    machine's cores, are spent: 2 workers can be at most (1-worker wall) / (2-worker CPU / cores)
    as fast as 1. The CPU counts every process of the run (the flow's, its Prefect server, its
    workers); with one worker, the server's share runs on the otherwise idle core."""
    cores = os.cpu_count() or 1
    floor = two["cpu"] / cores
    print(f"  CPU seconds, all processes of the run: {two['cpu']:.1f} with 2 workers, {one['cpu']:.1f} with 1; "
          f"on {cores} cores the 2-worker run cannot take less than {floor:.2f} s, so 2 workers can be at most "
          f"{one['wall'] / floor:.2f}x as fast as 1 here (measured {one['wall'] / two['wall']:.2f}x)")


def scans(label: str, images: list[Path], work: Path) -> None:
    folder = work / f"{label}-images"
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:  # one folder of exactly these images
        target = folder / image.name
        if not target.exists():
            target.symlink_to(image.resolve())
    bare_wall, pages = bare_ocr(images)
    ours = docingest(folder, work / f"{label}-out", "--workers", "2", "--follow-symlinks")
    bare_rate, our_rate = pages / bare_wall, ours["pages"] / ours["wall"]
    print(f"scans {label}: {pages} images ({ours['documents']} distinct documents)")
    print(f"  bare RapidOCR: {bare_wall:7.2f} s ({bare_rate:5.2f} pages/s)")
    print(f"  docingest run --workers 2 ({ours['runner']}): {ours['wall']:7.2f} s ({our_rate:5.2f} pages/s) = "
          f"{our_rate / bare_rate:.2f}x the bare OCR speed (target >= 0.9x); pages {ours['pages_by_strategy']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contracts", type=int, default=400, help="generated multi-page contracts")
    parser.add_argument("--invoices", type=int, default=200, help="generated invoices and receipts")
    parser.add_argument("--scans", type=int, default=24, help="generated scans for the OCR comparison")
    parser.add_argument("--dev", default=str(DEV), help="realdata-dev folder, or 'none'")
    parser.add_argument("--sroie", type=int, default=30, help="sroie receipts for the OCR comparison on dev")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each born-digital configuration; the fastest counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docingest-throughput-") as tmp:
        work = Path(tmp)
        os.environ["PREFECT_HOME"] = str(work / "prefect-home")
        one_page = work / "one-page"
        make_folder(one_page, born_digital=1, scans=0)
        docingest(one_page, work / "warm-up")  # the Prefect home's first run migrates its database
        single = docingest(one_page, work / "one-page-out")
        print(f"1-page run: whole process {single['wall']:.2f} s (target <= 10 s)")

        generated = work / "generated"
        make_contracts(generated / "contracts", args.contracts)
        make_folder(generated / "invoices", born_digital=args.invoices, scans=0)
        born_digital("generated", generated, work, args.repeat)

        scan_folder = work / "scans"
        make_folder(scan_folder, born_digital=args.scans, scans=args.scans)
        scans("generated", sorted(scan_folder.glob("scan-*.png")), work)

        dev = Path(args.dev)
        if args.dev != "none" and dev.is_dir():
            picked = work / "dev-born-digital"
            for name in BORN_DIGITAL_SETS:
                (picked / name).mkdir(parents=True, exist_ok=True)
                for pdf in sorted((dev / name).glob("*.pdf")):
                    if _text_on_every_page(pdf):
                        (picked / name / pdf.name).symlink_to(pdf.resolve())
            # The links leave the scratch folder: the runs follow them.
            born_digital("realdata-dev", picked, work, args.repeat, "--follow-symlinks")
            receipts = sorted((dev / "sroie").glob("*.jpg"))[: args.sroie]
            if receipts:
                scans("sroie", receipts, work)
        elif args.dev != "none":
            print(f"({dev} not found: realdata-dev figures skipped)")


def _text_on_every_page(pdf: Path) -> bool:
    """Born-digital: the pipeline reads every page from its text layer (enough words, and
    legible: a scanner's garbled layer is OCRed again), by the pipeline's own reader and bar."""
    from docingest.config import Settings
    from docingest.stages.discover import discover
    from docingest.stages.legibility import legible_share
    from docingest.stages.render import open_document

    settings = Settings()
    documents, _ = discover(pdf, follow_symlinks=True)
    if len(documents) != 1:
        return False
    try:
        document = open_document(documents[0], settings.renderer, settings.preprocess, settings.limits)
    except Exception:  # noqa: BLE001 - not a readable PDF: not born-digital
        return False
    try:
        for i in range(document.page_count):
            words = [w.text for w in document.read_text(i).words]
            if (len(words) < settings.preprocess.min_text_layer_words
                    or legible_share(words) < settings.preprocess.min_legible_share):
                return False
        return True
    finally:
        document.close()


if __name__ == "__main__":
    main()
