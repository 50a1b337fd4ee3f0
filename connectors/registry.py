"""Finds connector plugins through the ``crmsync.connectors`` entry-point group.

The engine never imports a connector package by name: installing a package that
registers a plugin is all it takes to add a system.
"""
from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from .base import ConnectorPlugin

GROUP = "crmsync.connectors"
log = logging.getLogger(__name__)

#: entry-point name -> why it could not be loaded (shown by `crmsync validate` and /readyz)
load_errors: dict[str, str] = {}


@cache
def plugins() -> dict[str, ConnectorPlugin]:
    found: dict[str, ConnectorPlugin] = {}
    for ep in entry_points(group=GROUP):
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not take the others down
            load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("connector plugin %r could not be loaded: %s", ep.name, load_errors[ep.name])
            continue
        if not isinstance(plugin, ConnectorPlugin):
            load_errors[ep.name] = f"{ep.value} is not a ConnectorPlugin"
            continue
        found[plugin.type] = plugin
    return found


def get(type_name: str) -> ConnectorPlugin:
    try:
        return plugins()[type_name]
    except KeyError:
        known = ", ".join(sorted(plugins())) or "none installed"
        raise KeyError(f"no connector of type {type_name!r} (known: {known})") from None
