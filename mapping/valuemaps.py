"""Compiled value maps: picklist values and codes, both directions, with an unmapped policy."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_NO_DEFAULT = object()


class UnmappedValue(ValueError):
    def __init__(self, value: Any, direction: str, map_name: str, known: list[Any]) -> None:
        self.value = value
        self.direction = direction
        shown = ", ".join(repr(k) for k in known[:12]) + (", …" if len(known) > 12 else "")
        if direction == "read":
            message = f"system value {value!r} is not in value map {map_name} (known: {shown})"
        else:
            message = f"canonical value {value!r} is not in value map {map_name} (known: {shown})"
        super().__init__(message)


@dataclass(slots=True)
class ValueMap:
    """One map as seen by one system: system value ↔ canonical value."""

    name: str  # for messages: "'industry'" or "inline"
    read_table: dict[Any, Any] = field(default_factory=dict)  # system key -> canonical
    write_table: dict[Any, Any] = field(default_factory=dict)  # canonical -> system value
    unmapped: str = "error"
    read_default: Any = _NO_DEFAULT  # canonical
    write_default: Any = _NO_DEFAULT  # system
    ignore_case: bool = False

    def _key(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        text = str(value)
        return text.strip().casefold() if self.ignore_case else text

    def read(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [self.read(v) for v in value]
        hit = self.read_table.get(self._key(value), _NO_DEFAULT)
        if hit is not _NO_DEFAULT:
            return hit
        if self.unmapped == "pass_through":
            return value
        if self.unmapped == "default" and self.read_default is not _NO_DEFAULT:
            return self.read_default
        raise UnmappedValue(value, "read", self.name, list(self.read_table))

    def write(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [self.write(v) for v in value]
        hit = self.write_table.get(self._key(value), _NO_DEFAULT)
        if hit is not _NO_DEFAULT:
            return hit
        if self.unmapped == "pass_through":
            return value
        if self.unmapped == "default" and self.write_default is not _NO_DEFAULT:
            return self.write_default
        raise UnmappedValue(value, "write", self.name, list(self.write_table))


def build_value_map(
    name: str,
    entries: Mapping[str, Any],
    *,
    unmapped: str,
    canonical_default: Any,
    system_default: Any,
    ignore_case: bool,
    coerce: Callable[[Any], Any],
) -> ValueMap:
    """``entries``: canonical value (YAML text key) → this system's value or list of values.

    ``coerce`` turns a YAML key into the canonical field's typed value (e.g. '30' → 30).
    """
    vm = ValueMap(name=name, unmapped=unmapped, ignore_case=ignore_case)
    for canonical_text, system_values in entries.items():
        canonical = coerce(canonical_text)
        options = system_values if isinstance(system_values, list) else [system_values]
        if not options:
            continue
        vm.write_table.setdefault(vm._key(canonical), options[0])
        for option in options:
            vm.read_table.setdefault(vm._key(option), canonical)
    if canonical_default is not None:
        vm.read_default = coerce(canonical_default)
    if system_default is not None:
        vm.write_default = system_default
    elif canonical_default is not None:
        mapped = vm.write_table.get(vm._key(vm.read_default), _NO_DEFAULT)
        if mapped is not _NO_DEFAULT:
            vm.write_default = mapped
    return vm
