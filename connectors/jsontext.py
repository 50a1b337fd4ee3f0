"""JSON text in and out through orjson, the json module where orjson would differ.

JSON is most of the CPU a page of records costs on either side: the CRMs' answers parsed,
the state's JSON columns written and read back. orjson does it in a fraction of the time; where
it refuses what the json module accepts, or reads a number differently, the json module does it:

* writing: integers beyond 64 bits, keys that are not strings, lone surrogates. NaN and infinities,
  which are not JSON (PostgreSQL's JSONB refuses them), are written as null;
* reading: NaN and Infinity, and integers of 19 digits or more (orjson reads integers beyond 64 bits
  as floats, which would lose digits). The check looks for a long digit run after ``:``, ``[`` or
  ``,``; one inside a string only costs the slower parser, never a wrong value.
"""
from __future__ import annotations

import json
import re
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


#: A number of 19 digits or more: where a JSON number can start, then its digits.
_LONG_INTEGER = re.compile(r"(?:^|[:\[,])\s*-?\d{19}")
_LONG_INTEGER_BYTES = re.compile(_LONG_INTEGER.pattern.encode())


def loads(text: str | bytes) -> Any:
    pattern = _LONG_INTEGER if isinstance(text, str) else _LONG_INTEGER_BYTES
    if pattern.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the json module reads it, or raises its own error
    return json.loads(text)
