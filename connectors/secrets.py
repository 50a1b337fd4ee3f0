"""Secret values obtained at run time (access tokens, session ids), for redaction.

Connectors call :func:`register_secret` with every credential they obtain from a system; the
logging layer (``sync_engine.logs``) redacts everything registered here, as it does the
configuration's own secrets. It lives at the bottom of the import graph so that connectors can
use it without importing the engine.
"""
from __future__ import annotations

import threading

_secrets: set[str] = set()
_lock = threading.Lock()
#: Shorter values are ignored: redacting "1" would mangle every line.
MIN_LENGTH = 4


def register_secret(value: str | None) -> None:
    if value and len(value) >= MIN_LENGTH:
        with _lock:
            _secrets.add(value)


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)
