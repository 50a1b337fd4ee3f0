"""JSON text out through orjson, the json module where orjson refuses what it writes.

Writing JSON is a good part of the CPU a record costs: the state's JSON columns (staged data,
snapshots, outbox values, audit details) and the bodies sent to the CRMs. orjson writes it in a
fraction of the time. What it refuses and the json module writes: integers beyond 64 bits, keys that
are not strings, lone surrogates. NaN and infinities, which are not JSON (PostgreSQL's JSONB refuses
them), orjson writes as null.

Texts from elsewhere (the CRMs' answers) are read with the json module: orjson reads an integer beyond
64 bits as a float, losing digits, and finding such numbers in a text first costs more than the json
module's whole parse. The state's own texts can be told apart as they are written, so SQLite's are read
with orjson (sync_engine/state/types.py).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

#: For ``orjson.dumps``: datetimes and dataclasses go to ``default``, as in the json module (orjson
#: would write a datetime with its own offset, and a dataclass the json module refuses).
DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is); ``default`` as in ``json.dumps``."""
    try:
        return orjson.dumps(value, default=default, option=DUMPS_OPTIONS)
    except orjson.JSONEncodeError:
        # What orjson refuses; the json module writes it or raises its own error.
        return json.dumps(value, ensure_ascii=False, default=default, separators=(",", ":")).encode("utf-8")
