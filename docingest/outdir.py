"""The output folder: where everything lives, who may write it, and cleaning up after a kill.

    OUT/published/run_date=YYYY-MM-DD/<run_id>/<table>.parquet + manifest.json
    OUT/quarantine/<run_id>/<table>.parquet + manifest.json   (held back by the batch gate)
    OUT/runs/<run_id>.json                                    (every committed run's manifest)
    OUT/data_docs/<run_id>/index.html                         (the batch gate's Data Docs)
    OUT/_state/results/<processing key>/..                    (each document's result, durable)
    OUT/_state/staging/<run_id>/                              (a run being written)
    OUT/_state/lock                                           (held by the run writing OUT)

A run's tables are written into its staging folder and published by one rename of that folder,
so a reader globbing ``published/*/*/documents.parquet`` sees all of a run's tables or none, and
a run folder without its manifest cannot exist. Names starting with ``_`` are internal.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path

from docingest.errors import OutputLocked, RunError
from docingest.fsio import fsync_dir, write_text_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# Contract 7 and earlier published each table on its own: OUT/<table>/run_date=D/part-<run_id>.parquet.
LEGACY_TABLES = ("documents", "pages", "fields", "line_items", "rule_results", "review_queue", "failures")


class OutLayout:
    def __init__(self, out: Path):
        self.out = out

    @property
    def published(self) -> Path:
        return self.out / "published"

    @property
    def quarantine(self) -> Path:
        return self.out / "quarantine"

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def state(self) -> Path:
        return self.out / "_state"

    @property
    def results(self) -> Path:
        return self.state / "results"

    @property
    def staging_root(self) -> Path:
        return self.state / "staging"

    def staging(self, run_id: str) -> Path:
        return self.staging_root / run_id

    def published_run(self, run_date: str, run_id: str) -> Path:
        return self.published / f"run_date={run_date}" / run_id

    def quarantined_run(self, run_id: str) -> Path:
        return self.quarantine / run_id

    def data_docs(self, run_id: str) -> Path:
        return self.out / "data_docs" / run_id

    def run_index(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def published_runs(self) -> list[Path]:
        """Every published run's folder, oldest first (run ids start with their UTC start)."""
        return sorted((p for p in self.published.glob("run_date=*/*") if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: p.name)

    def committed_runs(self) -> list[Path]:
        quarantined = [p for p in self.quarantine.glob("*") if p.is_dir() and (p / MANIFEST).exists()]
        return self.published_runs() + quarantined


class OutputLock:
    """One run writes an output folder at a time. The lock is an ``flock`` on ``_state/lock``:
    the kernel drops it when its process dies, even by SIGKILL, so a killed run never leaves
    a stale lock behind. Re-entrant within a process (the CLI takes it before Prefect starts,
    the flow again inside)."""

    _held: dict[str, tuple[int, int]] = {}  # resolved lock path -> (fd, depth)
    _guard = threading.Lock()

    def __init__(self, out: Path, what: str = "docingest run"):
        self.path = OutLayout(out).state / "lock"
        self.what = what

    def __enter__(self) -> "OutputLock":
        key = str(self.path.resolve())
        with self._guard:
            if key in self._held:
                fd, depth = self._held[key]
                self._held[key] = (fd, depth + 1)
                return self
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                raise OutputLocked(
                    f"output folder {self.path.parents[1]} is in use by another run ({holder or 'unknown holder'}); "
                    "wait for it to finish or write to another --out") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"what": self.what, "pid": os.getpid(), "host": socket.gethostname(),
                                      "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode(), 0)
            self._held[key] = (fd, 1)
        return self

    def __exit__(self, *exc) -> None:
        key = str(self.path.resolve())
        with self._guard:
            fd, depth = self._held[key]
            if depth > 1:
                self._held[key] = (fd, depth - 1)
                return
            del self._held[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def recover(out: Path) -> list[str]:
    """Clean up after a run that was killed, holding the lock (so no run is writing): its
    staging folder goes (nothing of it was published; its documents' results stay in the
    result store and are reused), a committed run's missing index entry is restored, Data Docs
    of runs never committed and stray temp files are removed, and contract-7 tables move to the
    run layout. Returns what was done, one line each."""
    layout, done = OutLayout(out), []
    for staging in sorted(layout.staging_root.glob("*")):
        shutil.rmtree(staging, ignore_errors=True)
        done.append(f"removed the staging folder of unfinished run {staging.name}")
    _migrate_legacy(layout, done)
    committed = set()
    for run_dir in layout.committed_runs():
        committed.add(run_dir.name)
        index = layout.run_index(run_dir.name)
        if not index.exists() and (run_dir / MANIFEST).exists():
            write_text_atomic(index, (run_dir / MANIFEST).read_text(encoding="utf-8"))
            done.append(f"restored runs/{index.name}")
    for docs in sorted((out / "data_docs").glob("*")):
        if docs.is_dir() and docs.name not in committed:
            shutil.rmtree(docs, ignore_errors=True)
            done.append(f"removed the Data Docs of unfinished run {docs.name}")
    for folder in (layout.published, layout.quarantine, layout.runs, layout.results):
        for tmp in folder.rglob(".*.tmp") if folder.exists() else []:
            tmp.unlink(missing_ok=True)
            done.append(f"removed stray temp file {tmp.relative_to(out)}")
    for line in done:
        log.info("recovery: %s", line)
    return done


def _migrate_legacy(layout: OutLayout, done: list[str]) -> None:
    """Contract 7 wrote each table's part on its own, so a kill between them left a torn run:
    published runs move into the run layout (one rename each), parts of runs that never wrote a
    published manifest are torn leftovers and go."""
    parts: dict[str, dict[str, Path]] = {}
    for table in LEGACY_TABLES:
        for part in layout.out.glob(f"{table}/run_date=*/part-*.parquet"):
            parts.setdefault(part.stem.removeprefix("part-"), {})[table] = part
    for run_id, tables in sorted(parts.items()):
        index = layout.run_index(run_id)
        manifest = _read_json(index)
        if not manifest or manifest.get("published") is not True:
            for part in tables.values():
                part.unlink()
            done.append(f"removed {len(tables)} table parts of run {run_id}, which never finished publishing")
            continue
        run_date = next(iter(tables.values())).parent.name.removeprefix("run_date=")
        target = layout.published_run(run_date, run_id)
        staging = layout.staging(run_id)
        staging.mkdir(parents=True, exist_ok=True)
        for table, part in tables.items():
            os.replace(part, staging / f"{table}.parquet")
        manifest["files_written"] = {
            t: {**(manifest.get("files_written") or {}).get(t, {}),
                "path": str((target / f"{t}.parquet").relative_to(layout.out))} for t in tables}
        text = json.dumps(manifest, indent=2) + "\n"
        write_text_atomic(staging / MANIFEST, text)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, target)
        fsync_dir(target.parent)
        write_text_atomic(index, text)
        done.append(f"moved run {run_id} ({len(tables)} tables) to {target.relative_to(layout.out)}")
    for table in LEGACY_TABLES:
        folder = layout.out / table
        if folder.is_dir():
            for leftover in folder.rglob(".*.tmp"):
                leftover.unlink()
            for sub in sorted(folder.glob("run_date=*"), reverse=True):
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()
            if not any(folder.iterdir()):
                folder.rmdir()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path} is unreadable ({exc}): move it away or repair it") from exc
