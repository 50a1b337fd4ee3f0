"""Type converters: a system's wire format ↔ the canonical Python value.

Canonical side values are typed (``Decimal``, ``date``, aware UTC ``datetime``,
``str``, ``int``, ``bool``, ``list``); the mapper turns them into canonical JSON form.
System side values are what the connector sends and receives: Fxiaoke epoch-ms
numbers and numbers-as-strings, Zoho offset datetimes and ``{id, name}`` lookups,
Kingdee ``{"FNumber": …}`` references and local-time strings, SQL column values.

Money never passes through ``float``: Decimal in, Decimal (or its exact text) out.
A converter is chosen per field from its declared ``type``, else the system's known
fields (``owner`` on Fxiaoke, ``Owner`` on Zoho…), else the canonical field's type
and the system type (:func:`default_converter`).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .canonical import CanonicalField


class ConversionError(ValueError):
    """A value has the wrong shape for its converter (becomes MappingError code 'conversion')."""


# ---------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def parse_timezone(text: str) -> tzinfo:
    """'Asia/Shanghai' (IANA, with DST rules), '+08:00', 'UTC+8', 'UTC' → tzinfo. ValueError if unknown."""
    text = str(text).strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if hours > 14 or minutes > 59:
            raise ValueError(f"offset {text!r} is out of range")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r} (use an IANA name such as Asia/Shanghai, or an offset such as +08:00)") from None


# ---------------------------------------------------------------------------
# Base class and registry
# ---------------------------------------------------------------------------


class Options(BaseModel):
    """Converter options (``options:`` of a field). Every converter accepts ``timezone``."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(None, description="Time zone of local dates/times (IANA name or offset); "
                                 "defaults to the system mapping's `timezone`.")


class Converter:
    name: ClassVar[str]
    description: ClassVar[str]
    options_model: ClassVar[type[Options]] = Options
    #: Canonical types this converter produces (for config checks).
    produces: ClassVar[frozenset[str]] = frozenset({"text"})
    #: Literal keys to try when the path is absent (Kingdee queries return 'FCustId.FNumber').
    read_suffixes: ClassVar[tuple[str, ...]] = ()
    #: False when the converter cannot write (e.g. a lookup read by name).
    writable: bool = True

    def __init__(self, options: Options, tz: tzinfo) -> None:
        self.options = options
        self.tz = parse_timezone(options.timezone) if options.timezone else tz

    def to_canonical(self, value: Any) -> Any:
        raise NotImplementedError

    def to_system(self, value: Any) -> Any:
        raise NotImplementedError


CONVERTERS: dict[str, type[Converter]] = {}


def register(cls: type[Converter]) -> type[Converter]:
    CONVERTERS[cls.name] = cls
    return cls


