"""The decision log: ``OUT/reviews/decisions.jsonl``, append-only.

A decision is on disk (written, flushed, fsynced) before the reviewer sees "saved", so a
server killed a moment later loses nothing. Lines are only ever appended; a later decision
for the same document supersedes an earlier one when applied, and both stay in the log. A
crash in the middle of a write can leave a torn last line: it is skipped on read (and the
next append starts on a fresh line).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from pydantic import ValidationError

from docingest.schemas.review import ReviewDecision


class DecisionLog:
    def __init__(self, out: Path):
        self.path = out / "reviews" / "decisions.jsonl"
        self._lock = threading.Lock()

    def append(self, decision: ReviewDecision) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = decision.model_dump_json() + "\n"
        with self._lock, open(self.path, "a+b") as fh:
            # Other processes (a second review server) append to the same file.
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":  # a torn line from a crash: end it first
                        fh.write(b"\n")
                fh.write(line.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        if not getattr(self, "_dir_synced", False):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)  # the file's directory entry, once
            finally:
                os.close(fd)
            self._dir_synced = True

    def read(self) -> list[ReviewDecision]:
        if not self.path.exists():
            return []
        decisions = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                decisions.append(ReviewDecision.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError):
                continue  # a torn line from a crash mid-write
        return decisions

    def latest_by_doc(self) -> dict[str, ReviewDecision]:
        latest: dict[str, ReviewDecision] = {}
        for d in self.read():
            if d.doc_id not in latest or d.decided_at >= latest[d.doc_id].decided_at:
                latest[d.doc_id] = d
        return latest
