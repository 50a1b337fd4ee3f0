"""How the Kingdee emulator shows a stored record: View, QueryBusinessInfo and the /_admin dump."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from .emulator_forms import ELEMENT_TYPES, FORMS, MLTEXT, REF, FieldSpec, FormSpec
from .emulator_query import LINES
from .localtime import wire

Deref = Callable[[str, Any], dict[str, Any] | None]


def _view_name(key: str) -> str:
    """View uses ORM property names: the field key without its leading F (extension fields keep theirs)."""
    return key[1:] if key.startswith("F") and len(key) > 1 and not key.startswith("F_") else key


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return wire(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def view(form: FormSpec, record: dict[str, Any], deref: Deref) -> dict[str, Any]:
    """The View shape: references as {Id, Number, Name}, multi-language text as [{Key, Value}]."""

    def value(spec: FieldSpec, raw: Any) -> Any:
        if spec.kind == REF:
            target = deref(spec.ref or "", raw)
            if target is None:
                return None
            target_form = FORMS[spec.ref or ""]
            return {"Id": target[target_form.pk], "Number": target.get(target_form.number),
                    "Name": [{"Key": 2052, "Value": target.get("FName")}]}
        if spec.kind == MLTEXT:
            return [{"Key": 2052, "Value": raw or ""}]
        return _plain(raw)

    out: dict[str, Any] = {"Id": record[form.pk]}
    subs: dict[str, dict[str, Any]] = {}
    for spec in form.fields.values():
        target = subs.setdefault(spec.sub, {"Id": record[form.pk]}) if spec.sub else out
        target[_view_name(spec.key)] = value(spec, record.get(spec.key))
    for sub, values in subs.items():
        out[_view_name(sub)] = [values]  # a one-to-one sub-entity still comes as a list of one
    for entry in form.entries.values():
        out[_view_name(entry.key)] = [
            {"Id": line["FEntryID"], "Seq": line.get("FSeq"),
             **{_view_name(s.key): value(s, line.get(s.key)) for s in entry.fields.values()}}
            for line in record[LINES][entry.key]
        ]
    return out


def business_info(form: FormSpec) -> dict[str, Any]:
    """Form metadata. The real answer's shape is not in our sources (UNCONFIRMED); the connector reads it leniently."""

    def describe(spec: FieldSpec) -> dict[str, Any]:
        info: dict[str, Any] = {"Key": spec.key, "Name": [{"Key": 2052, "Value": spec.label}],
                                "ElementType": ELEMENT_TYPES[spec.kind], "MustInput": 1 if spec.required else 0,
                                "IsLocked": spec.readonly}
        if spec.ref:
            info["LookUpObjectFormId"] = spec.ref
        if spec.options:
            info["Enums"] = [{"Value": k, "Caption": [{"Key": 2052, "Value": v}]} for k, v in spec.options.items()]
        return info

    head = [describe(s) for s in form.fields.values() if not s.sub]
    entities = [{"Key": "FBillHead", "Name": [{"Key": 2052, "Value": form.label}], "EntityType": "HeadEntity",
                 "Fields": [{"Key": form.pk, "Name": [{"Key": 2052, "Value": "内码"}], "ElementType": "PkField",
                             "MustInput": 0, "IsLocked": True}, *head]}]
    for sub in sorted(form.sub_entities):
        entities.append({"Key": sub, "Name": [{"Key": 2052, "Value": sub}], "EntityType": "SubHeadEntity",
                         "Fields": [describe(s) for s in form.fields.values() if s.sub == sub]})
    for entry in form.entries.values():
        entities.append({"Key": entry.key, "Name": [{"Key": 2052, "Value": entry.label}], "EntityType": "EntryEntity",
                         "Fields": [describe(s) for s in entry.fields.values()]})
    return {"Id": form.form_id, "Name": [{"Key": 2052, "Value": form.label}], "PkFieldName": form.pk,
            "Entrys": entities}


def dump(form: FormSpec, record: dict[str, Any], deref: Deref) -> dict[str, Any]:
    """The /_admin record shape: field keys as names, references as {Id, FNumber}."""

    def value(spec: FieldSpec, raw: Any) -> Any:
        if spec.kind == REF:
            target = deref(spec.ref or "", raw)
            return None if target is None else {"Id": raw, "FNumber": target.get(FORMS[spec.ref or ""].number)}
        return _plain(raw)

    out: dict[str, Any] = {form.pk: record[form.pk]}
    for spec in form.fields.values():
        out[spec.key] = value(spec, record.get(spec.key))
    for entry in form.entries.values():
        out[entry.key] = [{"FEntryID": line["FEntryID"], "FSeq": line.get("FSeq"),
                           **{s.key: value(s, line.get(s.key)) for s in entry.fields.values()}}
                          for line in record[LINES][entry.key]]
    return out
