"""Schema of the mapping sections: ``value_maps:`` and ``entities:``.

::

    value_maps:
      industry:                       # a named, reusable map
        unmapped: error               # error | pass_through | default
        values:
          manufacturing: {fxiaoke: "1", zoho: Manufacturing, erp: MFG}

    entities:
      account:
        model: Account                # canonical model (mapping.canonical)
        match: {keys: [tax_id, domain, name]}
        systems:
          zoho:
            object: Accounts
            fields:
              name: Account_Name                      # short form
              industry: {field: Industry, value_map: industry}
              owner: {field: Owner, value_map: users} # converter chosen from the field
            tests_file: mapping-tests/account-zoho.yaml

The pydantic layer checks shapes; :func:`check_entities` checks meaning (known
canonical fields, converters, transforms that parse, value maps and referenced
entities that exist) with the key path of each problem, which the loader turns
into ``FILE:LINE:COL``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

Scalar = str | int | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------
# Value maps
# ---------------------------------------------------------------------------

Unmapped = Literal["error", "pass_through", "default"]


class ValueMapSpec(_Strict):
    """A named value map: canonical value ↔ each system's value."""

    description: str | None = Field(None, description="What the map is for (shown by `crmsync mapping show`).")
    values: dict[str, dict[str, Scalar | list[Scalar]]] = Field(
        description="Canonical value → {system name: system value}. A list gives alternatives that all read as this "
        "canonical value; the first is the one written. A system value listed under two canonical values reads as "
        "the first of them.",
    )
    unmapped: Unmapped = Field(
        "error",
        description="A value missing from the map: 'error' fails the record (dead letter with the reason), "
        "'pass_through' keeps it unchanged, 'default' uses `default` (reading) / `system_defaults` (writing).",
    )
    default: Scalar | None = Field(None, description="Canonical value read for an unmapped system value (unmapped: default).")
    system_defaults: dict[str, Scalar] = Field(
        default_factory=dict,
        description="System value written for an unmapped canonical value, per system (unmapped: default). "
        "Without one, the system value of `default` is written.",
    )
    ignore_case: bool = Field(False, description="Compare text values without regard to case (and surrounding spaces).")

    @model_validator(mode="after")
    def _policy(self) -> ValueMapSpec:
        if self.unmapped == "default" and self.default is None:
            raise ValueError("unmapped: default needs a 'default' (the canonical value to use)")
        return self


class InlineValueMap(_Strict):
    """A value map written inside one field: canonical value ↔ this system's value."""

    values: dict[str, Scalar | list[Scalar]] = Field(
        description="Canonical value → this system's value (a list: alternatives read, the first written)."
    )
    unmapped: Unmapped = Field("error", description="Policy for values missing from the map (see value_maps).")
    default: Scalar | None = Field(None, description="Canonical value read for an unmapped value (unmapped: default).")
    system_default: Scalar | None = Field(None, description="System value written for an unmapped value (unmapped: default).")
    ignore_case: bool = Field(False, description="Compare text values without regard to case.")

    @model_validator(mode="after")
    def _policy(self) -> InlineValueMap:
        if self.unmapped == "default" and self.default is None and self.system_default is None:
            raise ValueError("unmapped: default needs 'default' and/or 'system_default'")
        return self


# ---------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------

TransformSource = str | list[str | dict[str, Any]]


def _both_ways(value: Any) -> Any:
    if isinstance(value, (str, list)):
        return {"read": value, "write": value}
    return value


class TransformSpec(_Strict):
    """A transform, per direction. Written as a plain expression or pipeline it applies both ways."""

    read: TransformSource | None = Field(
        None, description="Applied reading (system → canonical), after the converter; `record` is the system record."
    )
    write: TransformSource | None = Field(
        None, description="Applied writing (canonical → system), before the converter; `record` is the canonical record."
    )


class ReferenceSpec(_Strict):
    """A field holding the id of a record of another entity."""

    entity: str = Field(description="The referenced entity (a key of `entities`).")
    id_system: str | None = Field(
        None,
        description="The system whose ids this field holds, when not this one — e.g. an ERP order field that stores "
        "the Fxiaoke opportunity id.",
    )
    key: str | None = Field(
        None,
        description="The field holds a business key of the referenced record instead of its id: the referenced "
        "entity's canonical field, e.g. erp_customer_number for Kingdee's FCustId.FNumber.",
    )


