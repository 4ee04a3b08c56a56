"""Discover: walk a folder, fingerprint every file, fold identical bytes into one document."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from docingest.schemas.records import SourceDocument

_CHUNK = 1 << 20

# Magic bytes -> media type. The extension is never trusted: a renamed file is still read
# for what it is, and an unknown file is reported rather than guessed at.
MEDIA_TYPES = {
    "application/pdf", "image/png", "image/jpeg", "image/tiff", "image/webp", "image/gif",
}


def sniff_media_type(head: bytes) -> str | None:
    if head.startswith(b"%PDF") or b"%PDF-" in head[:1024]:
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image/tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


@dataclass(frozen=True)
class UnreadableInput:
    path: str
    message: str


def fingerprint(path: Path) -> tuple[str, int, str | None]:
    """sha256, size and sniffed media type, reading the file once in chunks."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if not head:
                head = chunk[:2048]
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, sniff_media_type(head)


def list_files(source: Path) -> list[Path]:
    """Every regular file below ``source`` (or ``source`` itself), sorted, hidden ones skipped."""
    if source.is_file():
        return [source]
    files: list[Path] = []
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in names if not n.startswith("."))
    return sorted(files)


def discover(source: Path | list[Path]) -> tuple[list[SourceDocument], list[UnreadableInput]]:
    """Group the files under ``source`` (a folder, a file, or a list of files) by content;
    the same bytes are processed once, with every path recorded."""
    groups: dict[str, list[tuple[str, int, str | None]]] = {}
    unreadable: list[UnreadableInput] = []
    # Absolute paths: the tables are read later from elsewhere (review app, warehouse lineage,
    # duplicate checks across runs started from different folders).
    paths = sorted(Path(os.path.abspath(p)) for p in source) if isinstance(source, list) \
        else list_files(Path(os.path.abspath(source)))
    for path in paths:
        try:
            digest, size, media_type = fingerprint(path)
        except OSError as exc:
            unreadable.append(UnreadableInput(path=str(path), message=f"cannot read file: {exc}"))
            continue
        groups.setdefault(digest, []).append((str(path), size, media_type))
    documents = [
        SourceDocument(
            doc_id=digest,
            path=members[0][0],
            paths=tuple(m[0] for m in members),
            size_bytes=members[0][1],
            media_type=members[0][2],
        )
        for digest, members in groups.items()
    ]
    documents.sort(key=lambda d: d.path)
    return documents, unreadable
