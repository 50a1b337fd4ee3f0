"""The settings model: clear errors for impossible configs, a described JSON Schema, and
the token refresh window."""
from __future__ import annotations

import random

import pytest
from pydantic import BaseModel, ValidationError

from connectors.fxiaoke.auth import TokenManager
from connectors.fxiaoke.plugin import plugin
from connectors.fxiaoke.settings import FxiaokeSettings

BASE = {"app_id": "FSAID_1", "app_secret": "s", "permanent_code": "p"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"auth_style": "legacy"}, "open_user_id"),
        ({"host": "open.fxiaoke.com"}, "https://"),
        ({"page_size": 500}, "less than or equal to 100"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"tombstones": {"life_status_values": []}}, "at least one"),
        ({"rate_limit_calls": 5, "rate_limit_burst": 5}, "rate_limit_burst"),
        ({"token_refresh_min_age_seconds": 7200, "token_refresh_max_age_seconds": 7000}, "must not exceed"),
    ],
)
def test_impossible_settings_are_refused_with_a_clear_message(extra, message):
    with pytest.raises(ValidationError, match=message):
        FxiaokeSettings(**BASE, **extra)


def test_defaults_follow_the_documentation():
    s = FxiaokeSettings(**BASE)
    assert s.host == "https://open.fxiaoke.com" and s.auth_style == "current"
    assert (s.rate_limit_calls, s.rate_limit_period_seconds, s.token_calls_per_minute, s.page_size) == (100, 20, 10, 100)
    assert s.offset_wall == 10_000 and s.tombstones.life_status_values == ["invalid"]
    hidden = FxiaokeSettings(**{**BASE, "app_secret": "e4d0-real-secret"})
    assert "e4d0-real-secret" not in repr(hidden) and "e4d0-real-secret" not in hidden.model_dump_json()
    assert s.limit_for("/cgi/crm/v2/data/query") == 100
    assert FxiaokeSettings(**BASE, endpoint_rate_limits={"/cgi/crm/v2/data/query": 300}).limit_for(
        "/cgi/crm/v2/data/query") == 300


def test_every_field_in_the_json_schema_has_a_description():
    schema = plugin.settings_model.model_json_schema()
    missing = []

    def walk(properties: dict, where: str) -> None:
        for name, prop in properties.items():
            if not prop.get("description"):
                missing.append(f"{where}{name}")

    walk(schema["properties"], "")
    for name, definition in schema.get("$defs", {}).items():
        walk(definition.get("properties", {}), f"{name}.")
    assert missing == []
    assert issubclass(plugin.settings_model, BaseModel)


@pytest.mark.parametrize("expires_in", [7200, 7084, 3600, 5])
def test_proactive_refresh_falls_inside_the_documented_age_window(expires_in):
    manager = TokenManager(FxiaokeSettings(**BASE), post_json=None, system="t", rng=random.Random(1))  # type: ignore[arg-type]
    for _ in range(200):
        delay = manager._refresh_delay(float(expires_in))
        assert 0 < delay < expires_in
        if expires_in >= 7000:
            age = (7200 - expires_in) + delay  # how old the token is when we refresh it
            assert 6650 - 1 <= age <= 7140 + 1
