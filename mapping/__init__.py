"""The mapping layer: canonical model, YAML field/value maps, converters, transforms,
references and mapping tests.

Typical use by the engine::

    from mapping import MappingSet
    mappings = MappingSet.from_config(config)          # compiled once at start
    mapper = mappings.mapper("account", "zoho")
    values = mapper.to_canonical(record.data, resolver)          # system -> canonical
    payload = other.to_system(values, resolver, fields={"name"})  # canonical -> system (minimal write)

``resolver`` implements :class:`ReferenceResolver` on the ID cross-reference table.
"""
from .canonical import (
    ENTITIES,
    Account,
    CanonicalField,
    Contact,
    Deal,
    EntityInfo,
    Partner,
    Provenance,
    SalesOrder,
    SalesOrderLine,
    canonical_equal,
    canonical_hash,
    dependency_order,
    diff_values,
    entity_info,
    fields_of,
    from_jsonable,
    to_jsonable,
    to_model,
)
from .compiler import CompileResult, MappingConfigError, MappingSet, compile_mappings
from .errors import MappingError
from .mapper import Mapper
from .references import MissingLink, NullResolver, ReferenceResolver, StaticResolver, UnresolvedReference

__all__ = [
    "ENTITIES",
    "Account",
    "CanonicalField",
    "CompileResult",
    "Contact",
    "Deal",
    "EntityInfo",
    "Mapper",
    "MappingConfigError",
    "MappingError",
    "MappingSet",
    "MissingLink",
    "NullResolver",
    "Partner",
    "Provenance",
    "ReferenceResolver",
    "SalesOrder",
    "SalesOrderLine",
    "StaticResolver",
    "UnresolvedReference",
    "canonical_equal",
    "canonical_hash",
    "compile_mappings",
    "dependency_order",
    "diff_values",
    "entity_info",
    "fields_of",
    "from_jsonable",
    "to_jsonable",
    "to_model",
]
