"""Compile the ``value_maps:`` and ``entities:`` sections into mappers.

Compilation is also validation: every problem it meets becomes a
:class:`config.errors.ConfigIssue` with the key path of the YAML node at fault
(the loader turns it into ``FILE:LINE:COL``), and compiling carries on so that
all problems are reported at once. :func:`config.mapping_schema.check_entities`
is this function's issue list.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path as FsPath
from typing import Any

from config.errors import ConfigIssue
from config.mapping_schema import (
    EntitySpec,
    FieldSpec,
    InlineValueMap,
    MappingTestCase,
    ReferenceSpec,
    SystemMapping,
    ValueMapSpec,
)
from config.suggest import unknown

from .canonical import CanonicalField, EntityInfo, dependency_order, entity_info, model_names
from .converters import CONVERTERS, DEFAULT_TIMEZONE, default_converter, make_converter, parse_timezone
from .errors import Path
from .mapper import FROM_CANONICAL, TO_CANONICAL, FieldRule, Mapper, ReferenceRule
from .normalize import NORMALIZER_FOR_KIND, NORMALIZERS
from .transforms import TransformSyntaxError, compile_transform
from .valuemaps import ValueMap, build_value_map

#: Fxiaoke's derived, read-only companions of a field (lookup names, option labels…).
_FX_DERIVED = ("__r", "__l", "__o", "__v", "__p", "__relation_ids")
_TEST_ERROR_CODES = ("required", "unmapped_value", "conversion", "transform", "invalid_value", "unresolved_reference")


#: The pseudo-field that maps crmsync's canonical id into a system (write only).
CANONICAL_ID_FIELD = "id"


class MappingConfigError(ValueError):
    """The mapping sections have problems (``issues``); raised by :meth:`MappingSet.from_config`."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(f"{'.'.join(map(str, i.path))}: {i.message}" for i in issues))


@dataclass
class MappingSet:
    """Every compiled mapper of a configuration, plus what the engine asks about entities."""

    mappers: dict[tuple[str, str], Mapper] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # entity -> model name
    specs: dict[str, EntitySpec] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any, base_dir: str | FsPath | None = None) -> MappingSet:
        result = compile_mappings(config, base_dir=base_dir)
        if result.issues:
            raise MappingConfigError(result.issues)
        return result.mappings

    def mapper(self, entity: str, system: str) -> Mapper:
        try:
            return self.mappers[(entity, system)]
        except KeyError:
            known = [s for (e, s) in self.mappers if e == entity]
            if not known:
                raise KeyError(unknown("entity", entity, {e for e, _ in self.mappers})) from None
            raise KeyError(unknown(f"system of entity {entity!r}", system, known)) from None

    def systems_of(self, entity: str) -> list[str]:
        return [s for (e, s) in self.mappers if e == entity]

    def references_of(self, entity: str) -> set[str]:
        """Entities the entity's records point at (in any system)."""
        out: set[str] = set()
        for (e, _), mapper in self.mappers.items():
            if e == entity:
                out.update(r.entity for r in mapper.references().values())
                for rule in mapper.rules:
                    if rule.items is not None:
                        out.update(r.entity for r in rule.items.references().values())
        out.discard(entity)
        return out

    def dependency_order(self, entities: Iterable[str] | None = None) -> list[str]:
        """Entities in the order to sync them: referenced ones first (partner → account → contact…)."""
        names = list(entities) if entities is not None else list(self.models)
        return dependency_order(names, {n: self.references_of(n) for n in names})

    def match_min_score(self, entity: str) -> float | None:
        """``match.min_score``: the name similarity at or above which a name-only match links (None: equal names only)."""
        spec = self.specs.get(entity)
        return spec.match.min_score if spec is not None and spec.match is not None else None

    def match_keys(self, entity: str) -> list[tuple[str, str | None]]:
        """(canonical field, normaliser name) in priority order, for first-sync matching."""
        spec = self.specs[entity]
        if spec.match is None:
            return []
        fields = entity_info(spec.model).fields
        out = []
        for key in spec.match.keys:
            normaliser = key.normalize
            if normaliser is None and key.field in fields:
                normaliser = NORMALIZER_FOR_KIND.get(fields[key.field].kind)
            out.append((key.field, normaliser))
        return out


@dataclass
class CompileResult:
    mappings: MappingSet
    issues: list[ConfigIssue]


