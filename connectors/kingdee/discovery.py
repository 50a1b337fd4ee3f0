"""``crmsync discover`` for Kingdee: the configured objects and their fields.

Fields come from the configured field keys (what the connector actually reads
and writes). ``QueryBusinessInfo`` can add labels, required flags and lookup
targets; its answer shape is not documented in the sources we have, so it is
read leniently and any surprise falls back to the configured keys alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..base import FieldInfo, ObjectInfo
from ..errors import AuthError, ConnectorError
from .client import KingdeeClient
from .forms import standard_form_ids
from .objects import ObjectSpec
from .protocol import DOCUMENT_STATUS, FORBID_STATUS

log = logging.getLogger(__name__)

_PICKLISTS = {"fdocumentstatus": DOCUMENT_STATUS, "fforbidstatus": FORBID_STATUS,
              "fclosestatus": {"A": "未关闭", "B": "已关闭"}}
_TYPES = {"textfield": "text", "multilangtextfield": "text", "decimalfield": "decimal", "amountfield": "decimal",
          "pricefield": "decimal", "qtyfield": "decimal", "integerfield": "integer", "datefield": "date",
          "datetimefield": "datetime", "createdatefield": "datetime", "modifydatefield": "datetime",
          "basedatafield": "lookup", "orgfield": "lookup", "assistantfield": "lookup", "combofield": "picklist",
          "checkboxfield": "boolean", "billstatusfield": "picklist"}


@dataclass(slots=True)
class _Meta:
    label: str = ""
    required: bool = False
    lookup: str | None = None
    type: str = ""
    picklist: list[tuple[str, str]] | None = None
    locked: bool = False


def list_objects(specs: dict[str, ObjectSpec]) -> list[ObjectInfo]:
    standard = standard_form_ids()
    return [ObjectInfo(name=name, label=spec.form.label, custom=spec.form_id not in standard)
            for name, spec in specs.items()]


async def describe(client: KingdeeClient, spec: ObjectSpec, *, use_business_info: bool) -> list[FieldInfo]:
    meta: dict[str, _Meta] = {}
    if use_business_info:
        try:
            meta = _parse_business_info(await client.business_info(spec.form_id), client.settings.lcid)
        except AuthError:
            raise
        except ConnectorError as exc:
            log.info("%s: QueryBusinessInfo not usable (%s); describing from configured keys", spec.form_id, exc)
    labels = {k.lower(): v for k, v in spec.form.labels.items()}
    out = [_field(spec, key, meta, labels) for key in spec.header_keys()]
    for entry in spec.entries:
        entry_labels = {k.lower(): v for k, v in spec.form.entries[entry.key].labels.items()}
        out.append(FieldInfo(name=entry.key, label=(meta.get(entry.key.lower()) or _Meta()).label or entry.key,
                             type="entry"))
        out.append(FieldInfo(name=f"{entry.key}.{entry.query_id}", label="分录内码", type="id", read_only=True))
        for key in entry.fields:
            info = _field(spec, key, meta, entry_labels)
            info.name = f"{entry.key}.{key}"
            out.append(info)
    return out


def _field(spec: ObjectSpec, key: str, meta: dict[str, _Meta], labels: dict[str, str]) -> FieldInfo:
    folded = key.lower()
    base, _, sub = key.partition(".")
    own = meta.get(base.lower()) or _Meta()
    label = labels.get(folded) or own.label or key
    read_only = (own.locked and not sub) or folded in {k.lower() for k in spec.form.read_only_fields} \
        or folded in {w.lower() for w in spec.watermarks}
    if folded == spec.id_field.lower():
        return FieldInfo(name=key, label=labels.get(folded) or own.label or "内码", type="id", read_only=True)
    if sub:
        is_number = sub.lower() == "fnumber"
        return FieldInfo(name=key, label=label if is_number else f"{label} ({sub})", type="lookup" if is_number else "text",
                         required=own.required and is_number, read_only=read_only or not is_number,
                         lookup_object=own.lookup)
    picklist = own.picklist or (list(_PICKLISTS[folded].items()) if folded in _PICKLISTS else None)
    kind = own.type or ("picklist" if picklist else "datetime" if folded in {w.lower() for w in spec.watermarks} else "")
    return FieldInfo(name=key, label=label, type=kind, required=own.required, read_only=read_only, picklist=picklist,
                     lookup_object=own.lookup)


def _text(name: Any, lcid: int) -> str:
    if isinstance(name, str):
        return name
    if isinstance(name, list):
        texts = {item.get("Key"): item.get("Value") for item in name if isinstance(item, dict)}
        return str(texts.get(lcid) or next((v for v in texts.values() if v), "") or "")
    return ""


def _parse_business_info(data: dict[str, Any], lcid: int) -> dict[str, _Meta]:
    out: dict[str, _Meta] = {}
    for entity in data.get("Entrys") or []:
        if not isinstance(entity, dict):
            continue
        key = entity.get("Key")
        if isinstance(key, str):
            out[key.lower()] = _Meta(label=_text(entity.get("Name"), lcid), type="entry")
        for field in entity.get("Fields") or []:
            if not isinstance(field, dict) or not isinstance(field.get("Key"), str):
                continue
            enums = field.get("Enums")
            picklist = [(str(e.get("Value")), _text(e.get("Caption"), lcid)) for e in enums
                        if isinstance(e, dict)] if isinstance(enums, list) and enums else None
            out[field["Key"].lower()] = _Meta(
                label=_text(field.get("Name"), lcid),
                required=str(field.get("MustInput")) in ("1", "True", "true"),
                lookup=field.get("LookUpObjectFormId") if isinstance(field.get("LookUpObjectFormId"), str) else None,
                type=_TYPES.get(str(field.get("ElementType", "")).lower(), ""),
                picklist=picklist,
                locked=str(field.get("IsLocked")).lower() in ("1", "true"),
            )
    return out
