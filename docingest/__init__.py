"""docingest: PDFs and scans in, classified, extracted, checked, routed, typed parquet out."""

import time as _time

__version__ = "0.1.0"

# When this package was first imported: the first thing the `docingest` command does
# (docingest.progress.process_seconds).
IMPORTED_AT = _time.monotonic()
