"""docingest: PDFs and scans in, classified, extracted, checked, routed, typed parquet out."""

__version__ = "0.1.0"
