"""One engine object seen through its form settings: which keys to query, how rows become
record data, and how record data becomes a Save model.

Record data uses the ExecuteBillQuery field keys as names (``FName``,
``FCustId.FNumber``) with entry lines as lists under the entry key
(``FSaleOrderEntry: [{FMaterialId.FNumber, FQty, …}]``). Writing accepts the same
shape, so a pulled record can be pushed back: ``X.FNumber`` keys become
base-data references ``{"X": {"FNumber": …}}``, sub-entity fields are nested
(``FSaleOrderFinance``), and other dotted keys (``FCustId.FName``) are derived
values the ERP owns and are left out.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .localtime import local_to_utc, parse_local, utc_to_local
from .settings import FormSettings, KingdeeSettings


@dataclass(frozen=True, slots=True)
class EntrySpec:
    key: str
    query_id: str
    model_id: str
    fields: tuple[str, ...]

    def query_keys(self) -> list[str]:
        return _unique([self.query_id, *self.fields])


def _unique(keys: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for key in keys:
        folded = key.lower()
        if folded not in seen:
            seen.add(folded)
            out.append(key)
    return out


def _is_ref_number(key: str) -> tuple[str, bool]:
    """``FCustId.FNumber`` -> (``FCustId``, True); other dotted keys -> (key, False)."""
    base, _, sub = key.partition(".")
    return base, sub.lower() == "fnumber"


@dataclass(slots=True)
class SaveModel:
    model: dict[str, Any]
    need_update_fields: list[str]


class ObjectSpec:
    def __init__(self, name: str, form: FormSettings, settings: KingdeeSettings, tz: ZoneInfo) -> None:
        self.name = name
        self.form = form
        self.settings = settings
        self.tz = tz
        self.form_id = form.form_id
        self.id_field: str = form.id_field or "FID"
        self.number_field: str = form.number_field or "FNumber"
        self.match_field: str = form.match_field or self.number_field
        self.watermarks = list(form.watermark_fields)
        self.entries = [
            EntrySpec(key=key, query_id=entry.query_id(key), model_id=entry.model_id_field, fields=tuple(entry.fields))
            for key, entry in form.entries.items()
        ]
        self._read_only = {k.lower() for k in form.read_only_fields}
        self._sub_of = {f.lower(): sub for sub, fields in form.sub_entities.items() for f in fields}
        self._entry_by_key = {e.key.lower(): e for e in self.entries}

    # -- reading -----------------------------------------------------------
    def header_keys(self, requested: Sequence[str] = ()) -> list[str]:
        wanted = [k for k in requested if k.lower() not in self._entry_by_key] if requested else self.form.fields
        return _unique([self.id_field, self.number_field, *self.watermarks, *wanted])

    def entries_for(self, requested: Sequence[str] = ()) -> list[EntrySpec]:
        if not requested:
            return list(self.entries)
        names = {k.lower() for k in requested}
        return [e for e in self.entries if e.key.lower() in names]

    @staticmethod
    def row_data(keys: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(keys, row, strict=True))

    def external_id(self, data: dict[str, Any]) -> str:
        return str(data[self.id_field])

    def modified_at(self, data: dict[str, Any]) -> datetime | None:
        """The latest watermark value (ERP local) as aware UTC."""
        latest: datetime | None = None
        for key in self.watermarks:
            value = data.get(key)
            if isinstance(value, str) and value:
                try:
                    stamp = parse_local(value)
                except ValueError:
                    continue
                latest = stamp if latest is None or stamp > latest else latest
        return local_to_utc(latest, self.tz) if latest else None

    # -- writing -----------------------------------------------------------
    def save_model(self, data: dict[str, Any], *, external_id: str | None) -> SaveModel:
        """Record data -> Save model. ``external_id`` None means a new record."""
        creating = external_id is None
        model: dict[str, Any] = {}
        need: list[str] = []
        for key, value in data.items():
            folded = key.lower()
            if folded == self.id_field.lower() or folded in self._read_only:
                continue
            entry = self._entry_by_key.get(folded)
            if entry is not None:
                lines = [self._line_model(entry, line) for line in value or []]
                model[entry.key] = lines
                need.extend([entry.key, *_unique(k for line in lines for k in line if k != entry.model_id)])
                continue
            target, value = self._field(key, value)
            if target is None:
                continue
            sub = self._sub_of.get(target.lower())
            if sub is not None:
                model.setdefault(sub, {})[target] = value
                need.extend([sub, target])
            else:
                model[target] = value
                need.append(target)
        if creating:
            for key, value in self.form.write_defaults.items():
                target, converted = self._field(key, value)
                if target is not None and target not in model:
                    model[target] = converted
            for field, role in (self.form.org_fields or {}).items():
                if not any(k.lower() == field.lower() for k in model):
                    model[field] = {"FNumber": self.settings.org_number(role)}
            model[self.id_field] = 0
            return SaveModel(model=model, need_update_fields=[])
        model[self.id_field] = _id_value(external_id)
        return SaveModel(model=model, need_update_fields=_unique(need))

    def _field(self, key: str, value: Any) -> tuple[str | None, Any]:
        if "." in key:
            base, is_ref = _is_ref_number(key)
            if not is_ref:
                return None, None  # derived (FCustId.FName): the ERP owns it
            if base.lower() in self._read_only:
                return None, None
            return base, {"FNumber": "" if value is None else value}
        return key, self._value(value)

    def _line_model(self, entry: EntrySpec, line: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in line.items():
            folded = key.lower()
            if folded in (entry.query_id.lower(), entry.model_id.lower()):
                if value not in (None, "", 0, "0"):
                    out[entry.model_id] = _id_value(str(value))
                continue
            if folded in self._read_only:
                continue
            target, converted = self._field(key, value)
            if target is not None:
                out[target] = converted
        return out

    def _value(self, value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return utc_to_local(value, self.tz)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v) for v in value]
        return value


def _id_value(external_id: str) -> int | str:
    text = str(external_id).strip()
    return int(text) if text.lstrip("-").isdigit() else text
