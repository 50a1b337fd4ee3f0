"""Finds connector plugins through the ``crmsync.connectors`` entry-point group.

The engine never imports a connector package by name: installing a package that
registers a plugin is all it takes to add a system.
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from .base import ConnectorPlugin

GROUP = "crmsync.connectors"


@cache
def plugins() -> dict[str, ConnectorPlugin]:
    found: dict[str, ConnectorPlugin] = {}
    for ep in entry_points(group=GROUP):
        plugin = ep.load()
        if not isinstance(plugin, ConnectorPlugin):
            raise TypeError(f"entry point {ep.name!r} is not a ConnectorPlugin")
        found[plugin.type] = plugin
    return found


def get(type_name: str) -> ConnectorPlugin:
    try:
        return plugins()[type_name]
    except KeyError:
        known = ", ".join(sorted(plugins())) or "none installed"
        raise KeyError(f"no connector of type {type_name!r} (known: {known})") from None
