"""A stand-in connector plugin, so config tests do not depend on the real connectors' settings."""
from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors import registry
from connectors.base import ConnectorPlugin


class AlphaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_url: str = Field("http://127.0.0.1:9", description="Base URL.")
    client_secret: SecretStr = Field(description="Secret.")
    page_size: int = Field(100, ge=1, le=200, description="Records per page.")


def _plugin(name: str) -> ConnectorPlugin:
    return ConnectorPlugin(type=name, description=f"{name} test system", settings_model=AlphaSettings, create=None)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def fake_plugins(monkeypatch):
    fakes = {"alpha": _plugin("alpha"), "beta": _plugin("beta")}
    monkeypatch.setattr(registry, "plugins", lambda: fakes)
    return fakes
