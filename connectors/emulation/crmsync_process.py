"""crmsync itself as a child process (``crmsync serve``, ``crmsync worker``), for the end-to-end
tests and the benches.

One helper so that every one of them starts, waits for and stops crmsync the same way:
unbuffered output to a log file or collected in memory, ready once ``/healthz`` answers (failing
at once if the process exits first), and stopped by SIGTERM with a bounded wait, then SIGKILL.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx

#: The CLI of the crmsync installed in this interpreter (no reliance on a ``crmsync`` script on PATH).
CLI = [sys.executable, "-c", "from sync_engine.cli import main; main()"]


class NotReady(RuntimeError):
    """The process exited, or did not answer /healthz in time."""


class CrmsyncProcess:
    """``crmsync ARGS…`` as a child process; a context manager that starts and stops it.

    ``log``: write its output there (appended with ``append``), else keep it in :attr:`output`.
    ``port``: wait until ``http://127.0.0.1:PORT/healthz`` answers 200 before :meth:`start` returns.
    ``new_session``: its own process group, so a stop that times out kills its workers too.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        log: Path | None = None,
        append: bool = False,
        port: int | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 45.0,
        new_session: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.args = [str(a) for a in args]
        self.log_path = log
        self.append = append
        self.port = port
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.new_session = new_session
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen | None = None
        self._log = None
        #: its output lines as they come (when there is no ``log``)
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> Self:
        if self.log_path is not None:
            self._log = open(self.log_path, "a" if self.append else "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*CLI, *self.args], stdout=self._log if self._log is not None else subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace", env=self.env, start_new_session=self.new_session,
        )
        if self._log is None:
            # Read as it comes: a full pipe would block the child.
            self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
            self._reader.start()
        if self.port is not None:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NotReady(f"crmsync {self.args[0]} exited with {self.process.returncode}:\n{self.output[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise NotReady(f"crmsync {self.args[0]} did not answer /healthz on port {self.port}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after ``stop_timeout`` seconds; the exit status."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                if self.new_session:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode if process is not None else None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # -- the child -------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def poll(self) -> int | None:
        return self.process.poll()

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def output(self) -> str:
        """Everything it printed so far (stdout and stderr)."""
        if self.log_path is not None:
            if self._log is not None:
                self._log.flush()
            return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "".join(self.lines)
