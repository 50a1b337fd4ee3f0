"""The canonical model: the one shape every system's records are translated into.

Two representations, on purpose:

* pydantic models (:class:`Partner`, :class:`Account`, …) document every field and
  validate a whole record when someone needs a typed object;
* plain *canonical values* — ``{field: JSON-friendly value}`` dicts — are what
  travel through the engine: snapshots, hashes, diffs and conflict merges work on
  them. Decimals are strings (never floats), datetimes ISO-8601 UTC with ``Z``,
  dates ``YYYY-MM-DD``, references the *canonical id* of the record they point to.

The field metadata (kind, referenced entity, owning system) lives in each field's
``json_schema_extra`` and is collected once into :data:`ENTITIES`, the registry the
mapping compiler and the engine read (dependency order, reference fields…).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# ---------------------------------------------------------------------------
# Field declaration helpers: one place that decides what metadata a field carries.
# ---------------------------------------------------------------------------


def _field(description: str, kind: str, **extra: Any) -> Any:
    meta = {"x-kind": kind, **{f"x-{k}": v for k, v in extra.items() if v is not None}}
    return Field(None, description=description, json_schema_extra=meta)


def text(description: str, kind: str = "text", owner: str | None = None) -> Any:
    return _field(description, kind, owner=owner)


def ref(entity: str, description: str) -> Any:
    """A field holding the canonical id of another entity's record."""
    return _field(description, "reference", reference=entity)


def user(description: str) -> Any:
    """A person in the systems' user directories (owner, sales rep): canonical value is
    the user's e-mail (or another org-wide key) — value maps translate system user ids."""
    return _field(description, "user")


def money(description: str, owner: str | None = None) -> Any:
    return _field(description, "money", owner=owner)


