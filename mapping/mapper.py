"""The runtime mapper: one entity in one system, compiled from its YAML spec.

Reading (system → canonical), each field goes::

    system value → converter → read transform → value map | reference → default → required → canonical form

and writing (canonical → system) the other way round::

    canonical value → default → required → reference | value map → write transform → converter → system value

A field absent from the system record is left out of the canonical values
(unknown is not empty: it must not clear the field elsewhere). Writes of a
whole record (``fields=None``, a create) skip null values and add the
``constants``; a minimal write (``fields={...}``, an update) writes exactly the
given fields, nulls included (to clear them), and never ``create_only`` ones.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .canonical import CanonicalField, format_datetime, format_decimal, parse_datetime
from .converters import ConversionError, Converter, to_decimal
from .errors import MappingError, Path
from .paths import MISSING, get_path, set_path
from .references import MissingLink, ReferenceResolver, UnresolvedReference
from .transforms import Transform, TransformError
from .valuemaps import UnmappedValue, ValueMap

# ---------------------------------------------------------------------------
# Canonical form per field type: typed Python value <-> JSON-friendly value
# ---------------------------------------------------------------------------


def _out_text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, (int, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    raise ValueError(f"expected text, got {type(value).__name__} {value!r}")


def _out_integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


def _out_decimal(value: Any) -> Any:
    return format_decimal(to_decimal(value))


def _out_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def _out_date(value: Any) -> Any:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date, got the date-time {value.isoformat()} (convert it with a date converter)")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return date.fromisoformat(value).isoformat()
    raise ValueError(f"expected a date, got {type(value).__name__} {value!r}")


def _out_datetime(value: Any) -> Any:
    if isinstance(value, (datetime, str)):
        return format_datetime(parse_datetime(value))
    raise ValueError(f"expected a date-time, got {type(value).__name__} {value!r}")


def _out_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_out_text(v) for v in value]
    return [_out_text(value)]


def _in_decimal(value: Any) -> Any:
    return value if isinstance(value, Decimal) else to_decimal(value)


def _in_date(value: Any) -> Any:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date, got a date-time {value!r}")
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _in_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _same(value: Any) -> Any:
    return value


TO_CANONICAL: dict[str, Callable[[Any], Any]] = {
    "text": _out_text,
    "integer": _out_integer,
    "decimal": _out_decimal,
    "boolean": _out_boolean,
    "date": _out_date,
    "datetime": _out_datetime,
    "text_list": _out_list,
    "records": _same,
}
FROM_CANONICAL: dict[str, Callable[[Any], Any]] = {
    "text": _out_text,
    "integer": _out_integer,
    "decimal": _in_decimal,
    "boolean": _out_boolean,
    "date": _in_date,
    "datetime": parse_datetime,
    "text_list": _in_list,
    "records": _same,
}


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class ReferenceRule:
    entity: str  # referenced entity (a key of `entities`)
    id_system: str  # the system whose ids the field holds
    key: str | None = None  # business key: the referenced entity's canonical field the value is

    def to_canonical(self, resolver: ReferenceResolver, value: str) -> str | None:
        if self.key is None:
            return resolver.to_canonical_id(self.entity, self.id_system, value)
        finder = getattr(resolver, "find_by_key", None)
        return finder(self.entity, self.key, value) if finder is not None else None

    def to_system(self, resolver: ReferenceResolver, canonical_id: str) -> str | None:
        if self.key is None:
            return resolver.to_external_id(self.entity, canonical_id, self.id_system)
        getter = getattr(resolver, "key_of", None)
        return getter(self.entity, canonical_id, self.key) if getter is not None else None


@dataclass(slots=True)
class FieldRule:
    """One canonical field ↔ one system field, compiled."""

    canonical: str
    spec: CanonicalField
    yaml_path: Path
    path: str | None
    parts: tuple[str, ...] = ()
    read: bool = True
    write: bool = True
    create_only: bool = False
    converter: Converter | None = None
    converter_name: str = ""
    read_transform: Transform | None = None
    write_transform: Transform | None = None
    value_map: ValueMap | None = None
    value_map_name: str | None = None
    reference: ReferenceRule | None = None
    default: Any = None  # typed canonical value
    required: bool = False
    items: Mapper | None = None
    description: str | None = None
    read_alternates: tuple[str, ...] = ()
    to_canonical_form: Callable[[Any], Any] = _same
    from_canonical_form: Callable[[Any], Any] = _same


class _Collector:
    """Gathers every problem of one record, so a dead letter lists them all."""

    __slots__ = ("entity", "system", "errors", "missing")

    def __init__(self, entity: str, system: str) -> None:
        self.entity = entity
        self.system = system
        self.errors: list[MappingError] = []
        self.missing: list[MissingLink] = []

    def fail(self, rule: FieldRule, code: str, message: str, field: str | None = None) -> None:
        self.errors.append(MappingError(self.entity, self.system, field or rule.canonical, code, message, rule.yaml_path))

    def raise_if_any(self) -> None:
        if self.errors:
            first, *rest = self.errors
            raise MappingError(first.entity, first.system, first.field, first.code, first.message, first.yaml_path, rest)
        if self.missing:
            first = self.missing[0]
            raise UnresolvedReference(first.entity, first.system, first.id, missing=self.missing, source_entity=self.entity)


@dataclass
class Mapper:
    """Maps one entity between one system's records and canonical values.

    Build it with :func:`mapping.compiler.compile_mappings` (from the config) and
    get it from the resulting :class:`~mapping.compiler.MappingSet`.
    """

    entity: str  # configured entity name (a key of `entities`)
    model: str  # canonical model name
    system: str  # configured system name
    system_type: str
    object: str
    rules: list[FieldRule] = field(default_factory=list)
    constants: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)
    yaml_path: Path = ()
    #: Write dotted paths as literal keys ({"FCustId.FNumber": …}) instead of nested objects.
    flat_keys: bool = False

    def __post_init__(self) -> None:
        self._read_rules = [r for r in self.rules if r.read]
        self._write_rules = [r for r in self.rules if r.write]
        # Read for every record a sync plans to write: built once (finalize() builds them again).
        self._read_fields = tuple(r.canonical for r in self._read_rules)
        self._write_fields = tuple(r.canonical for r in self._write_rules)

    def finalize(self) -> None:
        self.__post_init__()

    # -- introspection ---------------------------------------------------
    @property
    def read_fields(self) -> tuple[str, ...]:
        """Canonical fields this system supplies."""
        return self._read_fields

    @property
    def write_fields(self) -> tuple[str, ...]:
        """Canonical fields written to this system."""
        return self._write_fields

    def system_fields(self) -> list[str]:
        """Top-level system fields to request in pulls (mapped fields and those transforms read)."""
        names: dict[str, None] = {}
        for rule in self._read_rules:
            if rule.path:
                # Flat-key systems (Kingdee) query dotted keys as they are: FCustId.FNumber, not FCustId.
                names[rule.path if self.flat_keys and rule.items is None else rule.parts[0]] = None
            if rule.read_transform is not None:
                for name in rule.read_transform.record_fields:
                    names[name] = None
        return list(names)

    def references(self) -> dict[str, ReferenceRule]:
        """Canonical field → referenced entity and id system."""
        return {r.canonical: r.reference for r in self.rules if r.reference is not None}

    def ids_referenced_in(self, system_data: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
        """(entity, id system, id) of each record a system record points at by id, as its read would
        look them up (top-level fields; items are looked up one by one). For reading the links of a
        whole batch at once: a value a converter or map would change just misses that cache."""
        for rule in self._read_rules:
            ref = rule.reference
            if ref is None or ref.key is not None or rule.path is None or rule.items is not None:
                continue
            raw = get_path(system_data, rule.path, rule.parts)
            if isinstance(raw, (str, int)) and not isinstance(raw, bool) and raw != "":
                yield ref.entity, ref.id_system, str(raw)

    def ids_referenced_by(self, canonical: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
        """(entity, id system, canonical id) of each record canonical values point at, as a write to
        this system would look them up (see :meth:`ids_referenced_in`)."""
        for rule in self._write_rules:
            ref = rule.reference
            if ref is None or ref.key is not None or rule.items is not None:
                continue
            raw = canonical.get(rule.canonical)
            if isinstance(raw, str) and raw:
                yield ref.entity, ref.id_system, raw

    # -- system -> canonical ---------------------------------------------
    def to_canonical(self, system_data: Mapping[str, Any], resolver: ReferenceResolver) -> dict[str, Any]:
        """Canonical values (JSON form) of a system record.

        Raises :class:`MappingError` (record cannot be mapped; dead-letter it) or
        :class:`UnresolvedReference` (a referenced record is not linked yet).
        """
        collector = _Collector(self.entity, self.system)
        out = self._read(system_data, resolver, collector)
        collector.raise_if_any()
        return out

    def to_canonical_partial(self, system_data: Mapping[str, Any], resolver: ReferenceResolver) -> dict[str, Any]:
        """Canonical values of the fields a partial record fully supplies (a change notification's changed
        fields, in the shape a read returns): mapped exactly as a read maps them. A field whose system
        field, or a field its read transform looks at, is absent is left out (absent is "not said", never
        "cleared"), and so is one that cannot be mapped (a conversion error, a reference not linked)."""
        collector = _Collector(self.entity, self.system)
        out = self._read(system_data, resolver, collector)
        failed = {e.field for e in collector.errors} | {m.field for m in collector.missing}
        present = set(system_data)
        supplied: set[str] = set()
        for rule in self._read_rules:
            if rule.path is None or not rule.parts:
                continue
            top = rule.path if self.flat_keys and rule.items is None else rule.parts[0]
            needs = {top} | set(rule.read_transform.record_fields if rule.read_transform is not None else ())
            if needs <= present:
                supplied.add(rule.canonical)
        return {f: v for f, v in out.items() if f in supplied and f not in failed}

    def _read(self, data: Mapping[str, Any], resolver: ReferenceResolver, c: _Collector) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rule in self._read_rules:
            if rule.path is not None:
                raw = get_path(data, rule.path, rule.parts)
                if raw is MISSING:
                    for suffix in rule.read_alternates:
                        raw = get_path(data, rule.path + suffix)
                        if raw is not MISSING:
                            break
                if raw is MISSING and rule.read_transform is None:
                    if rule.required:
                        c.fail(rule, "required", f"system field {rule.path!r} is missing from the record")
                    continue
                if raw is MISSING:
                    raw = None
            else:
                raw = None
            if rule.items is not None:
                value = self._read_items(rule, raw, resolver, c)
                if value is not MISSING:
                    out[rule.canonical] = value
                continue
            try:
                value = rule.converter.to_canonical(raw) if rule.converter is not None else raw
                if rule.read_transform is not None:
                    value = rule.read_transform(value, data)
                if rule.value_map is not None:
                    value = rule.value_map.read(value)
            except ConversionError as exc:
                c.fail(rule, "conversion", f"{rule.path}: {exc}")
                continue
            except TransformError as exc:
                c.fail(rule, "transform", f"read transform failed: {exc}")
                continue
            except UnmappedValue as exc:
                c.fail(rule, "unmapped_value", str(exc))
                continue
            if (value is None or value == "") and rule.default is not None:
                value = rule.default
            if value == "":
                value = None
            if value is not None and rule.reference is not None:
                ref = rule.reference
                canonical_id = ref.to_canonical(resolver, str(value))
                if canonical_id is None:
                    c.missing.append(MissingLink(ref.entity, ref.id_system, str(value), "read", rule.canonical, ref.key))
                    continue
                value = canonical_id
            if value is None:
                if rule.required:
                    c.fail(rule, "required", f"no value (system field {rule.path!r} is empty)" if rule.path else "no value")
                out[rule.canonical] = None
                continue
            try:
                out[rule.canonical] = rule.to_canonical_form(value)
            except (ValueError, TypeError, InvalidOperation, ConversionError) as exc:
                c.fail(rule, "invalid_value", f"{exc}")
        return out

    def _read_items(self, rule: FieldRule, raw: Any, resolver: ReferenceResolver, c: _Collector) -> Any:
        if raw is None:
            return None
        if not isinstance(raw, list):
            c.fail(rule, "conversion", f"{rule.path}: expected a list of items, got {type(raw).__name__}")
            return MISSING
        items = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                c.fail(rule, "conversion", f"{rule.path}[{i}]: expected an object, got {type(item).__name__}")
                continue
            sub = _Collector(c.entity, c.system)
            values = rule.items._read(item, resolver, sub)
            for error in sub.errors:
                error.field = f"{rule.canonical}[{i}].{error.field}"
                c.errors.append(error)
            c.missing.extend(sub.missing)
            items.append(values)
        return items

    # -- canonical -> system ---------------------------------------------
    def to_system(
        self, canonical: Mapping[str, Any], resolver: ReferenceResolver, fields: Collection[str] | None = None
    ) -> dict[str, Any]:
        """The system payload for canonical values (JSON form or typed).

        ``fields``: write only these canonical fields (an update with the changed
        fields); ``None`` writes the whole record (a create) plus the constants.
        """
        collector = _Collector(self.entity, self.system)
        payload = self._write(canonical, resolver, fields, collector)
        collector.raise_if_any()
        return payload

    def _write(
        self, values: Mapping[str, Any], resolver: ReferenceResolver, fields: Collection[str] | None, c: _Collector
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        full = fields is None
        if full:
            for parts, constant in self.constants:
                self._set(payload, parts, constant)
        for rule in self._write_rules:
            if full:
                if rule.canonical not in values and rule.default is None and rule.write_transform is None:
                    continue
            else:
                if rule.canonical not in fields or rule.create_only:
                    continue
            raw = values.get(rule.canonical)
            if rule.items is not None:
                self._write_items(rule, raw, resolver, payload, c)
                continue
            try:
                value = None if raw is None else rule.from_canonical_form(raw)
            except (ValueError, TypeError, InvalidOperation, ConversionError) as exc:
                c.fail(rule, "invalid_value", f"canonical value {raw!r}: {exc}")
                continue
            if value is None and rule.default is not None:
                value = rule.default
            if value is None and full and rule.write_transform is None:
                if rule.required:
                    c.fail(rule, "required", "no value to write")
                continue
            if value is not None and rule.reference is not None:
                ref = rule.reference
                external_id = ref.to_system(resolver, str(value))
                if external_id is None:
                    c.missing.append(MissingLink(ref.entity, ref.id_system, str(value), "write", rule.canonical, ref.key))
                    continue
                value = external_id
            try:
                if rule.value_map is not None:
                    value = rule.value_map.write(value)
                if rule.write_transform is not None:
                    value = rule.write_transform(value, values)
                if rule.converter is not None:
                    value = rule.converter.to_system(value)
            except UnmappedValue as exc:
                c.fail(rule, "unmapped_value", str(exc))
                continue
            except TransformError as exc:
                c.fail(rule, "transform", f"write transform failed: {exc}")
                continue
            except ConversionError as exc:
                c.fail(rule, "conversion", f"{rule.path}: {exc}")
                continue
            if value is None and rule.required:
                c.fail(rule, "required", "no value to write")
                continue
            if value is None and full:
                continue
            self._set(payload, rule.parts, value)
        return payload

    def _set(self, payload: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
        if self.flat_keys:
            payload[".".join(parts)] = value
        else:
            set_path(payload, parts, value)

    def _write_items(self, rule: FieldRule, raw: Any, resolver: ReferenceResolver, payload: dict[str, Any], c: _Collector) -> None:
        if raw is None:
            self._set(payload, rule.parts, [])
            return
        out = []
        for i, item in enumerate(raw):
            sub = _Collector(c.entity, c.system)
            written = rule.items._write(item, resolver, None, sub)
            for error in sub.errors:
                error.field = f"{rule.canonical}[{i}].{error.field}"
                c.errors.append(error)
            c.missing.extend(sub.missing)
            out.append(written)
        self._set(payload, rule.parts, out)

    # -- display ---------------------------------------------------------
    def describe(self) -> list[dict[str, str]]:
        """One row per field for `crmsync mapping show`."""
        rows = []
        for rule in self.rules:
            direction = "both" if rule.read and rule.write else ("read" if rule.read else "write")
            if rule.create_only and rule.write:
                direction += " (create)"
            notes = []
            if rule.required:
                notes.append("required")
            if rule.default is not None:
                notes.append(f"default {rule.default!r}")
            if rule.description:
                notes.append(rule.description)
            transforms = []
            if rule.read_transform is not None and rule.write_transform is not None and (
                rule.read_transform.source == rule.write_transform.source
            ):
                transforms.append(rule.read_transform.source)
            else:
                if rule.read_transform is not None:
                    transforms.append(f"read: {rule.read_transform.source}")
                if rule.write_transform is not None:
                    transforms.append(f"write: {rule.write_transform.source}")
            reference = ""
            if rule.reference is not None:
                reference = rule.reference.entity
                if rule.reference.key:
                    reference += f" by {rule.reference.key}"
                if rule.reference.id_system != self.system:
                    reference += f" (ids of {rule.reference.id_system})"
            rows.append(
                {
                    "canonical": rule.canonical + (f" [{rule.spec.type}]" if rule.spec else ""),
                    "system": rule.path or "(computed)",
                    "direction": direction,
                    "converter": rule.converter_name,
                    "value_map": rule.value_map_name or "",
                    "transform": "; ".join(transforms),
                    "reference": reference,
                    "notes": ", ".join(notes),
                }
            )
            if rule.items is not None:
                for row in rule.items.describe():
                    row["canonical"] = f"  {rule.canonical}[].{row['canonical']}"
                    row["system"] = f"  {rule.path}[].{row['system']}"
                    rows.append(row)
        return rows
