"""Field paths into system records: ``Owner.email``, ``account_id__r.name``, ``Ordered_Items.0.Quantity``.

Reading tries the whole remaining path as a literal key first, because some APIs
return dotted keys (a Kingdee query returns ``{"FCustId.FNumber": "C0001"}``), then
walks nested objects. Writing always builds nested objects
(``FCustId.FNumber`` → ``{"FCustId": {"FNumber": …}}``, the shape Kingdee's Save wants).
"""
from __future__ import annotations

from typing import Any

_MISSING = object()


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def get_path(data: Any, path: str, parts: tuple[str, ...] | None = None) -> Any:
    """Value at ``path`` or :data:`MISSING` (distinct from an explicit null)."""
    if isinstance(data, dict) and path in data:
        return data[path]
    parts = parts if parts is not None else split_path(path)
    node = data
    for i, part in enumerate(parts):
        if isinstance(node, dict):
            if part in node:
                node = node[part]
                continue
            rest = ".".join(parts[i:])
            if i and rest in node:  # dotted literal deeper down
                return node[rest]
            return _MISSING
        if isinstance(node, list) and part.lstrip("-").isdigit():
            index = int(part)
            if -len(node) <= index < len(node):
                node = node[index]
                continue
        return _MISSING
    return node


def set_path(data: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


MISSING = _MISSING
