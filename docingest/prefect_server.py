"""The ephemeral Prefect server of a docingest command: started first, dies with the command.

Without ``PREFECT_API_URL`` Prefect 3.8 starts an ephemeral API server as a child ``uvicorn``
process when the first flow run needs it (``SubprocessASGIServer``), and the parent waits
≈ 5–7 s for a child that mostly imports modules. docingest starts that same server (the same
uvicorn command and environment; Prefect's app, one shutdown log record quieter, see
``create_server_app``) as the command's first step instead: the child boots on the other core
while the parent imports Prefect, docingest and the gate's Great Expectations, and Prefect is
pointed at it. The child asks the kernel (``prctl(PR_SET_PDEATHSIG)``) for SIGTERM when the
thread that started it (the main thread) ends, so even a SIGKILLed run leaves no server behind
(checked by tests/test_hostile_inputs.py).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """In the child, before exec: SIGTERM when the parent goes; gone already, go now."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


# The server records task runs from the events clients send. By default it writes each event
# in its own transaction: a run's first events queue up behind one another in SQLite, and the
# API call that creates the run's first child flow waited ≈ 2 s for them. Batched (up to 100
# events, at least every second) the same call takes ≈ 0.2 s. The environment overrides these.
_SERVICE_DEFAULTS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


_RECORDER_LOGGER = "prefect.server.services.task_run_recorder"


def create_server_app():
    """The server's ASGI app: Prefect's own, with one log record of its shutdown made quiet.

    Stopping the server cancels the task-run recorder's periodic flush if one is in flight
    (about one command in ten with the batched recorder above). Prefect 3.8 then logs an ERROR
    with a traceback, puts the batch back on its queue, and writes it in its final flush:
    nothing is lost (checked: every task run of such a command ends terminal in the database).
    Only that record is dropped. Events Prefect drops have a record of their own, which stays.
    """
    from prefect.server.api.server import create_app

    app = create_app()
    logging.getLogger(_RECORDER_LOGGER).addFilter(retried_flush_on_shutdown_is_quiet)
    return app


def retried_flush_on_shutdown_is_quiet(record: logging.LogRecord) -> bool:
    """False (drop) for the recorder's "Error flushing N events (N to retry, 0 dropped)" when
    the error is the cancellation of stopping; True for every other record."""
    import asyncio

    cancelled = bool(record.exc_info) and isinstance(record.exc_info[1], asyncio.CancelledError)
    message = record.getMessage()
    return not (cancelled and message.startswith("Error flushing ") and message.endswith(" 0 dropped)"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EarlyServer:
    """An ephemeral Prefect API server in a child process that dies with this one."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        env = {**_SERVICE_DEFAULTS, **os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        import importlib.util

        app_dir = os.path.dirname(os.path.dirname(importlib.util.find_spec("prefect").origin))
        args = [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory",
                "docingest.prefect_server:create_server_app", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "error", "--lifespan", "on"]
        parent = os.getpid()
        self.process = subprocess.Popen(args=args, env=env, preexec_fn=lambda: _die_with(parent))

    @classmethod
    def start(cls) -> "EarlyServer | None":
        """Started only when no API is named in the environment (a named one is used as is;
        one named in a Prefect profile is found after Prefect is imported, see ``prefect_api``)."""
        if os.environ.get("PREFECT_API_URL") or not sys.platform.startswith("linux"):
            return None
        return cls()

    def wait_healthy(self, timeout: float) -> None:
        import time
        import urllib.request

        from docingest.errors import RunError

        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise RunError(f"the ephemeral Prefect server exited with code {code} while starting")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RunError(f"the ephemeral Prefect server did not answer within {timeout:.0f} s "
                               "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def prefect_api(early: EarlyServer | None, while_starting: Callable[[], None] | None = None) -> Iterator[None]:
    """Point Prefect at ``early`` for the duration, unless Prefect's own settings name an API
    (a profile or prefect.toml: that server is used, ``early`` is stopped). ``while_starting``
    runs while the server boots (imports the run needs later)."""
    if early is None:
        yield
        return
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        early.stop()  # a configured server (or none allowed): Prefect decides as it always does
        yield
        return
    try:
        if while_starting is not None:
            while_starting()
        early.wait_healthy(settings.server.ephemeral.startup_timeout_seconds)
        # Through the environment and Prefect's global settings: every thread (Prefect's own
        # log and event workers) and every worker process sees the same API.
        os.environ["PREFECT_API_URL"] = early.url
        refresh_global_settings_context()
        # Flow-run heartbeats let a long-lived server mark crashed runs; this server lives
        # only as long as the command. Each flow run also waits up to 1 s at its end for its
        # heartbeat thread: 1.1 s per child flow run where 0.2 s without.
        with temporary_settings(updates={"flows.heartbeat_frequency": None}):
            yield
    finally:
        _drain_to_api()  # logs and events still queued go to the server before it stops
        os.environ.pop("PREFECT_API_URL", None)
        refresh_global_settings_context()
        early.stop()


def _drain_to_api(timeout: float = 10) -> None:
    """Send Prefect's queued logs and events now: sent at exit, after the server stopped, each
    would be retried against a closed port for a minute and more."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout)
        except Exception:  # noqa: BLE001 - never started, or already drained
            pass
