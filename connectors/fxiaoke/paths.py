"""Which path serves which object: preset objects (``XxxObj``) and custom objects (``…__c``)
live under different prefixes, and a custom object on a preset path is refused."""
from __future__ import annotations

import re

from ..errors import ConnectorConfigError
from .settings import Paths

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: Verbs served under both prefixes.
DATA_VERBS = ("query", "get", "create", "update", "invalid", "delete", "recover", "changeOwner")


def is_custom(api_name: str) -> bool:
    return api_name.endswith("__c")


class Endpoints:
    def __init__(self, paths: Paths, *, system: str) -> None:
        self.paths = paths
        self.system = system

    def check_name(self, api_name: str) -> str:
        if not api_name or not _API_NAME.match(api_name):
            raise ConnectorConfigError(
                f"{api_name!r} is not an Fxiaoke object API name (e.g. AccountObj or Invoice__c)", system=self.system
            )
        return api_name

    def data(self, api_name: str, verb: str) -> str:
        if verb not in DATA_VERBS:  # pragma: no cover - programming error
            raise ValueError(verb)
        prefix = self.paths.custom_prefix if is_custom(self.check_name(api_name)) else self.paths.preset_prefix
        return f"{prefix.rstrip('/')}/data/{verb}"
