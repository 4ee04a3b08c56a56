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
    """The log, read incrementally: a request parses only the lines appended since the last
    one (by this or another process), never the whole file again."""

    def __init__(self, out: Path):
        self.path = out / "reviews" / "decisions.jsonl"
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._file: tuple[int, int] | None = None  # (device, inode) of the file read so far
        self._offset = 0
        self._decisions: list[ReviewDecision] = []
        self._latest: dict[str, ReviewDecision] = {}

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
        with self._read_lock:
            self._catch_up()
            return list(self._decisions)

    def latest_by_doc(self) -> dict[str, ReviewDecision]:
        with self._read_lock:
            self._catch_up()
            return dict(self._latest)

    def _catch_up(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._file, self._offset, self._decisions, self._latest = None, 0, [], {}
            return
        if self._file != (st.st_dev, st.st_ino) or st.st_size < self._offset:
            # A new or rewritten file: read it from the start.
            self._file, self._offset, self._decisions, self._latest = (st.st_dev, st.st_ino), 0, [], {}
        if st.st_size == self._offset:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            new = fh.read(st.st_size - self._offset)
        end = new.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        for line in new[:end].decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                decision = ReviewDecision.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError):
                continue  # a torn line from a crash mid-write
            self._decisions.append(decision)
            known = self._latest.get(decision.doc_id)
            if known is None or decision.decided_at >= known.decided_at:
                self._latest[decision.doc_id] = decision
