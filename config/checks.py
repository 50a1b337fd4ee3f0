"""Cross-reference checks the schema alone cannot make: names that must point at
something defined elsewhere in the file (systems, entities, flows' members…)."""
from __future__ import annotations

from .errors import ConfigIssue
from .mapping_schema import check_entities
from .schema import CrmsyncConfig, SourceOfTruth, TriggerConfig
from .suggest import unknown


def check_config(config: CrmsyncConfig, base_dir=None) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    systems = set(config.systems)
    entities = set(config.entities)

    for name, entity in config.entities.items():
        for system, mapping in (getattr(entity, "systems", {}) or {}).items():
            if system not in systems:
                issues.append(ConfigIssue(("entities", name, "systems", system), unknown("system", system, systems)))
                continue
            # An SQL system knows only the objects it configures (tables, not an API): name one of them.
            spec = config.systems[system]
            objects = getattr(spec.settings, "objects", None) if spec.type == "sql" else None
            obj = getattr(mapping, "object", None)
            if isinstance(objects, dict) and isinstance(obj, str) and obj not in objects:
                issues.append(ConfigIssue(("entities", name, "systems", system, "object"),
                                          unknown(f"object of {system}", obj, objects)))

    for flow_name, flow in config.flows.items():
        base = ("flows", flow_name)
        if flow.entity not in entities:
            issues.append(ConfigIssue((*base, "entity"), unknown("entity", flow.entity, entities)))
        mapped = set(getattr(config.entities.get(flow.entity), "systems", {}) or {})
        seen: set[str] = set()
        for i, system in enumerate(flow.systems):
            if system in seen:
                issues.append(ConfigIssue((*base, "systems", i), f"system {system!r} is listed twice"))
            seen.add(system)
            if system not in systems:
                issues.append(ConfigIssue((*base, "systems", i), unknown("system", system, systems)))
            elif flow.entity in entities and system not in mapped:
                issues.append(
                    ConfigIssue(
                        (*base, "systems", i),
                        f"entity {flow.entity!r} has no mapping for system {system!r} (add entities.{flow.entity}.systems.{system})",
                    )
                )
        if flow.source is not None and flow.source not in flow.systems:
            issues.append(ConfigIssue((*base, "source"), unknown("system of this flow", flow.source, flow.systems)))
        for i, system in enumerate(flow.create_in or []):
            if system not in flow.systems:
                issues.append(ConfigIssue((*base, "create_in", i), unknown("system of this flow", system, flow.systems)))

    for entity, spec in config.conflicts.items():
        if entity not in entities:
            issues.append(ConfigIssue(("conflicts", entity), unknown("entity", entity, entities)))
            continue
        policies = [(("conflicts", entity, "default"), spec.default)]
        policies += [(("conflicts", entity, "fields", f), p) for f, p in spec.fields.items()]
        for path, policy in policies:
            if isinstance(policy, SourceOfTruth) and policy.source_of_truth not in systems:
                issues.append(
                    ConfigIssue((*path, "source_of_truth"), unknown("system", policy.source_of_truth, systems))
                )
        fields = _canonical_fields(config, entity)
        if fields is not None:
            for field in spec.fields:
                if field not in fields:
                    issues.append(
                        ConfigIssue(("conflicts", entity, "fields", field), unknown(f"field of {entity}", field, fields))
                    )

    for entity in config.deletes:
        if entity not in entities:
            issues.append(ConfigIssue(("deletes", entity), unknown("entity", entity, entities)))
        else:
            policy = config.delete_policy(entity)
            fields = _canonical_fields(config, entity)
            if policy.field and fields is not None and policy.field not in fields:
                issues.append(ConfigIssue(("deletes", entity, "field"), unknown(f"field of {entity}", policy.field, fields)))

    for name, trigger in config.triggers.items():
        issues.extend(_check_trigger(config, name, trigger))

    issues.extend(check_entities(config, base_dir=base_dir))
    return issues


def _check_trigger(config: CrmsyncConfig, name: str, trigger: TriggerConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    base = ("triggers", name)
    entities = set(config.entities)
    source, target = trigger.when.entity, trigger.create.entity
    for path, entity in (((*base, "when", "entity"), source), ((*base, "create", "entity"), target)):
        if entity not in entities:
            issues.append(ConfigIssue(path, unknown("entity", entity, entities)))
    if target in entities:
        mapped = set(getattr(config.entities[target], "systems", {}) or {})
        if trigger.create.in_ not in mapped:
            issues.append(ConfigIssue((*base, "create", "in"), unknown(f"system mapped for {target!r}", trigger.create.in_, mapped)))
    source_fields = _canonical_fields(config, source)
    target_fields = _canonical_fields(config, target)
    if source_fields is not None:
        for field in trigger.when.match:
            if field not in source_fields:
                issues.append(ConfigIssue((*base, "when", "match", field), unknown(f"field of {source}", field, source_fields)))
        for field in trigger.write_back:
            if field not in source_fields:
                issues.append(ConfigIssue((*base, "write_back", field), unknown(f"field of {source}", field, source_fields)))
    if target_fields is not None:
        for field, spec in trigger.create.values.items():
            if field not in target_fields:
                issues.append(ConfigIssue((*base, "create", "values", field), unknown(f"field of {target}", field, target_fields)))
            issues.extend(_check_builder((*base, "create", "values", field), spec))
        for field, from_field in trigger.write_back.items():
            if from_field not in target_fields:
                issues.append(ConfigIssue((*base, "write_back", field), unknown(f"field of {target}", from_field, target_fields)))
    return issues


def _check_builder(path: tuple, spec) -> list[ConfigIssue]:
    """Expressions must parse now, not when the first deal is won."""
    from mapping.transforms import TransformSyntaxError, compile_transform

    if isinstance(spec, str):
        try:
            compile_transform(spec)
        except TransformSyntaxError as exc:
            return [ConfigIssue(path, f"bad expression: {exc.describe()}")]
    elif isinstance(spec, list):
        issues = []
        for i, item in enumerate(spec):
            if not isinstance(item, dict):
                issues.append(ConfigIssue((*path, i), "a list item is a mapping of field: expression"))
                continue
            for field, item_spec in item.items():
                issues.extend(_check_builder((*path, i, field), item_spec))
        return issues
    elif isinstance(spec, dict) and set(spec) != {"value"}:
        return [ConfigIssue(path, "give an expression (text), a constant, {value: X}, or a list of line mappings")]
    return []


def _canonical_fields(config: CrmsyncConfig, entity: str) -> set[str] | None:
    """Field names of the entity's canonical model, or None when the model is unknown (reported elsewhere)."""
    try:
        from mapping.canonical import fields_of  # provided by the mapping layer
    except ImportError:
        return None
    spec = config.entities.get(entity)
    model = getattr(spec, "model", None)
    try:
        return set(fields_of(model)) if model else None
    except KeyError:
        return None
