"""JSON written through orjson must store and send the values the json module wrote."""
from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import http, jsontext
from connectors.kingdee import client as kingdee_client
from sync_engine.state import types

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_reads_back_as_the_json_module_reads_it(value):
    # Integers of any size included: beyond 64 bits orjson refuses to write them and reads them as floats.
    stored = types.dumps_json(value)
    assert types.loads_json(stored) == json.loads(json.dumps(value))
    assert json.loads(http.dumps_json(value)) == json.loads(json.dumps(value))


def test_integers_beyond_64_bits_keep_every_digit():
    # orjson refuses to write them (the json module does) and would read them as floats.
    big = 12345678901234567890123
    stored = types.dumps_json({"n": big, "m": -big})
    assert stored.startswith(" ")  # written by the json module, so read by it too
    assert types.loads_json(stored) == {"n": big, "m": -big}
    # PostgreSQL's JSONB hands the text back rewritten, without the lead: read by the json module always.
    assert types.loads_json_exact(stored.strip()) == {"n": big, "m": -big}
    assert isinstance(types.loads_json(types.dumps_json([2**63 - 1, -(2**63)]))[0], int)
    assert json.loads(http.dumps_json([big])) == [big]


def test_what_only_the_json_module_writes():
    assert types.loads_json(types.dumps_json({1: "x"})) == {"1": "x"}  # keys that are not strings
    assert json.loads(jsontext.dumps({2: [True]})) == {"2": [True]}
    # NaN and infinities are not JSON (PostgreSQL's JSONB refuses them): written as null, as orjson does.
    assert types.loads_json(types.dumps_json({"a": math.inf, "b": math.nan})) == {"a": None, "b": None}
    # Texts the json module wrote before orjson came in, and what only it reads.
    assert types.loads_json('{"name": "深圳市华为技术有限公司", "n": [1, 2]}') == {"name": "深圳市华为技术有限公司", "n": [1, 2]}
    assert math.isnan(types.loads_json('{"a": NaN}')["a"])
    with pytest.raises(ValueError):
        types.loads_json("{not json")
    with pytest.raises(TypeError):
        jsontext.dumps({"amount": Decimal(1)})  # no default: refused, as by the json module


def test_the_state_keeps_its_conversions():
    cst = timezone(timedelta(hours=8))
    value = {
        "name": "深圳市华为技术有限公司",
        "amount": Decimal("1.10"),
        "at": datetime(2026, 11, 27, 9, 30, 0, 120, tzinfo=cst),  # stored in UTC
        "naive": datetime(2026, 11, 27, 9, 30),
        "day": date(2026, 11, 27),
        "id": UUID(int=5),
        "tags": {"b", "a"},
    }
    text = types.dumps_json(value)
    assert "深圳市华为技术有限公司" in text  # UTF-8 kept as is, not \\u escapes
    assert types.loads_json(text) == {
        "name": "深圳市华为技术有限公司", "amount": "1.10", "at": "2026-11-27T01:30:00.000120+00:00",
        "naive": "2026-11-27T09:30:00", "day": "2026-11-27", "id": "00000000-0000-0000-0000-000000000005",
        "tags": ["a", "b"],
    }

    class Unknown:
        pass

    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        types.dumps_json({"x": Unknown()})


def test_bodies_sent_to_the_crms_keep_their_conversions():
    body = {"Account_Name": "深圳市华为技术有限公司", "Amount": Decimal("12.50"), "Huge": Decimal("1234567890123456.7"),
            "Day": date(2026, 11, 27)}
    assert http.dumps_json(body) == json.dumps(
        {"Account_Name": "深圳市华为技术有限公司", "Amount": 12.5, "Huge": "1234567890123456.7", "Day": "2026-11-27"},
        ensure_ascii=False, separators=(",", ":"),
    ).encode()
    # Kingdee takes its datetimes as "YYYY-MM-DD HH:MM:SS", not ISO 8601.
    sent = json.loads(kingdee_client.encode({"FDate": datetime(2026, 11, 27, 9, 30, 5)}))
    assert sent == {"FDate": "2026-11-27 09:30:05"}