def _name_or_mapping(value: Any) -> str:
    # Tags are capitalised: the loader drops such union tags from error paths.
    return "Name" if isinstance(value, str) else "Mapping"


def _short_form(value: Any) -> Any:
    # `name: Account_Name` is `name: {field: Account_Name}`.
    if isinstance(value, str):
        return {"field": value}
    if value is None or isinstance(value, (int, float, list)):
        found = {type(None): "nothing", list: "a list", bool: "true/false"}.get(type(value), "a number")
        raise ValueError(f"expected a system field name or a mapping such as {{field: …}}, found {found}")
    return value


class FieldSpec(_Strict):
    """How one canonical field maps to one system field."""

    field: str | None = Field(
        None,
        description="System field, nested with dots: 'Owner.email', 'account_id__r.name', 'FCustId.FNumber'. "
        "Omit for a computed field (transform) or a constant (default).",
    )
    direction: Literal["both", "read", "write"] = Field(
        "both", description="'read': system → canonical only; 'write': canonical → system only."
    )
    never_write: bool = Field(
        False, description="The system owns this field: it is read but never written, whatever else asks for it."
    )
    create_only: bool = Field(False, description="Written when the record is created, never on updates.")
    default: Any = Field(None, description="Canonical value used when the value is null, in both directions.")
    required: bool = Field(False, description="A null value (after default) fails the record.")
    type: str | None = Field(
        None,
        description="Converter: text, integer, decimal, boolean, date, datetime, list, raw, fx_number, fx_date, "
        "fx_datetime, fx_employee, zoho_date, zoho_datetime, zoho_lookup, zoho_owner, zoho_multiselect, kingdee_ref, "
        "kingdee_date, kingdee_datetime, kingdee_number, sql_date, sql_datetime, sql_decimal. Default: chosen from "
        "the system's known field types and the canonical field's type.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Converter options, e.g. {timezone: Asia/Shanghai}, {places: 2}, {key: email}."
    )
    value_map: Annotated[
        Annotated[str, Tag("Name")] | Annotated[InlineValueMap, Tag("Mapping")], Discriminator(_name_or_mapping)
    ] | None = Field(
        None, description="Name of a map in `value_maps`, or an inline map {values: {canonical: system value}}."
    )
    transform: Annotated[
        TransformSpec | None, BeforeValidator(_both_ways, json_schema_input_type=TransformSource | TransformSpec | None)
    ] = Field(
        None,
        description="Expression or pipeline (see mapping.transforms), e.g. 'strip_company_suffix(trim(value))' or "
        "[trim, upper]; {read: …, write: …} for one direction each.",
    )
    reference: Annotated[
        Annotated[str, Tag("Name")] | Annotated[ReferenceSpec, Tag("Mapping")], Discriminator(_name_or_mapping)
    ] | None = Field(
        None,
        description="The field holds the id of a record of this entity; translated through the id cross-reference "
        "table. Defaults from the canonical model for reference fields.",
    )
    items: ItemsSpec | None = Field(
        None, description="For a list of records (sales order lines): how each item maps."
    )
    description: str | None = Field(None, description="Note shown by `crmsync mapping show`.")


FieldEntry = Annotated[FieldSpec, BeforeValidator(_short_form, json_schema_input_type=str | FieldSpec)]


class ItemsSpec(_Strict):
    """Mapping of the items of a list field (e.g. SalesOrder.lines ↔ FSaleOrderEntry)."""

    fields: dict[str, FieldEntry] = Field(description="Canonical item field → system item field.")
    constants: dict[str, Any] = Field(
        default_factory=dict, description="System item field → value written into every new item."
    )


FieldSpec.model_rebuild()


# ---------------------------------------------------------------------------
# Mapping tests
# ---------------------------------------------------------------------------


class ExpectedError(_Strict):
    code: str = Field(
        description="Expected failure: required, unmapped_value, conversion, transform, invalid_value or "
        "unresolved_reference."
    )
    field: str | None = Field(None, description="Canonical field the failure names.")
    entity: str | None = Field(None, description="unresolved_reference: the referenced entity.")
    message_contains: str | None = Field(None, description="Text the error message must contain.")


