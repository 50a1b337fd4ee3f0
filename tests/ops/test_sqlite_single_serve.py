"""SQLite serves one `crmsync serve` process: a second serve on the same file and separate
`crmsync worker` processes are refused with a clear message (PostgreSQL is for several)."""
from __future__ import annotations

import fcntl
import subprocess
import sys

from tests.ops.test_serve_e2e import config_text

CLI = [sys.executable, "-c", "from sync_engine.cli import main; main()"]
NOWHERE = "http://127.0.0.1:9"  # never contacted: the refusal comes first


def write_config(tmp_path):
    config = tmp_path / "sqlite.yaml"
    config.write_text(config_text(NOWHERE, NOWHERE, NOWHERE, 18080, f"sqlite:///{tmp_path / 'state.db'}"), encoding="utf-8")
    return config


def test_worker_processes_need_postgresql(tmp_path):
    done = subprocess.run([*CLI, "worker", str(write_config(tmp_path))], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "crmsync worker needs a PostgreSQL state database" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_second_serve_on_the_same_sqlite_file_is_refused(tmp_path):
    config = write_config(tmp_path)
    with open(tmp_path / "state.db.serve.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running serve holds it
        done = subprocess.run([*CLI, "serve", str(config)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "another crmsync serve is already using the SQLite state database" in done.stderr
    assert "Traceback" not in done.stderr
