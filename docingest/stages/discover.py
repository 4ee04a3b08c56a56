"""Discover: walk a folder, fingerprint every file, fold identical bytes into one document.

Discovery never blocks and never leaves the source: only regular files are opened (checked
with ``lstat`` before and ``fstat`` after a non-blocking open), FIFOs, sockets and devices are
recorded and left alone, links that point outside the source folder are not followed unless
asked, and no file is read beyond the size limit. Every entry found is either a document or a
rejected input with its reason: nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from docingest.errors import (
    DocingestError,
    FileTooLarge,
    NotARegularFile,
    SymlinkOutsideSource,
    UnencodableName,
    UnreadableFile,
)
from docingest.schemas.records import SourceDocument, StageError

_CHUNK = 1 << 20
_DEFAULT_MAX_BYTES = 200 * 1024 * 1024

# Magic bytes -> media type. The extension is never trusted: a renamed file is still read
# for what it is, and an unknown file is reported rather than guessed at.
MEDIA_TYPES = {
    "application/pdf", "image/png", "image/jpeg", "image/tiff", "image/webp", "image/gif",
    "application/xml",  # an e-invoice (XRechnung / Factur-X / Peppol; CII or UBL) on its own
}
_E_INVOICE_ROOTS = (b"CrossIndustryInvoice", b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
                    b"urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2")


def sniff_media_type(head: bytes) -> str | None:
    # Image signatures first: they sit at offset 0, while a PDF header may follow some junk
    # (PDFium reads it there), so a PNG whose pixels happen to hold "%PDF-" stays a PNG.
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
    if head.startswith(b"%PDF") or b"%PDF-" in head[:1024]:
        return "application/pdf"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<") and any(r in head for r in _E_INVOICE_ROOTS):
        return "application/xml"  # only an e-invoice: other XML is not a document we read
    return None


@dataclass(frozen=True)
class RejectedInput:
    """An entry of the source that is not read: it still gets its documents and failures rows."""

    path: str  # a name that is not valid UTF-8 is shown with \\xNN escapes
    error: StageError


def display_path(path: str) -> str:
    """``path`` as text that can be stored: undecodable bytes of a file name as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _storable(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode turned undecodable bytes into lone surrogates
        return False
    return True


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _what(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


class _Walk:
    def __init__(self, root: str, follow_symlinks: bool):
        self.root = root
        self.real_root = os.path.realpath(root)
        self.follow = follow_symlinks
        self.files: list[str] = []
        self.rejected: list[RejectedInput] = []

    def reject(self, path: str, error: DocingestError) -> None:
        self.rejected.append(RejectedInput(display_path(path), error.to_record()))

    def entry(self, path: str, named: bool = False) -> None:
        """A file (or what claims to be one). ``named``: given explicitly, so a link is followed."""
        if not _storable(path):
            self.reject(path, UnencodableName(
                "file name is not valid UTF-8 (shown with \\xNN escapes): not read; rename the file"))
            return
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if not (named or self.follow or _inside(os.path.realpath(path), self.real_root)):
                    self.reject(path, SymlinkOutsideSource(
                        "symbolic link to a file outside the source folder: not followed "
                        "(--follow-symlinks follows links)"))
                    return
                st = os.stat(path)
        except OSError as exc:
            self.reject(path, UnreadableFile(f"cannot read file: {exc.strerror or exc}"))
            return
        if not stat.S_ISREG(st.st_mode):
            self.reject(path, NotARegularFile(f"{_what(st.st_mode)}: not read"))
            return
        self.files.append(path)

    def folder(self, top: str) -> None:
        stack, seen = [top], {_dir_key(top)}
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.reject(folder, UnreadableFile(f"cannot list folder: {exc.strerror or exc}"))
                continue
            for e in entries:
                if e.name.startswith("."):
                    continue
                try:
                    is_link, is_dir = e.is_symlink(), e.is_dir()  # is_dir follows a link
                except OSError:
                    is_link, is_dir = False, False
                if is_dir and not is_link:
                    stack.append(e.path)
                elif is_dir:
                    target = os.path.realpath(e.path)
                    if not self.follow:
                        if not _inside(target, self.real_root):
                            self.reject(e.path, SymlinkOutsideSource(
                                "symbolic link to a folder outside the source folder: not followed "
                                "(--follow-symlinks follows links)"))
                        # A link to a folder inside the source: its files are read at their own paths.
                        continue
                    key = _dir_key(e.path)
                    if key is not None and key not in seen:  # a link back up would loop forever
                        seen.add(key)
                        stack.append(e.path)
                else:
                    self.entry(e.path)


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def list_inputs(source: Path | list[Path], follow_symlinks: bool = False) -> tuple[list[str], list[RejectedInput]]:
    """The regular files under ``source`` (a folder, a file, or a list of files), hidden ones
    skipped, and the entries that are not read, each with its reason."""
    if isinstance(source, list):
        walk = _Walk(os.path.abspath(os.sep), follow_symlinks)
        for p in source:
            walk.entry(os.path.abspath(p), named=True)
    else:
        root = os.path.abspath(source)
        walk = _Walk(root, follow_symlinks)
        if os.path.isdir(root):
            walk.folder(root)
        else:
            walk.entry(root, named=True)
    return sorted(walk.files), sorted(walk.rejected, key=lambda r: r.path)


def fingerprint(path: str, max_bytes: int = _DEFAULT_MAX_BYTES) -> tuple[str, int, str | None]:
    """sha256, size and sniffed media type, reading the file once in chunks and never more
    than ``max_bytes``. Raises typed errors for what is not a regular file or is too large."""
    # Non-blocking: a file swapped for a FIFO since the lstat cannot hang the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"{_what(st.st_mode)}: not read")
        if st.st_size > max_bytes:
            raise FileTooLarge(_too_large(st.st_size, max_bytes))
        digest = hashlib.sha256()
        size = 0
        head = b""
        while chunk := fh.read(_CHUNK):
            if not head:
                head = chunk[:2048]
            digest.update(chunk)
            size += len(chunk)
            if size > max_bytes:  # it grew while being read
                raise FileTooLarge(_too_large(size, max_bytes) + " (the file grew while it was read)")
    return digest.hexdigest(), size, sniff_media_type(head)


def _too_large(size: int, limit: int) -> str:
    return f"file is {size / 2**20:.1f} MiB, more than the limit of {limit / 2**20:.0f} MiB: not read"


def discover(source: Path | list[Path], follow_symlinks: bool = False,
             max_file_bytes: int = _DEFAULT_MAX_BYTES) -> tuple[list[SourceDocument], list[RejectedInput]]:
    """Group the files under ``source`` (a folder, a file, or a list of files) by content;
    the same bytes are processed once, with every path recorded. Paths are absolute: the
    tables are read later from elsewhere (review app, warehouse lineage, duplicate checks
    across runs started from different folders)."""
    paths, rejected = list_inputs(source, follow_symlinks)
    groups: dict[str, list[tuple[str, int, str | None]]] = {}
    for path in paths:
        try:
            digest, size, media_type = fingerprint(path, max_file_bytes)
        except DocingestError as exc:
            rejected.append(RejectedInput(display_path(path), exc.to_record()))
            continue
        except OSError as exc:
            rejected.append(RejectedInput(display_path(path), UnreadableFile(
                f"cannot read file: {exc.strerror or exc}").to_record()))
            continue
        groups.setdefault(digest, []).append((path, size, media_type))
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
    rejected.sort(key=lambda r: r.path)
    return documents, rejected