def make_converter(name: str, options: dict[str, Any] | None, tz: tzinfo) -> Converter:
    """Build a converter; raises KeyError (unknown name) or ValueError (bad options, message ready)."""
    cls = CONVERTERS[name]
    try:
        parsed = cls.options_model.model_validate(options or {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(p) for p in error["loc"])
            msg = error["msg"]
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(cls.options_model.model_fields)
                msg = f"unknown option (allowed: {allowed})"
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise ValueError(f"bad options for converter {name!r}: " + "; ".join(problems)) from None
    return cls(parsed, tz)


# ---------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def to_decimal(value: Any) -> Decimal:
    """Exact Decimal from str/int/Decimal; a float goes through its shortest repr (never binary noise)."""
    if isinstance(value, bool):
        raise ConversionError(f"expected a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise ConversionError(f"expected a number, got {value!r}") from None
    else:
        raise ConversionError(f"expected a number, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise ConversionError(f"expected a finite number, got {value!r}")
    return result


@register
class RawConverter(Converter):
    name = "raw"
    description = "No conversion: the value passes unchanged in both directions."
    produces = frozenset({"text", "integer", "decimal", "boolean", "date", "datetime", "text_list", "records"})

    def to_canonical(self, value: Any) -> Any:
        return value

    def to_system(self, value: Any) -> Any:
        return value


class TextOptions(Options):
    strip: bool = Field(False, description="Trim surrounding white space when reading.")
    empty_is_null: bool = Field(True, description="Read an empty string as null.")


@register
class TextConverter(Converter):
    name = "text"
    description = "Text. Numbers read as their exact text; empty strings read as null."
    options_model = TextOptions

    def to_canonical(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, Decimal)):
            text = str(value)
        elif isinstance(value, float):
            text = repr(value)
        elif isinstance(value, str):
            text = value
        else:
            raise ConversionError(f"expected text, got {type(value).__name__} {value!r}")
        if self.options.strip:
            text = text.strip()
        if self.options.empty_is_null and text == "":
            return None
        return text

    def to_system(self, value: Any) -> Any:
        return None if value is None else str(value)


class IntegerOptions(Options):
    output: Literal["number", "string"] = Field("number", description="Write a JSON number or a string (Fxiaoke).")


@register
class IntegerConverter(Converter):
    name = "integer"
    description = "Whole number; reads 30, '30' or '30.0'."
    options_model = IntegerOptions
    produces = frozenset({"integer"})

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        number = to_decimal(value)
        if number != number.to_integral_value():
            raise ConversionError(f"expected a whole number, got {value!r}")
        return int(number)

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        number = int(value)
        return str(number) if self.options.output == "string" else number


class DecimalOptions(Options):
    places: int | None = Field(None, ge=0, le=12, description="Decimal places written (rounded half up); default: as is.")
    output: Literal["number", "string"] = Field(
        "number", description="Write a Decimal (a JSON number, exact) or its text (Fxiaoke sends numbers as strings)."
    )


@register
class DecimalConverter(Converter):
    name = "decimal"
    description = "Exact decimal (money, quantities). Reads numbers and numeric strings; never a float."
    options_model = DecimalOptions
    produces = frozenset({"decimal", "integer"})

    def to_canonical(self, value: Any) -> Any:
        return None if _blank(value) else to_decimal(value)

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        number = to_decimal(value)
        if self.options.places is not None:
            number = number.quantize(Decimal(1).scaleb(-self.options.places), rounding=ROUND_HALF_UP)
        return format(number, "f") if self.options.output == "string" else number


class FxNumberOptions(DecimalOptions):
    output: Literal["number", "string"] = Field("string", description="Fxiaoke reads and writes numbers as strings.")


@register
class FxNumberConverter(DecimalConverter):
    name = "fx_number"
    description = "Fxiaoke number/currency/percentile: a string such as '1234.50' ↔ Decimal."
    options_model = FxNumberOptions


class BooleanOptions(Options):
    true_value: Any = Field(True, description="What to write for true (e.g. '1', 'Y', true).")
    false_value: Any = Field(False, description="What to write for false.")


_TRUE = {"true", "1", "y", "yes", "t", "是", "on"}
_FALSE = {"false", "0", "n", "no", "f", "否", "off"}


@register
class BooleanConverter(Converter):
    name = "boolean"
    description = "true/false; also reads 1/0, 'Y'/'N', '是'/'否'."
    options_model = BooleanOptions
    produces = frozenset({"boolean"})

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        if isinstance(value, bool):
            return value
        if value == self.options.true_value:
            return True
        if value == self.options.false_value:
            return False
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConversionError(f"expected true or false, got {value!r}")

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        return self.options.true_value if value else self.options.false_value


class ListOptions(Options):
    separator: str | None = Field(None, description="Read/write a delimited string (e.g. ',') instead of a list.")


@register
class ListConverter(Converter):
    name = "list"
    description = "List of texts (multi-select); optionally a delimited string on the system side."
    options_model = ListOptions
    produces = frozenset({"text_list"})

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        if isinstance(value, str):
            sep = self.options.separator
            items = value.split(sep) if sep else [value]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ConversionError(f"expected a list, got {type(value).__name__} {value!r}")
        return [str(i).strip() if isinstance(i, str) else str(i) for i in items if not _blank(i)]

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        items = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        return self.options.separator.join(items) if self.options.separator else items


@register
class ZohoMultiSelectConverter(ListConverter):
    name = "zoho_multiselect"
    description = "Zoho multi-select picklist: a JSON array of strings ['Analytics','Big data']."


# ---------------------------------------------------------------------------
# Dates and datetimes
# ---------------------------------------------------------------------------


def _aware(value: datetime, tz: tzinfo) -> datetime:
    return value.replace(tzinfo=tz) if value.tzinfo is None or value.utcoffset() is None else value


def _parse_iso(text: str) -> datetime:
    text = text.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConversionError(f"expected a date-time such as 2024-05-01T10:30:00+08:00, got {text!r}") from None


def _epoch_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise ConversionError(f"expected epoch milliseconds, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, (Decimal, float)) and value == int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise ConversionError(f"expected epoch milliseconds (a whole number), got {value!r}")


def _to_utc(value: Any, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return _aware(value, tz).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tz).astimezone(UTC)
    if isinstance(value, str):
        return _aware(_parse_iso(value), tz).astimezone(UTC)
    raise ConversionError(f"expected a date-time, got {type(value).__name__} {value!r}")


def _to_date(value: Any, tz: tzinfo) -> date:
    if isinstance(value, datetime):
        return _aware(value, tz).astimezone(tz).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return date.fromisoformat(text)
            except ValueError:
                raise ConversionError(f"{text!r} is not a valid date") from None
        parsed = _parse_iso(text.replace(" ", "T", 1) if " " in text else text)
        return parsed.astimezone(tz).date() if parsed.tzinfo else parsed.date()
    raise ConversionError(f"expected a date, got {type(value).__name__} {value!r}")


class DateOptions(Options):
    format: str | None = Field(None, description="strftime format written (default ISO 'YYYY-MM-DD').")


@register
class DateConverter(Converter):
    name = "date"
    description = "Calendar date 'YYYY-MM-DD' (also reads date-times: their date in the time zone)."
    options_model = DateOptions
    produces = frozenset({"date"})

    def to_canonical(self, value: Any) -> Any:
        return None if _blank(value) else _to_date(value, self.tz)

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        day = _to_date(value, self.tz)
        return day.strftime(self.options.format) if self.options.format else day.isoformat()


class DateTimeOptions(Options):
    format: str | None = Field(None, description="strftime format written; default ISO 8601 with offset.")


@register
class DateTimeConverter(Converter):
    name = "datetime"
    description = "ISO 8601 date-time; a value without offset is local time in the time zone."
    options_model = DateTimeOptions
    produces = frozenset({"datetime"})

    def to_canonical(self, value: Any) -> Any:
        return None if _blank(value) else _to_utc(value, self.tz)

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        local = _to_utc(value, UTC).astimezone(self.tz)
        if self.options.format:
            return local.strftime(self.options.format)
        return local.isoformat(timespec="microseconds" if local.microsecond else "seconds")


@register
class ZohoDateTimeConverter(DateTimeConverter):
    name = "zoho_datetime"
    description = ("Zoho date-time 'yyyy-MM-ddTHH:mm:ss±HH:mm' (the API user's zone; set `timezone` to the org's "
                   "zone so written values look like the ones read).")

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        # Zoho rejects fractional seconds; it stores whole seconds anyway.
        local = _to_utc(value, UTC).astimezone(self.tz).replace(microsecond=0)
        return local.strftime(self.options.format) if self.options.format else local.isoformat(timespec="seconds")


@register
class ZohoDateConverter(DateConverter):
    name = "zoho_date"
    description = "Zoho date 'yyyy-MM-dd'."


@register
class FxDateTimeConverter(Converter):
    name = "fx_datetime"
    description = "Fxiaoke date_time: epoch milliseconds (a number) ↔ UTC date-time."
    produces = frozenset({"datetime"})

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        ms = _epoch_ms(value)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        moment = _to_utc(value, UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        return delta // timedelta(milliseconds=1)


@register
class FxDateConverter(Converter):
    name = "fx_date"
    description = ("Fxiaoke date: epoch milliseconds of local midnight in the tenant's time zone "
                   "(default Asia/Shanghai: 2020-04-04 ↔ 1585929600000).")
    produces = frozenset({"date"})

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        ms = _epoch_ms(value)
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        return moment.astimezone(self.tz).date()

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        day = _to_date(value, self.tz)
        midnight = datetime.combine(day, time(), self.tz)
        return (midnight.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


class KingdeeDateOptions(Options):
    format: str = Field("%Y-%m-%d", description="strftime format written.")


@register
class KingdeeDateConverter(Converter):
    name = "kingdee_date"
    description = "Kingdee date: reads '2024-05-01', '2024-05-01T00:00:00' or '2024-05-01 00:00:00'; writes '2024-05-01'."
    options_model = KingdeeDateOptions
    produces = frozenset({"date"})

    def to_canonical(self, value: Any) -> Any:
        return None if _blank(value) else _to_date(value, self.tz)

    def to_system(self, value: Any) -> Any:
        return None if value is None else _to_date(value, self.tz).strftime(self.options.format)


class LocalDateTimeOptions(Options):
    format: str = Field("%Y-%m-%d %H:%M:%S", description="strftime format written (local time, no offset).")


@register
class KingdeeDateTimeConverter(Converter):
    name = "kingdee_datetime"
    description = ("Kingdee date-time: local time without offset ('2024-05-01 10:30:00' or ISO 'T' form) in the "
                   "ERP server's time zone (default Asia/Shanghai) ↔ UTC.")
    options_model = LocalDateTimeOptions
    produces = frozenset({"datetime"})

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        if isinstance(value, str):
            value = value.strip().replace(" ", "T", 1)
        return _to_utc(value, self.tz)

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        return _to_utc(value, UTC).astimezone(self.tz).strftime(self.options.format)


class SqlDateTimeOptions(Options):
    naive: bool = Field(
        False,
        description="Write naive local datetimes in the time zone. Default: aware UTC, which the SQL connector "
        "stores as the column expects (naive ERP-local time for columns without a zone).",
    )


@register
class SqlDateTimeConverter(Converter):
    name = "sql_datetime"
    description = "SQL DATETIME/TIMESTAMP column: a datetime object (naive = local time in the time zone) ↔ UTC."
    options_model = SqlDateTimeOptions
    produces = frozenset({"datetime"})

    def to_canonical(self, value: Any) -> Any:
        return None if _blank(value) else _to_utc(value, self.tz)

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        local = _to_utc(value, UTC).astimezone(self.tz)
        return local.replace(tzinfo=None) if self.options.naive else local


@register
class SqlDateConverter(Converter):
    name = "sql_date"
    description = "SQL DATE column: a date object (also reads ISO text and datetimes)."
    produces = frozenset({"date"})

    def to_canonical(self, value: Any) -> Any:
        return None if _blank(value) else _to_date(value, self.tz)

    def to_system(self, value: Any) -> Any:
        return None if value is None else _to_date(value, self.tz)


@register
class SqlDecimalConverter(DecimalConverter):
    name = "sql_decimal"
    description = "SQL NUMERIC/DECIMAL column: Decimal both ways."


@register
class KingdeeNumberConverter(DecimalConverter):
    name = "kingdee_number"
    description = "Kingdee quantity/price/amount: a JSON number (read exactly, written as Decimal)."


# ---------------------------------------------------------------------------
# Owners, lookups and references
# ---------------------------------------------------------------------------


@register
class FxEmployeeConverter(Converter):
    name = "fx_employee"
    description = "Fxiaoke employee/owner field: always a list (['1001']) ↔ a single user id."

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        if isinstance(value, (list, tuple)):
            items = [v for v in value if not _blank(v)]
            return str(items[0]) if items else None
        if isinstance(value, (str, int)):
            return str(value)
        raise ConversionError(f"expected a list of user ids, got {type(value).__name__} {value!r}")

    def to_system(self, value: Any) -> Any:
        return None if value is None else [str(value)]


class LookupOptions(Options):
    key: Literal["id", "name", "email"] = Field(
        "id", description="Which part of the lookup is the value. Only 'id' can be written."
    )


@register
class ZohoLookupConverter(Converter):
    name = "zoho_lookup"
    description = "Zoho lookup: read {'name': …, 'id': …} → the id (or name), write {'id': …}."
    options_model = LookupOptions

    def __init__(self, options: LookupOptions, tz: tzinfo) -> None:  # type: ignore[override]
        super().__init__(options, tz)
        self.writable = options.key == "id"

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        if isinstance(value, dict):
            inner = value.get(self.options.key)
            return None if _blank(inner) else str(inner)
        if isinstance(value, (str, int)) and self.options.key == "id":
            return str(value)
        raise ConversionError(f"expected a lookup object {{'id': …, 'name': …}}, got {value!r}")

    def to_system(self, value: Any) -> Any:
        if value is None:
            return None
        if self.options.key != "id":
            raise ConversionError(f"Zoho lookups are written by id, not by {self.options.key}")
        return {"id": str(value)}


@register
class ZohoOwnerConverter(ZohoLookupConverter):
    name = "zoho_owner"
    description = "Zoho owner/user: read {'name', 'id', 'email'} → the id (or e-mail), write {'id': …}."


class KingdeeRefOptions(Options):
    key: str = Field("FNumber", description="Key of the base-data reference object (FNumber; FStaffNumber for some).")


@register
class KingdeeRefConverter(Converter):
    name = "kingdee_ref"
    description = ("Kingdee base-data reference: {'FNumber': 'C0001'} (also View's {'Number': …} and a query's plain "
                   "'FCustId.FNumber' value) ↔ 'C0001'.")
    options_model = KingdeeRefOptions
    read_suffixes = (".FNumber",)

    def __init__(self, options: KingdeeRefOptions, tz: tzinfo) -> None:  # type: ignore[override]
        super().__init__(options, tz)
        self.read_suffixes = (f".{options.key}",)

    def to_canonical(self, value: Any) -> Any:
        if _blank(value):
            return None
        if isinstance(value, dict):
            for key in (self.options.key, self.options.key.removeprefix("F"), "Number"):
                if key in value:
                    inner = value[key]
                    return None if _blank(inner) else str(inner)
            raise ConversionError(f"expected a reference object {{{self.options.key!r}: …}}, got {value!r}")
        if isinstance(value, (str, int)):
            return str(value)
        raise ConversionError(f"expected a reference object {{{self.options.key!r}: …}}, got {value!r}")

    def to_system(self, value: Any) -> Any:
        return None if value is None else {self.options.key: str(value)}


# ---------------------------------------------------------------------------
# Default selection
# ---------------------------------------------------------------------------

#: Fields whose format a system fixes whatever canonical field they map to.
KNOWN_FIELDS: dict[str, dict[str, str]] = {
    "fxiaoke": {
        "owner": "fx_employee",
        "created_by": "fx_employee",
        "last_modified_by": "fx_employee",
        "create_time": "fx_datetime",
        "last_modified_time": "fx_datetime",
        "last_followed_time": "fx_datetime",
    },
    "zoho": {
        "Owner": "zoho_owner",
        "Created_By": "zoho_owner",
        "Modified_By": "zoho_owner",
        "Created_Time": "zoho_datetime",
        "Modified_Time": "zoho_datetime",
    },
    "kingdee": {
        "FCreateDate": "kingdee_datetime",
        "FModifyDate": "kingdee_datetime",
        "FApproveDate": "kingdee_datetime",
    },
}

#: (system type, canonical type or kind) -> converter name.
_BY_TYPE: dict[str, dict[str, str]] = {
    "fxiaoke": {"integer": "integer:string", "decimal": "fx_number", "date": "fx_date", "datetime": "fx_datetime",
                "text_list": "list", "boolean": "boolean", "user": "fx_employee"},
    "zoho": {"integer": "integer", "decimal": "decimal", "date": "zoho_date", "datetime": "zoho_datetime",
             "text_list": "zoho_multiselect", "boolean": "boolean", "user": "zoho_owner", "reference": "zoho_lookup"},
    "kingdee": {"integer": "integer", "decimal": "kingdee_number", "date": "kingdee_date",
                "datetime": "kingdee_datetime", "text_list": "list:comma", "boolean": "boolean",
                "user": "kingdee_ref", "reference": "kingdee_ref"},
    "sql": {"integer": "integer", "decimal": "sql_decimal", "date": "sql_date", "datetime": "sql_datetime",
            "text_list": "list:comma", "boolean": "boolean"},
}
_GENERIC = {"integer": "integer", "decimal": "decimal", "date": "date", "datetime": "datetime",
            "text_list": "list", "boolean": "boolean", "records": "raw"}

#: Default time zone of local dates/times per system type.
DEFAULT_TIMEZONE = {"fxiaoke": "Asia/Shanghai", "kingdee": "Asia/Shanghai", "zoho": "UTC", "sql": "UTC"}


def default_converter(system_type: str, path: str | None, canonical: CanonicalField) -> tuple[str, dict[str, Any]]:
    """The converter (name, options) used when a field declares no ``type``."""
    known = KNOWN_FIELDS.get(system_type, {})
    if path is not None and path in known:
        return known[path], {}
    if system_type == "kingdee" and path is not None and "." in path and canonical.kind in ("user", "reference", "code"):
        # 'FCustId.FNumber' already names the number inside the reference object.
        return "text", {}
    table = _BY_TYPE.get(system_type, {})
    choice = table.get(canonical.kind) or table.get(canonical.type) or _GENERIC.get(canonical.type, "text")
    name, _, variant = choice.partition(":")
    options: dict[str, Any] = {}
    if variant == "string":
        options["output"] = "string"
    elif variant == "comma":
        options["separator"] = ","
    return name, options


def describe_converters() -> list[tuple[str, str, list[str]]]:
    """(name, description, option names) for `crmsync mapping show` and the docs."""
    return [
        (name, cls.description, [o for o in cls.options_model.model_fields])
        for name, cls in sorted(CONVERTERS.items())
    ]


Factory = Callable[[dict[str, Any] | None, tzinfo], Converter]
