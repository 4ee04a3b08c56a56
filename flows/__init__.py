"""Prefect flows of docingest."""
