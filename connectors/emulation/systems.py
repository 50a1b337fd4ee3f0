"""The ``systems:`` block of a crmsync configuration pointing at the emulators with their default
credentials, for the end-to-end tests and the benches that run ``crmsync serve`` against them.

Built as data and dumped with ``yaml.safe_dump`` (a top-level block, so it can be put before or after
any dedented text without indentation mistakes)::

    config = emulator_systems_yaml(zoho=zoho.url, fxiaoke=fx.url, names={"fxiaoke": "fx"}) + textwrap.dedent(rest)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

#: The system name each emulator gets unless ``names`` says otherwise.
DEFAULT_NAMES = {"zoho": "zoho", "fxiaoke": "fxiaoke", "kingdee": "erp"}


def emulator_systems(
    *,
    zoho: str | None = None,
    fxiaoke: str | None = None,
    kingdee: str | None = None,
    names: Mapping[str, str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{system name: settings}`` for each emulator given by its base URL.

    ``names`` renames systems by kind (``{"fxiaoke": "fx"}``); ``settings`` adds or overrides settings
    per system name (``{"fx": {"notifications": {...}}}``).
    """
    from connectors.fxiaoke.emulator import EmulatorConfig
    from connectors.kingdee.emulator import DEFAULT_CREDENTIALS
    from connectors.zoho.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN

    named = {**DEFAULT_NAMES, **(names or {})}
    systems: dict[str, dict[str, Any]] = {}
    if zoho is not None:
        systems[named["zoho"]] = {
            "type": "zoho", "accounts_url": zoho, "api_domain": zoho, "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET, "refresh_token": DEFAULT_REFRESH_TOKEN,
        }
    if fxiaoke is not None:
        fx = EmulatorConfig()
        systems[named["fxiaoke"]] = {
            "type": "fxiaoke", "host": fxiaoke, "app_id": fx.app_id, "app_secret": fx.app_secret,
            "permanent_code": fx.permanent_code,
        }
    if kingdee is not None:
        kd = DEFAULT_CREDENTIALS
        systems[named["kingdee"]] = {
            "type": "kingdee", "server_url": kingdee, "acct_id": kd.acct_id, "username": kd.username,
            "auth": "password", "password": kd.password,
        }
    for name, extra in (settings or {}).items():
        if name not in systems:
            raise KeyError(f"settings for {name!r}, which is none of the systems {sorted(systems)}")
        systems[name].update(extra)
    return systems


def emulator_systems_yaml(**options: Any) -> str:
    """:func:`emulator_systems` as a top-level ``systems:`` YAML block (ends with a newline)."""
    return yaml.safe_dump({"systems": emulator_systems(**options)}, sort_keys=False, allow_unicode=True)
