"""The ephemeral Prefect server of a `docingest run` dies with the run, even when the run is
killed with SIGKILL (no handler runs then, so Prefect's own shutdown never happens).

Prefect 3.8 starts the ephemeral server as a child ``uvicorn`` process
(``SubprocessASGIServer._run_uvicorn_command``). The command below is that method's, with
one addition: the child asks the kernel (``prctl(PR_SET_PDEATHSIG)``) for SIGTERM when the
thread that started it ends. Prefect starts the server once per process and keeps the
starting thread alive for the process's life (checked by tests/test_durable_runs.py: a
killed run leaves no server behind, an unkilled run completes).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """In the child, before exec: SIGTERM when the parent goes; gone already, go now."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def die_with_this_process() -> None:
    """Make Prefect's ephemeral server a child that dies with this process (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    from prefect.server.api import server as prefect_server

    cls = prefect_server.SubprocessASGIServer
    if getattr(cls, "_docingest_dies_with_parent", False):
        return
    original = cls._run_uvicorn_command

    def run_uvicorn_command(self) -> subprocess.Popen[Any]:
        import prefect
        from prefect.settings import get_current_settings

        try:
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                   "PREFECT__SERVER_FINAL": "1",
                   **get_current_settings().to_environment_variables(exclude_unset=True)}
            args = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                    "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
        except Exception:  # noqa: BLE001 - another Prefect version: its own command, unguarded
            return original(self)
        parent = os.getpid()
        return subprocess.Popen(args=args, env=env, preexec_fn=lambda: _die_with(parent))

    cls._run_uvicorn_command = run_uvicorn_command
    cls._docingest_dies_with_parent = True
