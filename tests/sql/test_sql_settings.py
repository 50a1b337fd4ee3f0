"""Settings validation, time conversion and the plugin (no database needed)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points

import pytest
from pydantic import ValidationError
from sqlalchemy import Column, DateTime

from connectors.sql.connector import SqlConnector
from connectors.sql.demo_schema import demo_settings
from connectors.sql.plugin import plugin
from connectors.sql.settings import SqlSettings
from connectors.sql.timeconv import ErpClock
from connectors.sql.webhook import SqlWebhookVerifier

URL = "postgresql+psycopg://erp_sync@127.0.0.1:5432/erp"


def settings(**overrides) -> SqlSettings:
    return SqlSettings.model_validate(demo_settings(URL, **overrides))


def with_object(name: str, **obj) -> dict:
    raw = demo_settings(URL)
    raw["objects"][name] = {**raw["objects"].get(name, {}), **obj}
    return raw


def test_demo_settings_are_valid_and_keys_may_be_single_names():
    s = settings()
    assert s.objects["customer"].key == ["cust_no"]
    assert s.objects["sales_order"].interface.details["lines"].parent_key == ["crm_order_no"]
    assert s.timezone == "Asia/Shanghai" and s.write_batch_size == 500


def test_password_in_url_is_moved_into_a_secret():
    s = SqlSettings.model_validate(demo_settings("postgresql+psycopg://erp_sync:p%40ss-W0rd@db.local/erp"))
    assert s.url == "postgresql+psycopg://erp_sync@db.local/erp"
    assert s.password.get_secret_value() == "p@ss-W0rd"
    assert "p@ss" not in repr(s) and "p@ss" not in s.model_dump_json()
    with pytest.raises(ValidationError, match="given twice"):
        SqlSettings.model_validate(demo_settings("postgresql+psycopg://u:x@h/db", password="y"))
    with pytest.raises(ValidationError, match="not a valid SQLAlchemy URL"):
        SqlSettings.model_validate(demo_settings("not a url"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (with_object("dealer", interface={"table": "erp_dealer"}), "crmsync writes interface tables only"),
        (with_object("dealer", interface={"table": "V_CRM_CUSTOMER"}), "objects.customer.table reads"),
        (with_object("dealer", interface={"table": "erp_sales_order_line"}), "details.lines.table reads"),
        (with_object("dealer", interface={"table": "if_customer"}), "same interface table"),
        (with_object("dealer", detect_deletes_by_absence=True, modified_column="x"), "hash-based detection only"),
        (with_object("customer", modified_format="%d/%m/%Y %H:%M"), "does not sort as text"),
        (with_object("customer", timezone="China/Beijing"), "unknown time zone"),
        (with_object("customer", key=[]), "at least one column"),
        (with_object("thing", key="id"), "needs a `table` to read"),
        (with_object("customer", colour="red"), "Extra inputs are not permitted"),
        (with_object("customer", deleted_column="forbid_status"), "needs deleted_values"),
        (with_object("dealer", interface={"table": "if_dealer", "status_values": {"done": "DONE'; --"}}), "status values"),
        ({**demo_settings(URL), "hash_state": {"table": "erp_dealer"}}, "hash_state.table"),
        ({**demo_settings(URL), "objects": {}}, "at least one object"),
    ],
)
def test_bad_settings_are_refused_clearly(raw, message):
    with pytest.raises(ValidationError, match=message):
        SqlSettings.model_validate(raw)


def test_every_setting_is_documented_in_the_json_schema():
    schema = SqlSettings.model_json_schema()
    models = [schema, *schema.get("$defs", {}).values()]
    undocumented = [
        f"{model.get('title')}.{name}" for model in models for name, prop in model.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []
    assert schema["properties"]["password"]["anyOf"][0]["format"] == "password"


def test_erp_clock_converts_local_text_and_epoch_times():
    clock = ErpClock("Asia/Shanghai")
    assert clock.to_utc(datetime(2025, 3, 1, 10, 0)) == datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
    assert clock.to_db(datetime(2025, 3, 1, 2, 0, tzinfo=UTC)) == datetime(2025, 3, 1, 10, 0)
    aware = Column("t", DateTime(timezone=True))
    assert clock.to_db(datetime(2025, 3, 1, 2, 0, tzinfo=UTC), aware).tzinfo is not None
    text = ErpClock("Asia/Shanghai", "%Y%m%d%H%M%S")
    assert text.to_db(datetime(2025, 3, 1, 2, 0, tzinfo=UTC)) == "20250301100000"
    assert text.to_utc("20250301100000") == datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
    epoch = ErpClock("Asia/Shanghai", "epoch_ms")
    assert epoch.to_utc(1740794400000) == datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
    assert epoch.to_db(datetime(2025, 3, 1, 2, 0, 0, 999000, tzinfo=UTC)) == 1740794400999
    assert ErpClock("Europe/Berlin").to_utc(datetime(2025, 7, 1, 12, 0)) == datetime(2025, 7, 1, 10, 0, tzinfo=UTC)


def test_plugin_is_registered_and_builds_the_connector():
    (entry,) = [ep for ep in entry_points(group="crmsync.connectors") if ep.name == "sql"]
    assert entry.load() is plugin
    assert plugin.type == "sql" and plugin.settings_model is SqlSettings and plugin.emulator_main is None
    connector = plugin.create("erp", settings())
    assert isinstance(connector, SqlConnector) and connector.name == "erp"
    assert connector.limits.write_batch == 500
    assert isinstance(plugin.webhook_verifier("erp", settings()), SqlWebhookVerifier)
    assert "erp_sync@127.0.0.1" in connector.status()["database"]


@pytest.mark.parametrize(("obj", "seconds"), [
    ({}, 1.0),  # a DATETIME column
    ({"modified_column": "ts", "modified_format": "epoch_ms"}, 0.001),
    ({"modified_column": "ts", "modified_format": "epoch_s"}, 1.0),
    ({"modified_column": "ts", "modified_format": "%Y-%m-%d %H:%M:%S.%f"}, 0.000001),
    ({"modified_column": "ts", "modified_format": "%Y%m%d%H%M"}, 60.0),
    ({"modified_column": "ts", "modified_format": "%Y-%m-%d"}, 86400.0),
    ({"modified_resolution_seconds": 86400}, 86400.0),  # a DATE column says so
])
def test_the_modified_columns_step_is_what_settling_waits_for(obj, seconds):
    """An edit later in the same step (a day, for a DATE column) has the same modified value; the engine
    settles an instant only once a step has passed, so it waits this long at least."""
    connector = SqlConnector("erp", SqlSettings.model_validate(with_object("customer", **obj)))
    assert connector.timestamp_resolution("customer") == timedelta(seconds=seconds)
    assert connector.timestamp_resolution("not_configured") == timedelta(seconds=1)


def test_a_resolution_must_be_positive():
    with pytest.raises(ValidationError, match="modified_resolution_seconds"):
        SqlSettings.model_validate(with_object("customer", modified_resolution_seconds=0))