def compile_mappings(config: Any, base_dir: str | FsPath | None = None) -> CompileResult:
    """Compile ``config.entities`` with ``config.value_maps``; never raises for config mistakes."""
    return _Compiler(config, FsPath(base_dir) if base_dir is not None else None).run()


def _system_type(system: Any) -> str | None:
    return getattr(system, "type", None) if not isinstance(system, Mapping) else system.get("type")


class _Compiler:
    def __init__(self, config: Any, base_dir: FsPath | None) -> None:
        self.value_maps: dict[str, ValueMapSpec] = dict(getattr(config, "value_maps", None) or {})
        self.entities: dict[str, EntitySpec] = dict(getattr(config, "entities", None) or {})
        self.systems: dict[str, Any] = dict(getattr(config, "systems", None) or {})
        self.flows = dict(getattr(config, "flows", None) or {})
        self.base_dir = base_dir
        self.issues: list[ConfigIssue] = []
        self.result = MappingSet()
        self.synced = {
            (flow.entity, system)
            for flow in self.flows.values()
            if getattr(flow, "enabled", True)
            for system in getattr(flow, "systems", ())
        }

    def issue(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(tuple(path), message))

    # -- top level ---------------------------------------------------------
    def run(self) -> CompileResult:
        self.check_value_maps()
        for name, spec in self.entities.items():
            self.compile_entity(name, spec)
        return CompileResult(self.result, self.issues)

    def check_value_maps(self) -> None:
        for name, spec in self.value_maps.items():
            for canonical, per_system in spec.values.items():
                for system in per_system:
                    if self.systems and system not in self.systems:
                        self.issue(("value_maps", name, "values", canonical, system), unknown("system", system, self.systems))
            for system in spec.system_defaults:
                if self.systems and system not in self.systems:
                    self.issue(("value_maps", name, "system_defaults", system), unknown("system", system, self.systems))

    def compile_entity(self, name: str, spec: EntitySpec) -> None:
        base: Path = ("entities", name)
        try:
            info = entity_info(spec.model)
        except KeyError:
            self.issue((*base, "model"), unknown("canonical model", spec.model, model_names()))
            return
        if info.item:
            self.issue((*base, "model"), f"{spec.model} only exists inside another record (SalesOrder.lines); "
                                         f"use one of: {', '.join(model_names())}")
            return
        self.result.models[name] = info.model.__name__
        self.result.specs[name] = spec
        if spec.match is not None:
            for i, key in enumerate(spec.match.keys):
                if key.field not in info.fields:
                    self.issue((*base, "match", "keys", i), unknown(f"field of {info.model.__name__}", key.field, info.fields))
                if key.normalize is not None and key.normalize not in NORMALIZERS:
                    self.issue((*base, "match", "keys", i, "normalize"), unknown("normaliser", key.normalize, NORMALIZERS))
        for system, mapping in spec.systems.items():
            if system not in self.systems:
                continue  # reported by the loader's cross-reference checks
            mapper = self.compile_system(name, info, system, mapping)
            self.result.mappers[(name, system)] = mapper

    def compile_system(self, entity: str, info: EntityInfo, system: str, spec: SystemMapping) -> Mapper:
        base: Path = ("entities", entity, "systems", system)
        system_type = _system_type(self.systems[system]) or ""
        tz = self.timezone(spec.timezone, system_type, (*base, "timezone"))
        flat = spec.flat_keys if spec.flat_keys is not None else system_type == "kingdee"
        mapper = Mapper(entity, info.model.__name__, system, system_type, spec.object, yaml_path=base, flat_keys=flat)
        ctx = _Context(entity=entity, system=system, system_type=system_type, tz=tz)
        mapper.rules = self.compile_fields(spec.fields, info, (*base, "fields"), ctx)
        mapper.constants = self.constants(spec.constants, (*base, "constants"))
        mapper.finalize()
        self.check_tests(entity, info, system, spec, base)
        return mapper

    def timezone(self, text: str | None, system_type: str, path: Path) -> tzinfo:
        try:
            return parse_timezone(text or DEFAULT_TIMEZONE.get(system_type, "UTC"))
        except ValueError as exc:
            self.issue(path, str(exc))
            return UTC

    def constants(self, constants: Mapping[str, Any], path: Path) -> list[tuple[tuple[str, ...], Any]]:
        out = []
        for key, value in constants.items():
            parts = tuple(key.split("."))
            if not all(parts):
                self.issue((*path, key), f"bad field path {key!r}")
                continue
            out.append((parts, value))
        return out

    # -- fields -----------------------------------------------------------
    def compile_fields(
        self, fields: Mapping[str, FieldSpec], info: EntityInfo, base: Path, ctx: _Context
    ) -> list[FieldRule]:
        rules: list[FieldRule] = []
        written: dict[tuple[str, ...], str] = {}
        for name, spec in fields.items():
            rule = self.compile_field(name, spec, info, (*base, name), ctx)
            if rule is None:
                continue
            if rule.write and rule.path is not None:
                other = written.get(rule.parts)
                if other is not None:
                    self.issue((*base, name, "field"), f"system field {rule.path!r} is also written by {other!r}; "
                                                        "make one of them direction: read")
                written[rule.parts] = name
            rules.append(rule)
        return rules

    def compile_field(self, name: str, spec: FieldSpec, info: EntityInfo, path: Path, ctx: _Context) -> FieldRule | None:
        canonical = info.fields.get(name)
        if name == CANONICAL_ID_FIELD and canonical is None:
            # crmsync's own id, written so a target can key the record by it (an interface table's
            # crm_id, a CRM's external-id field). It is never read: crmsync owns it.
            if spec.direction != "write":
                self.issue((*path, "direction") if isinstance(spec, FieldSpec) else path,
                           "'id' is crmsync's canonical id: it can only be written (direction: write)")
                return None
            canonical = CanonicalField(CANONICAL_ID_FIELD, "text", "code", "crmsync's canonical id")
        if canonical is None:
            self.issue(path, unknown(f"canonical field of {info.model.__name__}", name, info.fields))
            return None
        ok = True
        read = spec.direction in ("both", "read")
        write = spec.direction in ("both", "write") and not spec.never_write
        if spec.never_write and spec.direction == "write":
            self.issue((*path, "never_write"), "a field with direction: write cannot be never_write")
            ok = False
        parts: tuple[str, ...] = ()
        if spec.field is not None:
            parts = tuple(spec.field.split("."))
            if not spec.field.strip() or not all(parts):
                self.issue((*path, "field"), f"bad field path {spec.field!r} (use names separated by single dots)")
                ok = False
            if write and ctx.system_type == "fxiaoke" and any(p.endswith(_FX_DERIVED) for p in parts):
                self.issue((*path, "field"), f"{spec.field!r} is a read-only derived Fxiaoke field (__r/__l/__o…); "
                                             "add direction: read, or map the base field")
                ok = False
        else:
            write = False
            has_read_transform = spec.transform is not None and spec.transform.read is not None
            if spec.direction == "write":
                self.issue((*path, "direction"), "direction: write needs a system 'field' to write to")
                ok = False
            elif not has_read_transform and spec.default is None and spec.items is None:
                self.issue(path, "needs a system 'field', a read transform or a default")
                ok = False

        rule = FieldRule(
            canonical=name,
            spec=canonical,
            yaml_path=path,
            path=spec.field,
            parts=parts,
            read=read,
            write=write,
            create_only=spec.create_only,
            required=spec.required,
            description=spec.description,
            to_canonical_form=TO_CANONICAL[canonical.type],
            from_canonical_form=FROM_CANONICAL[canonical.type],
        )

        # default (a canonical value)
        if spec.default is not None:
            try:
                rule.default = FROM_CANONICAL[canonical.type](spec.default)
            except (ValueError, TypeError, ArithmeticError) as exc:
                self.issue((*path, "default"), f"default {spec.default!r} is not a valid {canonical.type}: {exc}")
                ok = False

        # list of records: an item mapper instead of a converter
        if canonical.type == "records":
            if spec.items is None:
                self.issue(path, f"{name} is a list of records: describe each item with 'items: {{fields: …}}'")
                return None
            item_info = entity_info(canonical.item_entity or "")
            sub = Mapper(ctx.entity, item_info.model.__name__, ctx.system, ctx.system_type, spec.field or "",
                         yaml_path=path, flat_keys=ctx.system_type == "kingdee")
            sub.rules = self.compile_fields(spec.items.fields, item_info, (*path, "items", "fields"), ctx)
            sub.constants = self.constants(spec.items.constants, (*path, "items", "constants"))
            sub.finalize()
            rule.items = sub
            rule.converter_name = "items"
            return rule if ok else None
        if spec.items is not None:
            self.issue((*path, "items"), f"'items' only applies to lists of records; {name} is {canonical.type}")
            ok = False

        ok &= self.attach_converter(rule, spec, canonical, path, ctx)
        ok &= self.attach_reference(rule, spec, canonical, path, ctx)
        ok &= self.attach_value_map(rule, spec, canonical, path, ctx)
        ok &= self.attach_transforms(rule, spec, path)
        return rule if ok else None

    def attach_converter(self, rule: FieldRule, spec: FieldSpec, canonical: CanonicalField, path: Path, ctx: _Context) -> bool:
        if spec.type is not None:
            name, options = spec.type, {}
            if name not in CONVERTERS:
                self.issue((*path, "type"), unknown("converter", name, CONVERTERS))
                return False
        else:
            name, options = default_converter(ctx.system_type, spec.field, canonical)
        options = {**options, **spec.options}
        try:
            rule.converter = make_converter(name, options, ctx.tz)
        except ValueError as exc:
            self.issue((*path, "options"), str(exc))
            return False
        rule.converter_name = name + (f" {spec.options}" if spec.options else "")
        rule.read_alternates = rule.converter.read_suffixes
        if rule.write and not rule.converter.writable:
            self.issue((*path, "options"), f"converter {name} with these options can only read; add direction: read")
            return False
        return True

    def attach_reference(self, rule: FieldRule, spec: FieldSpec, canonical: CanonicalField, path: Path, ctx: _Context) -> bool:
        ref = spec.reference
        if ref is None and canonical.reference is None:
            return True
        if ref is not None and canonical.reference is None:
            self.issue((*path, "reference"), f"{rule.canonical} is not a reference field of its model "
                                             "(its value is not a record id)")
            return False
        where: Path = (*path, "reference") if ref is not None else path
        key: str | None = None
        if isinstance(ref, ReferenceSpec):
            target, id_system, key = ref.entity, ref.id_system or ctx.system, ref.key
            where = (*path, "reference", "entity")
        elif isinstance(ref, str):
            target, id_system = ref, ctx.system
        else:
            candidates = [e for e, s in self.entities.items() if _model_entity(s.model) == canonical.reference]
            if not candidates:
                model = entity_info(canonical.reference).model.__name__
                self.issue(path, f"{rule.canonical} refers to {model} records, but no entity with model {model} "
                                 "is configured (add it to entities, or remove this field)")
                return False
            if len(candidates) > 1:
                self.issue(path, f"{rule.canonical} could refer to entities {', '.join(candidates)}; "
                                 "say which with 'reference: <entity>'")
                return False
            target, id_system = candidates[0], ctx.system
        if target not in self.entities:
            self.issue(where, unknown("entity", target, self.entities) + " (referenced entities must be configured)")
            return False
        target_model = _model_entity(self.entities[target].model)
        if target_model is not None and target_model != canonical.reference:
            self.issue(where, f"entity {target!r} holds {self.entities[target].model} records, but "
                              f"{rule.canonical} points at {entity_info(canonical.reference).model.__name__} records")
            return False
        if key is not None:
            target_fields = entity_info(self.entities[target].model).fields
            if key not in target_fields:
                self.issue((*path, "reference", "key"), unknown(f"canonical field of {self.entities[target].model}", key, target_fields))
                return False
        if id_system not in self.systems:
            self.issue((*path, "reference", "id_system"), unknown("system", id_system, self.systems))
            return False
        if id_system not in self.entities[target].systems:
            self.issue(where, f"entity {target!r} has no mapping for system {id_system!r}, so its ids cannot be "
                              f"translated (add entities.{target}.systems.{id_system})")
            return False
        if self.synced and (ctx.entity, ctx.system) in self.synced and (target, id_system) not in self.synced:
            self.issue(where, f"entity {target!r} is not synced with system {id_system!r} by any flow, so this "
                              "reference would never resolve (add a flow, or drop the field)")
            return False
        if spec.value_map is not None:
            self.issue((*path, "value_map"), "a reference field cannot also have a value map")
            return False
        rule.reference = ReferenceRule(target, id_system, key)
        return True

    def attach_value_map(self, rule: FieldRule, spec: FieldSpec, canonical: CanonicalField, path: Path, ctx: _Context) -> bool:
        if spec.value_map is None or rule.reference is not None:
            return True
        coerce = FROM_CANONICAL[canonical.type if canonical.type != "text_list" else "text"]
        try:
            if isinstance(spec.value_map, InlineValueMap):
                inline = spec.value_map
                rule.value_map = build_value_map(
                    "(inline)",
                    inline.values,
                    unmapped=inline.unmapped,
                    canonical_default=inline.default,
                    system_default=inline.system_default,
                    ignore_case=inline.ignore_case,
                    coerce=coerce,
                )
                rule.value_map_name = "(inline)"
                return True
            name = spec.value_map
            named = self.value_maps.get(name)
            if named is None:
                self.issue((*path, "value_map"), unknown("value map", name, self.value_maps))
                return False
            entries = {cv: per[ctx.system] for cv, per in named.values.items() if ctx.system in per}
            if not entries:
                self.issue((*path, "value_map"), f"value map {name!r} has no values for system {ctx.system!r}")
                return False
            rule.value_map = build_value_map(
                repr(name),
                entries,
                unmapped=named.unmapped,
                canonical_default=named.default,
                system_default=named.system_defaults.get(ctx.system),
                ignore_case=named.ignore_case,
                coerce=coerce,
            )
            rule.value_map_name = name
            return True
        except (ValueError, TypeError, ArithmeticError) as exc:
            self.issue((*path, "value_map"), f"value map keys must be valid {canonical.type} values: {exc}")
            return False

    def attach_transforms(self, rule: FieldRule, spec: FieldSpec, path: Path) -> bool:
        if spec.transform is None:
            return True
        ok = True
        same = spec.transform.read is not None and spec.transform.read == spec.transform.write
        for direction in ("read", "write"):
            source = getattr(spec.transform, direction)
            if source is None or (direction == "write" and same and not rule.write):
                continue
            where: Path = (*path, "transform") if same else (*path, "transform", direction)
            try:
                compiled = compile_transform(source)
            except TransformSyntaxError as exc:
                if not (same and direction == "write"):  # one expression, one message
                    self.issue(where, f"transform does not parse: {exc.describe()}")
                ok = False
                continue
            if getattr(rule, direction) or (direction == "read" and rule.path is None):
                setattr(rule, f"{direction}_transform", compiled)
        return ok

    # -- tests ------------------------------------------------------------
    def check_tests(self, entity: str, info: EntityInfo, system: str, spec: SystemMapping, base: Path) -> None:
        for i, case in enumerate(spec.tests):
            self.check_case(entity, info, case, (*base, "tests", i))
        if spec.tests_file is not None and self.base_dir is not None:
            from .testing import TestFileError, load_tests_file

            try:
                cases = load_tests_file(self.base_dir / spec.tests_file)
            except TestFileError as exc:
                self.issue((*base, "tests_file"), str(exc))
                return
            for i, case in enumerate(cases):
                self.check_case(entity, info, case, (*base, "tests_file", f"{spec.tests_file}[{i}]"))

    def check_case(self, entity: str, info: EntityInfo, case: MappingTestCase, path: Path) -> None:
        mapped = self.entities[entity].systems
        for target in case.expect:
            if target not in mapped:
                self.issue((*path, "expect", target), unknown(f"system mapped for {entity}", target, mapped))
        for field_name in case.fields or []:
            if field_name not in info.fields:
                self.issue((*path, "fields"), unknown(f"canonical field of {info.model.__name__}", field_name, info.fields))
        for field_name in case.canonical or {}:
            if field_name not in info.fields:
                self.issue((*path, "canonical", field_name), unknown(f"canonical field of {info.model.__name__}", field_name, info.fields))
        for ref_entity in case.references:
            if ref_entity not in self.entities:
                self.issue((*path, "references", ref_entity), unknown("entity", ref_entity, self.entities))
        if case.error is not None and case.error.code not in _TEST_ERROR_CODES:
            self.issue((*path, "error", "code"), unknown("error code", case.error.code, _TEST_ERROR_CODES))


@dataclass(slots=True)
class _Context:
    entity: str
    system: str
    system_type: str
    tz: tzinfo


def _model_entity(model: str) -> str | None:
    try:
        return entity_info(model).name
    except KeyError:
        return None


__all__ = ["CompileResult", "MappingConfigError", "MappingSet", "compile_mappings", "ValueMap"]
