"""References between records: translated through the engine's ID cross-reference table.

A deal's account, an account's partner, a contact's account… The canonical value
of a reference field is the *canonical id* of the referenced record. Reading, the
mapper turns the system's id into that canonical id; writing, into the target
system's id. If the link is not known yet the mapper raises
:class:`UnresolvedReference`, and the engine syncs the referenced record first or
defers this one — a dangling or wrong reference is never written.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable


@runtime_checkable
class ReferenceResolver(Protocol):
    """Implemented by the engine on its links table (and by :class:`StaticResolver` in tests)."""

    def to_canonical_id(self, entity: str, system: str, external_id: str) -> str | None:
        """Canonical id of ``entity`` record known in ``system`` as ``external_id``, or None."""

    def to_external_id(self, entity: str, canonical_id: str, system: str) -> str | None:
        """Id in ``system`` of the ``entity`` record with ``canonical_id``, or None."""


@runtime_checkable
class KeyResolver(Protocol):
    """Optional: references by a business key instead of a record id.

    ERPs refer to customers by number (Kingdee ``FCustId.FNumber``, an interface
    table's ``customer_code``) while their record id is an internal key. A field
    mapped with ``reference: {entity: account, key: erp_customer_number}`` asks the
    resolver for the record whose canonical ``erp_customer_number`` has that value
    (the engine answers from its snapshots).
    """

    def find_by_key(self, entity: str, field: str, value: str) -> str | None:
        """Canonical id of the ``entity`` record whose canonical ``field`` equals ``value``, or None."""

    def key_of(self, entity: str, canonical_id: str, field: str) -> str | None:
        """The canonical ``field`` value of that record, or None when unknown or empty."""


@dataclass(frozen=True, slots=True)
class MissingLink:
    entity: str  # the referenced entity
    system: str  # the system whose id is missing or unknown
    id: str  # external id (direction 'read') or canonical id (direction 'write')
    direction: Literal["read", "write"]
    field: str | None = None  # the referencing canonical field
    key: str | None = None  # business-key reference: the referenced entity's canonical field


class UnresolvedReference(Exception):
    """A referenced record is not linked yet.

    ``entity``/``system``/``id`` name the first missing link: on read, ``id`` is the
    system's id of the referenced record; on write, it is the canonical id that has
    no id in ``system`` yet. ``missing`` lists every missing link of the record so
    the engine can sync all of them before retrying.
    """

    def __init__(self, entity: str, system: str, id: str, *, missing: Iterable[MissingLink] = (), source_entity: str | None = None) -> None:
        self.entity = entity
        self.system = system
        self.id = id
        self.source_entity = source_entity
        self.missing = list(missing) or [MissingLink(entity, system, id, "read")]
        first = self.missing[0]
        if first.key and first.direction == "read":
            what = f"with {first.key} {id!r} (read from {system})"
        elif first.key:
            what = f"canonical id {id!r} (its {first.key} is not known yet)"
        elif first.direction == "read":
            what = f"{system} id {id!r}"
        else:
            what = f"canonical id {id!r} (no {system} id yet)"
        via = f" via {source_entity}.{first.field}" if source_entity and first.field else ""
        super().__init__(f"unresolved reference to {entity} {what}{via}")


class NullResolver:
    """Resolves nothing: every reference is unresolved (useful to find what a record points at)."""

    def to_canonical_id(self, entity: str, system: str, external_id: str) -> str | None:
        return None

    def to_external_id(self, entity: str, canonical_id: str, system: str) -> str | None:
        return None

    def find_by_key(self, entity: str, field: str, value: str) -> str | None:
        return None

    def key_of(self, entity: str, canonical_id: str, field: str) -> str | None:
        return None


class StaticResolver:
    """An in-memory cross-reference table.

    ``links`` is ``{entity: {canonical_id: {system: external_id}}}`` — the shape a
    mapping test's ``references:`` block uses, e.g.
    ``{"account": {"acct-huawei": {"fxiaoke": "65f0…", "zoho": "3652…", "erp": "100234"}}}``.
    A name that is a canonical field instead of a system (``erp_customer_number: C0001``)
    serves business-key references (:class:`KeyResolver`).
    """

    def __init__(self, links: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None) -> None:
        self._to_ext: dict[tuple[str, str, str], str] = {}
        self._to_can: dict[tuple[str, str, str], str] = {}
        for entity, by_id in (links or {}).items():
            for canonical_id, ids in by_id.items():
                for system, external_id in ids.items():
                    self.add(entity, str(canonical_id), system, str(external_id))

    def add(self, entity: str, canonical_id: str, system: str, external_id: str) -> None:
        self._to_ext[(entity, canonical_id, system)] = external_id
        self._to_can[(entity, system, external_id)] = canonical_id

    def to_canonical_id(self, entity: str, system: str, external_id: str) -> str | None:
        return self._to_can.get((entity, system, str(external_id)))

    def to_external_id(self, entity: str, canonical_id: str, system: str) -> str | None:
        return self._to_ext.get((entity, str(canonical_id), system))

    def find_by_key(self, entity: str, field: str, value: str) -> str | None:
        return self._to_can.get((entity, field, str(value)))

    def key_of(self, entity: str, canonical_id: str, field: str) -> str | None:
        return self._to_ext.get((entity, str(canonical_id), field))
