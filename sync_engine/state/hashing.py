"""Stable hashes of canonical values, for snapshots, records and reconciliation.

Two dicts with the same content hash the same whatever their key order, and a
value hashed before it was stored hashes the same as the value read back
(Decimal and datetime are hashed in their stored JSON form).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .types import _json_default


def canonical_json(values: Mapping[str, Any]) -> str:
    return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_json_default)


def values_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 hex digest (64 characters) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(values).encode("utf-8")).hexdigest()
