import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

# Prefect state goes to a throwaway home; nothing phones out.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="docingest-prefect-"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

SAMPLES = ROOT / "data" / "samples"

# Tests are hermetic: a developer's own endpoint, key or docingest settings must not leak in
# (with OPENAI_API_KEY and DOCINGEST_VLM_MODEL set, the default extractor would call out).
for _name in list(os.environ):
    if _name.startswith("DOCINGEST_") or _name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        del os.environ[_name]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture
def settings():
    from docingest.config import Settings

    return Settings(workers=2, show_progress=False, task_retries=0)


@pytest.fixture(scope="session")
def engines():
    from docingest.config import OcrName
    from docingest.engines import TextLayerEngine, build_ocr_engine
    from docingest.pipeline import Engines

    return Engines(text_layer=TextLayerEngine(), ocr=build_ocr_engine(OcrName.RAPIDOCR))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on loopback for the warehouse tests (Debian's postgresql,
    installed by the README's test command): initdb into a temp folder, started on a free port,
    stopped after the session. As root the server runs as the postgres user."""
    import glob
    import socket
    import subprocess

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert bins, "PostgreSQL is not installed: apt-get install -y postgresql (see README, Tests)"
    bindir = Path(bins[-1])
    # /tmp itself: the postgres user must reach the folder (a pytest temp folder is root-only).
    data = Path(tempfile.mkdtemp(prefix="docingest-pg-", dir="/tmp"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "docingest",
                    "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w",
                    "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "docingest", "warehouse"],
                       check=True, capture_output=True)
        yield f"postgresql://docingest@127.0.0.1:{port}/warehouse"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