class Provenance(BaseModel):
    """Where a canonical record was last read from."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(description="Configured system name (a key of `systems`), e.g. 'fxiaoke'.")
    object: str = Field(description="The system's object/module/form, e.g. 'AccountObj', 'Accounts', 'BD_Customer'.")
    external_id: str = Field(description="The record's id in that system.")
    modified_at: AwareDatetime | None = Field(None, description="The system's last-modified time of the record, UTC.")

    @field_validator("modified_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None


class CanonicalRecord(BaseModel):
    """Common envelope: the canonical id and where the values came from."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str | None = Field(None, description="Canonical id (crmsync's own, stable across systems).")
    provenance: Provenance | None = Field(None, description="System, object, external id and modified time of the source.")

    @field_validator("*", mode="after")
    @classmethod
    def _aware_utc(cls, value: Any) -> Any:
        # Every datetime in the canonical model is UTC; naive ones are refused by AwareDatetime.
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return value


#: Meta fields every record has; they are not mappable fields.
META_FIELDS = frozenset(CanonicalRecord.model_fields)


class Partner(CanonicalRecord):
    """A channel partner (reseller, distributor, dealer) that sells to end customers."""

    name: str | None = text("Registered company name of the partner, e.g. 深圳市恒通科技有限公司.", "company_name")
    tier: str | None = text("Partner level: platinum, gold, silver, registered (value-mapped per system).", "code")
    region: str | None = text("Sales region the partner covers, e.g. 华南 / South China.")
    status: str | None = text("Relationship status: active, prospect, suspended, terminated.", "code")
    tax_id: str | None = text("Unified social credit code (统一社会信用代码) or other tax registration number.", "tax_id")
    primary_contact_name: str | None = text("Name of the partner's main contact person.")
    primary_contact_phone: str | None = text("Phone or mobile number of the main contact.", "phone")
    primary_contact_email: str | None = text("E-mail address of the main contact.", "email")
    owner: str | None = user("Channel manager responsible for the partner (user key, usually the e-mail).")
    erp_partner_number: str | None = text("Dealer number in the ERP (e.g. Kingdee FNumber). Owned by the ERP.", "code", owner="erp")


class Account(CanonicalRecord):
    """An end customer (the company that buys, possibly through a partner)."""

    name: str | None = text("Registered company name, e.g. 深圳市华为技术有限公司.", "company_name")
    tax_id: str | None = text("Unified social credit code (统一社会信用代码) or other tax registration number.", "tax_id")
    domain: str | None = text("Web domain without scheme or www, e.g. huawei.com.", "domain")
    industry: str | None = text("Industry code: technology, manufacturing, retail, healthcare, logistics, energy, other.", "code")
    phone: str | None = text("Main switchboard phone number.", "phone")
    address: str | None = text("Street address.")
    city: str | None = text("City, e.g. 深圳市 / Shenzhen.")
    province: str | None = text("Province or state, e.g. 广东省.")
    postal_code: str | None = text("Postal code.")
    country: str | None = text("Country (ISO 3166 alpha-2 code or name as configured), e.g. CN.")
    owner: str | None = user("Account owner / sales rep (user key, usually the e-mail).")
    partner: str | None = ref("partner", "The channel partner that owns the relationship (canonical id).")
    status: str | None = text("Customer status: prospect, active, inactive, blocked.", "code")
    credit_limit: Decimal | None = money("Credit limit granted by finance, in the ERP's base currency. Owned by the ERP.", owner="erp")
    erp_customer_number: str | None = text("Customer number in the ERP (e.g. Kingdee FNumber). Owned by the ERP.", owner="erp")


class Contact(CanonicalRecord):
    """A person at an account or a partner."""

    name: str | None = text("Full display name, e.g. 王伟 or Alice Smith.", "person_name")
    first_name: str | None = text("Given name where a system keeps it separately (Zoho First_Name).")
    last_name: str | None = text("Family name where a system keeps it separately (Zoho Last_Name).")
    email: str | None = text("E-mail address.", "email")
    phone: str | None = text("Office phone.", "phone")
    mobile: str | None = text("Mobile phone.", "phone")
    title: str | None = text("Job title, e.g. 采购经理.")
    department: str | None = text("Department.")
    account: str | None = ref("account", "The account the contact works for (canonical id).")
    owner: str | None = user("Owner of the contact record (user key).")
    is_primary: bool | None = _field("True for the account's primary contact.", "flag")


class Deal(CanonicalRecord):
    """An opportunity (商机): a potential sale to an account, possibly registered by a partner."""

    name: str | None = text("Deal name, e.g. 华为 - ERP 升级.")
    amount: Decimal | None = money("Expected amount, exact decimal (never a float).")
    currency: str | None = text("ISO 4217 currency code of the amount, e.g. CNY.", "currency")
    stage: str | None = text("Sales stage: qualification, needs_analysis, proposal, negotiation, won, lost.", "code")
    probability: int | None = _field("Win probability in percent, 0–100.", "percent")
    expected_close_date: date | None = _field("Expected close date (a calendar date, no time zone).", "date")
    account: str | None = ref("account", "The end customer (canonical id).")
    partner: str | None = ref("partner", "The partner that sourced / registered the deal (canonical id).")
    contact: str | None = ref("contact", "Main contact on the customer side (canonical id).")
    owner: str | None = user("Deal owner (user key).")
    registered_at: AwareDatetime | None = _field("When the partner registered the deal (deal registration), UTC.", "datetime")
    description: str | None = text("Free-text description.")
    order_number: str | None = text("Number of the ERP sales order the won deal became (written back by crmsync).", "code", "erp")
    order_status: str | None = text("Status of that order: draft, submitted, approved, closed, cancelled.", "code", "erp")
    order_total: Decimal | None = money("Total of that order including tax, as the ERP computed it.", "erp")

    @field_validator("probability")
    @classmethod
    def _percent(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 100:
            raise ValueError("probability must be between 0 and 100")
        return value


class SalesOrderLine(BaseModel):
    """One line of a sales order."""

    model_config = ConfigDict(extra="forbid")

    line_number: int | None = _field("Position of the line in the order, from 1.", "integer")
    external_line_id: str | None = text("The line's id in the source system (Kingdee FEntryID…).")
    product_code: str | None = text("Product / material code (Kingdee FMaterialId.FNumber), e.g. SRV-2288H.", "code")
    product_name: str | None = text("Product name as printed on the order.")
    quantity: Decimal | None = _field("Quantity ordered, exact decimal.", "quantity")
    unit: str | None = text("Unit of measure code, e.g. Pcs, 台.", "code")
    unit_price: Decimal | None = money("Unit price excluding tax.")
    tax_rate: Decimal | None = _field("Tax rate in percent, e.g. 13.", "percent_decimal")
    amount: Decimal | None = money("Line amount including tax.")
    delivery_date: date | None = _field("Requested delivery date of the line.", "date")

    @field_validator("*", mode="after")
    @classmethod
    def _aware_utc(cls, value: Any) -> Any:
        return value.astimezone(UTC) if isinstance(value, datetime) else value


class SalesOrder(CanonicalRecord):
    """A sales order as booked in the ERP (the system of record for orders)."""

    number: str | None = text("Order number in the ERP, e.g. XSDD000123.", "code")
    account: str | None = ref("account", "The customer (canonical id).")
    partner: str | None = ref("partner", "The partner the order was sold through (canonical id).")
    deal: str | None = ref("deal", "The deal the order closes (canonical id).")
    owner: str | None = user("Sales rep of the order (user key).")
    status: str | None = text("Order status: draft, submitted, approved, closed, cancelled.", "code")
    currency: str | None = text("ISO 4217 currency code, e.g. CNY.", "currency")
    order_date: date | None = _field("Order date.", "date")
    delivery_date: date | None = _field("Requested delivery date of the whole order.", "date")
    subtotal: Decimal | None = money("Total excluding tax.")
    tax_amount: Decimal | None = money("Total tax.")
    total_amount: Decimal | None = money("Total including tax (价税合计).")
    note: str | None = text("Remarks printed on the order.")
    approved_at: AwareDatetime | None = _field("When the order was approved in the ERP (UTC).", "datetime")
    lines: list[SalesOrderLine] | None = _field("Order lines.", "lines", item="sales_order_line")


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

#: Field type names used by the mapping layer (JSON form in parentheses).
TYPES = ("text", "integer", "decimal", "boolean", "date", "datetime", "text_list", "records")


@dataclass(frozen=True, slots=True)
class CanonicalField:
    """What the mapping layer and the engine need to know about one canonical field."""

    name: str
    type: str  # one of TYPES
    kind: str  # finer meaning: company_name, tax_id, money, user, reference, code, …
    description: str
    reference: str | None = None  # entity the value points to (canonical id)
    item_entity: str | None = None  # for type 'records': the entity of each item
    owner: str | None = None  # system *type* that owns the value (e.g. 'erp'), informative


@dataclass(frozen=True, slots=True)
class EntityInfo:
    name: str
    model: type[BaseModel]
    fields: dict[str, CanonicalField]
    item: bool = False  # True for entities that only live inside another (order lines)
    references: dict[str, str] = field(default_factory=dict)  # field -> entity


_ORDER = ("partner", "account", "contact", "deal", "sales_order", "sales_order_line")
_MODELS: dict[str, type[BaseModel]] = {
    "partner": Partner,
    "account": Account,
    "contact": Contact,
    "deal": Deal,
    "sales_order": SalesOrder,
    "sales_order_line": SalesOrderLine,
}


def _type_of(annotation: Any, kind: str) -> str:
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    base = args[0]
    if get_origin(base) is list:
        (item,) = get_args(base)
        return "records" if isinstance(item, type) and issubclass(item, BaseModel) else "text_list"
    if base is bool:
        return "boolean"
    if base is int:
        return "integer"
    if base is Decimal:
        return "decimal"
    if base is datetime or kind == "datetime":
        return "datetime"
    if base is date:
        return "date"
    return "text"


def _build_registry() -> dict[str, EntityInfo]:
    registry: dict[str, EntityInfo] = {}
    for name in _ORDER:
        model = _MODELS[name]
        fields: dict[str, CanonicalField] = {}
        for fname, info in model.model_fields.items():
            if fname in META_FIELDS:
                continue
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            kind = str(extra.get("x-kind", "text"))
            fields[fname] = CanonicalField(
                name=fname,
                type=_type_of(info.annotation, kind),
                kind=kind,
                description=info.description or "",
                reference=extra.get("x-reference"),  # type: ignore[arg-type]
                item_entity=extra.get("x-item"),  # type: ignore[arg-type]
                owner=extra.get("x-owner"),  # type: ignore[arg-type]
            )
        refs = {f.name: f.reference for f in fields.values() if f.reference}
        registry[name] = EntityInfo(name, model, fields, item=name == "sales_order_line", references=refs)
    return registry


#: Canonical entity name -> EntityInfo (partner, account, contact, deal, sales_order, sales_order_line).
ENTITIES: dict[str, EntityInfo] = _build_registry()
_BY_MODEL = {info.model.__name__: info for info in ENTITIES.values()}


def entity_info(name_or_model: str) -> EntityInfo:
    """Look an entity up by canonical name (``account``) or model name (``Account``). KeyError if unknown."""
    if name_or_model in ENTITIES:
        return ENTITIES[name_or_model]
    if name_or_model in _BY_MODEL:
        return _BY_MODEL[name_or_model]
    raise KeyError(name_or_model)


def model_names() -> list[str]:
    """Model names an ``entities.<name>.model`` may use (item-only models excluded)."""
    return [info.model.__name__ for info in ENTITIES.values() if not info.item]


def fields_of(model: str) -> dict[str, CanonicalField]:
    """Mappable fields of a model (by model or entity name). KeyError if unknown."""
    return entity_info(model).fields


def dependency_order(entities: Iterable[str], references: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """``entities`` sorted so that every entity comes after the ones it references.

    ``references`` maps an entity to the entities it points at; by default the
    canonical model's reference fields (partner → account → contact, deal → sales
    order). Self-references (a parent account) are ignored; ties keep the canonical
    order, then the given order. Raises ValueError on a cycle.
    """
    wanted = list(dict.fromkeys(entities))
    if references is None:
        references = {name: set(ENTITIES[name].references.values()) if name in ENTITIES else set() for name in wanted}
    rank = {name: i for i, name in enumerate(_ORDER)}
    pending = sorted(wanted, key=lambda n: (rank.get(n, len(rank)), wanted.index(n)))
    deps = {n: {d for d in references.get(n, ()) if d in wanted and d != n} for n in pending}
    ordered: list[str] = []
    while pending:
        ready = next((n for n in pending if deps[n] <= set(ordered)), None)
        if ready is None:
            raise ValueError(f"reference cycle between entities: {', '.join(pending)}")
        ordered.append(ready)
        pending.remove(ready)
    return ordered


# ---------------------------------------------------------------------------
# Canonical values: JSON-friendly dicts, hashing and equality
# ---------------------------------------------------------------------------


def format_decimal(value: Decimal) -> str:
    """Plain notation, scale kept: Decimal('1234.50') -> '1234.50', never '1.2345E+3'."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return format(value, "f")


def format_datetime(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone; canonical datetimes are UTC")
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_datetime(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"datetime {value!s} has no time zone")
    return dt.astimezone(UTC)


def to_jsonable(value: Any) -> Any:
    """Python values -> canonical JSON form (Decimal str, datetime ISO UTC 'Z', date ISO)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        # Floats only reach here from careless callers; repr is the shortest exact-looking text.
        return format_decimal(Decimal(repr(value)))
    if isinstance(value, BaseModel):
        return {k: to_jsonable(v) for k, v in value.model_dump(exclude_none=False).items()}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"cannot put a {type(value).__name__} into canonical values")


def from_jsonable(entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical JSON form -> Python values typed per the entity's fields (Decimal, date, datetime)."""
    fields = entity_info(entity).fields
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = fields.get(key)
        out[key] = value if spec is None else _typed(spec, value)
    return out


def _typed(spec: CanonicalField, value: Any) -> Any:
    if value is None:
        return None
    if spec.type == "decimal":
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if spec.type == "datetime":
        return parse_datetime(value)
    if spec.type == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if spec.type == "records" and spec.item_entity:
        return [from_jsonable(spec.item_entity, item) for item in value]
    return value


def to_model(entity: str, values: Mapping[str, Any], **meta: Any) -> BaseModel:
    """Validate canonical values as the entity's pydantic model (``meta``: id, provenance)."""
    return entity_info(entity).model.model_validate({**from_jsonable(entity, values), **meta})


#: Types whose comparison form is the value itself, unless the field is a decimal or a datetime
#: (or, for a string of a field not in the model, the string looks like a decimal number).
_PLAIN = frozenset({str, int, bool, float})


def _normal(value: Any, spec: CanonicalField | None) -> Any:
    """The comparison form: numbers by value, datetimes as one instant, nested records too."""
    if value is None:
        return None
    kind = type(value)
    if kind in _PLAIN and (spec.type not in ("decimal", "datetime") if spec is not None else kind is not str):
        return value  # the common case, without the checks below
    if isinstance(value, Decimal) or (spec is not None and spec.type == "decimal"):
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value))
            return format_decimal(number.normalize()) if number else "0"
        except (InvalidOperation, ValueError):
            return value
    if spec is not None and spec.type == "datetime":
        try:
            return format_datetime(parse_datetime(value))
        except (TypeError, ValueError):
            return value
    if spec is not None and spec.type == "records" and isinstance(value, list):
        item_fields = ENTITIES[spec.item_entity].fields if spec.item_entity in ENTITIES else {}
        return [_normal_dict(v, item_fields) if isinstance(v, Mapping) else v for v in value]
    if spec is None and isinstance(value, str) and _looks_decimal(value):
        return _normal(Decimal(value), None)
    if isinstance(value, (datetime, date)):
        return to_jsonable(value)
    if isinstance(value, Mapping):
        return _normal_dict(value, {})
    if isinstance(value, (list, tuple)):
        return [_normal(v, None) for v in value]
    return value


def _looks_decimal(text: str) -> bool:
    # Only with a decimal point: '007' stays a code, '1.10' is a number. Used when the
    # entity is unknown; pass ``entity`` to compare exactly by field type.
    head, dot, tail = text.lstrip("-").partition(".")
    return bool(dot) and head.isdigit() and tail.isdigit() and head.isascii() and tail.isascii()


def _normal_dict(values: Mapping[str, Any], fields: Mapping[str, CanonicalField]) -> dict[str, Any]:
    return {k: _normal(v, fields.get(k)) for k, v in values.items() if v is not None}


def normalized(values: Mapping[str, Any], entity: str | None = None) -> dict[str, Any]:
    """Canonical values in comparison form; None-valued keys dropped (absent == null)."""
    fields = entity_info(entity).fields if entity else {}
    return _normal_dict(values, fields)


def canonical_equal(a: Mapping[str, Any], b: Mapping[str, Any], entity: str | None = None) -> bool:
    """Equality of canonical values: Decimal('1.0') == Decimal('1.00'), a missing key == null."""
    return normalized(a, entity) == normalized(b, entity)


def canonical_field_equal(field: str, a: Any, b: Any, entity: str | None = None) -> bool:
    """``canonical_equal({field: a}, {field: b}, entity)`` without building and normalising two dicts."""
    if a is None or b is None:
        return a is b
    spec = entity_info(entity).fields.get(field) if entity else None
    return _normal(a, spec) == _normal(b, spec)


#: json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":")), without a new encoder per call
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_hash(values: Mapping[str, Any], entity: str | None = None) -> str:
    """Stable SHA-256 of canonical values: key order, decimal scale and null keys do not matter."""
    payload = _HASH_ENCODER.encode(normalized(values, entity))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def diff_values(
    before: Mapping[str, Any], after: Mapping[str, Any], entity: str | None = None
) -> dict[str, tuple[Any, Any]]:
    """Fields whose value differs: ``{field: (before, after)}`` (original, not normalised, values)."""
    fields = entity_info(entity).fields if entity else {}
    out: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(before) | set(after)):
        spec = fields.get(key)
        if _normal(before.get(key), spec) != _normal(after.get(key), spec):
            out[key] = (before.get(key), after.get(key))
    return out
