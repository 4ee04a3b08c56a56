"""Pages per second through `docingest run` with the thread, process and Dask runners, on the
same born-digital documents, measured in one run of this script.

    python benchmarks/runners.py                       # 40 generated born-digital invoices/receipts
    python benchmarks/runners.py --source ../shared/realdata-dev/zugferd-corpus

Each runner processes every document (--reprocess, fresh OUT) with --workers 2. Printed per
runner: the process phase (documents through their tasks; for the process and Dask runners it
includes starting their worker processes) and the whole process, as pages/s, and each one's ratio
to threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from incremental_runs import make_folder, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="folder of documents (default: generated)")
    parser.add_argument("--workers", default="2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docingest-bench-") as tmp:
        work = Path(tmp)
        source = args.source
        if source is None:
            source = work / "generated"
            make_folder(source, born_digital=40, scans=0)
        rates = {}
        for runner in ("thread", "process", "dask"):
            result = run(source, work / f"out-{runner}", "--runner", runner, "--workers", args.workers, "--reprocess")
            m = result["manifest"]
            pages, process = m["inputs"]["pages"], m["durations"]["phases"]["process"]
            rates[runner] = (pages / process, pages / result["wall"])
            print(f"{runner:6s}: {m['documents']['processed']} documents, {pages} pages; process phase "
                  f"{process:6.2f} s = {pages / process:6.2f} pages/s; whole process {result['wall']:6.2f} s = "
                  f"{pages / result['wall']:5.2f} pages/s")
        for runner in ("process", "dask"):
            print(f"{runner} / thread: process phase {rates[runner][0] / rates['thread'][0]:.2f}x, "
                  f"whole process {rates[runner][1] / rates['thread'][1]:.2f}x ({source}, {args.workers} workers)")


if __name__ == "__main__":
    main()
