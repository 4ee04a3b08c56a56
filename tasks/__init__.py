"""Thin Prefect task wrappers around the plain stage functions in ``docingest``."""
