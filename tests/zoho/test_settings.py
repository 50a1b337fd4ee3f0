"""Settings, plugin registration and the emulator command."""
from __future__ import annotations

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from connectors.zoho import plugin as plugin_module
from connectors.zoho.connector import ZohoConnector
from connectors.zoho.settings import DATA_CENTERS, ZohoSettings

BASE = {"client_id": "1000.ABC", "client_secret": "s3cret", "refresh_token": "1000.refresh"}


@pytest.mark.parametrize("dc", sorted(DATA_CENTERS))
def test_every_data_center_has_its_hosts(dc):
    production = ZohoSettings(**BASE, data_center=dc)
    sandbox = ZohoSettings(**BASE, data_center=dc, environment="sandbox")
    developer = ZohoSettings(**BASE, data_center=dc, environment="developer")
    assert production.token_url == f"{DATA_CENTERS[dc][0]}/oauth/v2/token"
    assert production.default_api_domain.startswith("https://www.zohoapis.")
    assert sandbox.default_api_domain.startswith("https://sandbox.zohoapis.")
    assert developer.default_api_domain.startswith("https://developer.zohoapis.")


def test_known_hosts():
    assert ZohoSettings(**BASE, data_center="ca").token_url == "https://accounts.zohocloud.ca/oauth/v2/token"
    assert ZohoSettings(**BASE, data_center="cn").default_api_domain == "https://www.zohoapis.com.cn"
    assert ZohoSettings(**BASE, accounts_url="http://127.0.0.1:8555/").token_url == "http://127.0.0.1:8555/oauth/v2/token"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"api_version": "v9"}, "not a Zoho CRM API version"),
        ({"accounts_url": "accounts.zoho.com"}, "scheme and host"),
        ({"api_domain": "https://www.zohoapis.com/crm/v8"}, "without a path"),
        ({"data_center": "uk"}, "data_center"),
        ({"concurrency": 40}, "concurrency"),
        ({"page_size": 500}, "page_size"),
        ({"write_batch": 200}, "write_batch"),
        ({"fields_per_call": 60}, "fields_per_call"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_bad_settings_say_what_is_wrong(override, fragment):
    with pytest.raises(ValidationError) as caught:
        ZohoSettings(**{**BASE, **override})
    assert fragment in str(caught.value)


def test_secrets_stay_secret_and_every_field_is_described():
    settings = ZohoSettings(**BASE)
    assert "s3cret" not in repr(settings) and "1000.refresh" not in repr(settings)
    schema = ZohoSettings.model_json_schema()
    assert schema.get("additionalProperties") is False
    missing = [name for name, prop in schema["properties"].items() if not prop.get("description")]
    assert missing == []


def test_plugin_contract():
    plugin = plugin_module.plugin
    assert plugin.type == "zoho" and plugin.settings_model is ZohoSettings
    connector = plugin.create("crm_global", ZohoSettings(**BASE))
    assert isinstance(connector, ZohoConnector) and connector.supports_notifications
    assert connector.limits.page_size == 200 and connector.limits.write_batch == 100 and connector.limits.concurrency == 10
    assert plugin.webhook_verifier("crm_global", ZohoSettings(**BASE)) is not None


def test_emulator_command_prints_credentials(monkeypatch):
    seen = {}

    def fake_run(app, host, port, **kw):
        seen.update(app=app, host=host, port=port)

    monkeypatch.setattr("uvicorn.run", fake_run)
    app = typer.Typer()
    app.command()(plugin_module.emulator_main)
    result = CliRunner().invoke(app, ["--port", "8599", "--seed", "3", "--client-id", "1000.MINE", "--client-secret", "mine",
                                      "--refresh-token", "1000.r", "--time-zone", "-08:00", "--latency-ms", "5"])
    assert result.exit_code == 0, result.output
    assert "1000.MINE" in result.output and "client_secret: mine" in result.output and "1000.r" in result.output
    assert "http://127.0.0.1:8599" in result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8599
    emu = seen["app"].state.emulator
    assert len(emu.store.modules["Accounts"].records) == 3 and emu.switches.latency_ms == 5
    bad = CliRunner().invoke(app, ["--time-zone", "IST"])
    assert bad.exit_code != 0 and "offset" in bad.output
