"""Warehouse loads: the published runs and the curated reviews into DuckDB or PostgreSQL."""
