"""Retry policy: only transient errors are worth another attempt."""

from __future__ import annotations

from docingest.errors import is_transient


def retry_if_transient(task, task_run, state) -> bool:
    # Prefect calls this with the failed state; for an exception raised in the task its data
    # is the exception itself. Must stay a plain function (Prefect checks inspect.isfunction).
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # the result could not be loaded: do not retry blind
            return False
    return isinstance(exc, BaseException) and is_transient(exc)


def retry_if_unavailable(task, task_run, state) -> bool:
    """Warehouse loads: retry when the database could not be reached or answered with a
    transient error (connection lost, serialization failure, deadlock), not on a bad schema."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:
            return False
    from docingest.warehouse.backends import is_transient_database_error

    return isinstance(exc, BaseException) and is_transient_database_error(exc)