class MappingTestCase(_Strict):
    """An example: a record of this system → the canonical values → each target system's payload."""

    name: str = Field(description="What the example shows.")
    input: dict[str, Any] = Field(description="The record as this system returns it.")
    references: dict[str, dict[str, dict[str, str]]] = Field(
        default_factory=dict,
        description="Known links: {entity: {canonical id: {system: external id}}}, e.g. "
        "{partner: {ptn-1: {fxiaoke: '65f0…', zoho: '3652…', erp: 'D0001'}}}.",
    )
    canonical: dict[str, Any] | None = Field(
        None, description="Expected canonical values. Fields left out must come out null."
    )
    expect: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Expected payload per target system (the same system: a round trip)."
    )
    fields: list[str] | None = Field(None, description="Write only these canonical fields (an update), not all.")
    error: ExpectedError | None = Field(None, description="The example must fail this way instead.")

    @model_validator(mode="after")
    def _something(self) -> MappingTestCase:
        if self.error is None and self.canonical is None and not self.expect:
            raise ValueError("a mapping test needs 'canonical', 'expect' or 'error'")
        return self


class MappingTestFile(_Strict):
    """A `tests_file`: a list of cases under `tests:`."""

    tests: list[MappingTestCase] = Field(description="The cases.")


# ---------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------


class SystemMapping(_Strict):
    """One entity in one system."""

    object: str = Field(description="The system's object/module/form/table: AccountObj, Accounts, BD_Customer, crm_customer_if.")
    timezone: str | None = Field(
        None,
        description="Time zone of the system's local dates and times (IANA name or offset). Defaults: fxiaoke and "
        "kingdee Asia/Shanghai, zoho and sql UTC.",
    )
    fields: dict[str, FieldEntry] = Field(description="Canonical field → system field (short form) or a field mapping.")
    constants: dict[str, Any] = Field(
        default_factory=dict,
        description="System field → value written when this system's record is created (e.g. Kingdee FCreateOrgId.FNumber).",
    )
    flat_keys: bool | None = Field(
        None,
        description="Write dotted fields as literal keys ({'FCustId.FNumber': 'C0001'}, the shape the Kingdee "
        "connector reads and writes) instead of nested objects ({'Owner': {'id': …}}). Default: true for kingdee.",
    )
    tests: list[MappingTestCase] = Field(default_factory=list, description="Mapping tests (run by `crmsync mapping test`).")
    tests_file: str | None = Field(None, description="YAML file with more tests (`tests:` list), relative to the config file.")


class MatchKey(_Strict):
    field: str = Field(description="Canonical field compared.")
    normalize: str | None = Field(
        None,
        description="Normaliser: company_name, company_name_no_region, phone, domain, tax_id, email, person_name. "
        "Default: chosen from the field.",
    )


def _match_key(value: Any) -> Any:
    return {"field": value} if isinstance(value, str) else value


class MatchSpec(_Strict):
    """How the first sync pairs records that already exist in several systems."""

    keys: list[Annotated[MatchKey, BeforeValidator(_match_key, json_schema_input_type=str | MatchKey)]] = Field(
        min_length=1, description="Canonical fields compared after normalising, in priority order, e.g. [tax_id, domain, name]."
    )
    min_score: float | None = Field(
        None, ge=0, le=1,
        description="Name similarity (0–1, the ratio of the normalised names) at or above which a name-only match "
        "links two records; a near match below it (80 % alike or more) goes to the review list. Default: only equal "
        "names link. A contradicting tax id or domain always goes to review.",
    )


class EntitySpec(_Strict):
    """A canonical entity and its mapping in each system."""

    model: str = Field(description="Canonical model: Partner, Account, Contact, Deal or SalesOrder.")
    description: str | None = Field(None, description="What this entity is in this company.")
    match: MatchSpec | None = Field(None, description="First-sync matching keys.")
    systems: dict[str, SystemMapping] = Field(default_factory=dict, description="Mapping per system (keys of `systems`).")


def check_entities(config: Any, base_dir: str | Path | None = None) -> list:
    """Semantic checks of ``config.value_maps`` / ``config.entities`` → ``list[ConfigIssue]``.

    ``config`` needs ``value_maps``, ``entities`` and ``systems`` (name → object with
    ``type``); ``flows`` is used when present. ``base_dir`` resolves ``tests_file``.
    """
    from mapping.compiler import compile_mappings  # lazy: mapping imports this module

    return compile_mappings(config, base_dir=base_dir).issues
