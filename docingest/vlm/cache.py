"""On-disk cache of VLM answers: a rerun of the same inputs sends no request.

Keyed by everything that determines the answer: the page image digest, the model, the prompt
version, the schema version and the request parameters. Whether structured outputs were used
is not part of the key (the answer means the same either way), so a rerun against a server
that rejects ``response_format`` does not even send the probe. Entries are written atomically
(temp file + rename); an unreadable entry is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResponseCache:
    def __init__(self, root: Path | None):
        self.root = root  # None: caching off

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        if self.root is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as fh:
                json.dump(entry, fh)
            os.replace(tmp, path)
        except OSError:
            # A cache that cannot be written costs a request next time, nothing more.
            pass
