"""Run an ASGI app on a loopback port in a background thread (tests, benchmarks, the demo)."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ThreadedServer:
    """A uvicorn server in a daemon thread. ``url`` is ready once :meth:`start` returns."""

    def __init__(
        self, app, *, host: str = LOOPBACK, port: int = 0, log_level: str = "warning", allow_any_host: bool = False
    ) -> None:
        if host not in (LOOPBACK, "localhost", "::1") and not allow_any_host:
            raise ValueError("emulators listen on loopback only")
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level=log_level, lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"emulator:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "ThreadedServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"emulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextlib.contextmanager
def serve_in_thread(app, *, host: str = LOOPBACK, port: int = 0) -> Iterator[ThreadedServer]:
    server = ThreadedServer(app, host=host, port=port).start()
    try:
        yield server
    finally:
        server.stop()
