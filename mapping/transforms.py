"""Transforms: a small, safe expression language for computed and cleaned-up fields.

Parsed once when the configuration loads (never ``eval``): an expression can only
read ``value`` (the field's value) and ``record`` (the whole record — the system
record when reading, the canonical record when writing), call the functions in
:data:`FUNCTIONS`, and combine them with a few operators::

    strip_company_suffix(trim(value))
    value | trim | halfwidth | upper                        # pipes: x | f(a) is f(x, a)
    concat(record.Last_Name, record.First_Name)
    if(value == 'Closed Won', 'won', lower(value))
    add_days(value, 30)
    regex_replace(value, '\\s+', ' ')
    record.amount * 1.13

or, in YAML, a pipeline of named steps: ``[trim, upper, {regex_replace: ['\\s+', ' ']}]``.

Operators: ``or``, ``and``, ``not``, ``== != < <= > >= in``, ``+ -`` (numbers; ``+``
also joins two texts), ``* /``, unary ``-``, ``.name`` and ``[index]`` access,
literals ``'text'``, ``"text"``, ``12``, ``1.5`` (exact decimal), ``true``,
``false``, ``null`` and ``[a, b]`` lists. Most functions return null for a null
input, so a missing value flows through instead of failing the record.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from . import normalize
from .converters import ConversionError, parse_timezone, to_decimal


class TransformSyntaxError(ValueError):
    """The expression does not parse or names something unknown. ``position`` is 0-based."""

    def __init__(self, message: str, position: int | None = None, source: str = "") -> None:
        self.message = message
        self.position = position
        self.source = source
        super().__init__(self.describe())

    def describe(self) -> str:
        if self.position is None or not self.source:
            return self.message
        snippet = self.source[max(0, self.position - 15) : self.position + 15]
        return f"{self.message} (at character {self.position + 1}: {snippet!r})"


class TransformError(ValueError):
    """A transform failed while mapping a record (bad input for a function…)."""


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------


def _nullsafe(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(first: Any, *rest: Any) -> Any:
        return None if first is None else fn(first, *rest)

    wrapper.__name__ = fn.__name__
    return wrapper


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _str_arg(value: Any, fn: str) -> str:
    if not isinstance(value, str):
        raise TransformError(f"{fn}() expects text, got {type(value).__name__} {value!r}")
    return value


def _int_arg(value: Any, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value != int(value):
        raise TransformError(f"{fn}() expects a whole number, got {value!r}")
    return int(value)


def _number(value: Any, fn: str) -> Decimal:
    try:
        return to_decimal(value)
    except ConversionError as exc:
        raise TransformError(f"{fn}(): {exc}") from None


def _date_arg(value: Any, fn: str) -> date | datetime:
    if isinstance(value, (date, datetime)):
        return value
    if isinstance(value, str):
        try:
            return _parse_date_or_datetime(value)
        except ValueError:
            pass
    raise TransformError(f"{fn}() expects a date or date-time, got {value!r}")


def _parse_date_or_datetime(text: str) -> date | datetime:
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _concat(*parts: Any) -> Any:
    present = [_text(p) for p in parts if p is not None]
    return "".join(present) if present else None


def _join(items: Any, sep: Any = ",") -> Any:
    if items is None:
        return None
    if not isinstance(items, (list, tuple)):
        return _text(items)
    return _str_arg(sep, "join").join(_text(i) for i in items if i is not None)


def _split(text: Any, sep: Any, index: Any = None) -> Any:
    if text is None:
        return None
    sep = _str_arg(sep, "split")
    if not sep:
        raise TransformError("split() needs a non-empty separator")
    parts = [p.strip() for p in _str_arg(_text(text), "split").split(sep)]
    if index is None:
        return parts
    i = _int_arg(index, "split")
    return parts[i] if -len(parts) <= i < len(parts) else None


def _regex(pattern: Any, fn: str) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(_str_arg(pattern, fn))
    except re.error as exc:
        raise TransformError(f"{fn}(): bad regular expression {pattern!r}: {exc}") from None


def _regex_replace(text: Any, pattern: Any, repl: Any) -> Any:
    if text is None:
        return None
    try:
        return _regex(pattern, "regex_replace").sub(_str_arg(repl, "regex_replace"), _text(text))
    except re.error as exc:
        raise TransformError(f"regex_replace(): bad replacement {repl!r}: {exc}") from None


def _regex_extract(text: Any, pattern: Any, group: Any = 0) -> Any:
    if text is None:
        return None
    match = _regex(pattern, "regex_extract").search(_text(text))
    if not match:
        return None
    try:
        return match.group(_int_arg(group, "regex_extract"))
    except IndexError:
        raise TransformError(f"regex_extract(): the pattern has no group {group}") from None


def _matches(text: Any, pattern: Any) -> bool:
    return text is not None and _regex(pattern, "matches").search(_text(text)) is not None


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None or value == "" or value == [] else value


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _case(value: Any, *pairs: Any) -> Any:
    """case(x, 'a', 1, 'b', 2, fallback): the result paired with the first key equal to x."""
    fallback = pairs[-1] if len(pairs) % 2 == 1 else None
    for key, result in zip(pairs[0::2], pairs[1::2], strict=False):
        if _eq(key, value):
            return result
    return fallback


def _round(value: Any, places: Any = 0) -> Any:
    if value is None:
        return None
    number = _number(value, "round")
    return number.quantize(Decimal(1).scaleb(-_int_arg(places, "round")), rounding=ROUND_HALF_UP)


def _to_integer(value: Any) -> Any:
    if value is None or value == "":
        return None
    number = _number(value, "to_integer")
    if number != number.to_integral_value():
        raise TransformError(f"to_integer(): {value!r} is not a whole number")
    return int(number)


def _to_date(value: Any, fmt: Any = None) -> Any:
    if value is None or value == "":
        return None
    if fmt is not None:
        try:
            return datetime.strptime(_str_arg(value, "to_date"), _str_arg(fmt, "to_date")).date()
        except ValueError as exc:
            raise TransformError(f"to_date(): {exc}") from None
    parsed = _date_arg(value, "to_date")
    return parsed.date() if isinstance(parsed, datetime) else parsed


def _to_datetime(value: Any, fmt: Any = None, tz: Any = "UTC") -> Any:
    if value is None or value == "":
        return None
    zone = _zone(tz, "to_datetime")
    if fmt is not None:
        try:
            parsed: date | datetime = datetime.strptime(_str_arg(value, "to_datetime"), _str_arg(fmt, "to_datetime"))
        except ValueError as exc:
            raise TransformError(f"to_datetime(): {exc}") from None
    else:
        parsed = _date_arg(value, "to_datetime")
    if not isinstance(parsed, datetime):
        parsed = datetime(parsed.year, parsed.month, parsed.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _zone(tz: Any, fn: str):
    try:
        return parse_timezone(_str_arg(tz, fn))
    except ValueError as exc:
        raise TransformError(f"{fn}(): {exc}") from None


def _local_date(value: Any, tz: Any) -> Any:
    if value is None:
        return None
    moment = _date_arg(value, "local_date")
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        raise TransformError("local_date() needs a date-time with a time zone")
    return moment.astimezone(_zone(tz, "local_date")).date()


def _add_days(value: Any, days: Any) -> Any:
    if value is None:
        return None
    return _date_arg(value, "add_days") + timedelta(days=float(_number(days, "add_days")))


def _add_hours(value: Any, hours: Any) -> Any:
    if value is None:
        return None
    moment = _date_arg(value, "add_hours")
    if not isinstance(moment, datetime):
        raise TransformError("add_hours() needs a date-time, not a date")
    return moment + timedelta(hours=float(_number(hours, "add_hours")))


def _add_minutes(value: Any, minutes: Any) -> Any:
    if value is None:
        return None
    moment = _date_arg(value, "add_minutes")
    if not isinstance(moment, datetime):
        raise TransformError("add_minutes() needs a date-time, not a date")
    return moment + timedelta(minutes=float(_number(minutes, "add_minutes")))


def _add_months(value: Any, months: Any) -> Any:
    if value is None:
        return None
    moment = _date_arg(value, "add_months")
    n = _int_arg(months, "add_months")
    index = moment.year * 12 + moment.month - 1 + n
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])  # 31 Jan + 1 month = 28/29 Feb
    return moment.replace(year=year, month=month + 1, day=day)


def _days_between(start: Any, end: Any) -> Any:
    if start is None or end is None:
        return None
    a, b = _date_arg(start, "days_between"), _date_arg(end, "days_between")
    a = a.date() if isinstance(a, datetime) else a
    b = b.date() if isinstance(b, datetime) else b
    return (b - a).days


def _format_date(value: Any, fmt: Any) -> Any:
    if value is None:
        return None
    return _date_arg(value, "format_date").strftime(_str_arg(fmt, "format_date"))


def _pad_left(value: Any, width: Any, fill: Any = "0") -> Any:
    if value is None:
        return None
    fill = _str_arg(fill, "pad_left")
    if len(fill) != 1:
        raise TransformError("pad_left() fill must be one character")
    return _text(value).rjust(_int_arg(width, "pad_left"), fill)


def _first(items: Any) -> Any:
    if isinstance(items, (list, tuple)):
        return items[0] if items else None
    return items


def _last(items: Any) -> Any:
    if isinstance(items, (list, tuple)):
        return items[-1] if items else None
    return items


def _length(value: Any) -> Any:
    return None if value is None else len(value if isinstance(value, (list, tuple, dict)) else _text(value))


@dataclass(frozen=True, slots=True)
class Function:
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number
    signature: str
    description: str
    regex_arg: int | None = None  # index of a regex argument checked at parse time
    tz_arg: int | None = None  # index of a time-zone argument checked at parse time


def _fn(impl, lo, hi, signature, description, **kw) -> Function:
    return Function(impl, lo, hi, signature, description, **kw)


FUNCTIONS: dict[str, Function] = {
    # text
    "trim": _fn(_nullsafe(lambda s: _text(s).strip()), 1, 1, "trim(text)", "Remove surrounding spaces (also full-width ones)."),
    "upper": _fn(_nullsafe(lambda s: _text(s).upper()), 1, 1, "upper(text)", "Upper case."),
    "lower": _fn(_nullsafe(lambda s: _text(s).lower()), 1, 1, "lower(text)", "Lower case."),
    "halfwidth": _fn(_nullsafe(lambda s: normalize.halfwidth(_text(s))), 1, 1, "halfwidth(text)",
                     "Full-width letters, digits and punctuation (ＡＢＣ１２３（）) to half-width."),
    "strip_company_suffix": _fn(_nullsafe(lambda s: normalize.strip_company_suffix(_text(s))), 1, 1,
                                "strip_company_suffix(text)",
                                "Drop a legal-form suffix: 有限公司, 股份有限公司, 有限责任公司, Co., Ltd., Inc., Ltd, Limited…"),
    "concat": _fn(_concat, 1, None, "concat(a, b, …)", "Join the values as text, skipping nulls."),
    "join": _fn(_join, 1, 2, "join(list, sep=',')", "Join a list's items with a separator."),
    "split": _fn(_split, 2, 3, "split(text, sep[, index])", "Split text into a list (items trimmed), or take one item."),
    "replace": _fn(_nullsafe(lambda s, a, b: _text(s).replace(_str_arg(a, "replace"), _str_arg(b, "replace"))), 3, 3,
                   "replace(text, old, new)", "Replace every occurrence of a text."),
    "regex_replace": _fn(_regex_replace, 3, 3, "regex_replace(text, pattern, replacement)",
                         "Replace regular-expression matches (\\1 refers to a group).", regex_arg=1),
    "regex_extract": _fn(_regex_extract, 2, 3, "regex_extract(text, pattern[, group])",
                         "The first match (or one of its groups), null when none.", regex_arg=1),
    "matches": _fn(_matches, 2, 2, "matches(text, pattern)", "True if the regular expression matches.", regex_arg=1),
    "left": _fn(_nullsafe(lambda s, n: _text(s)[: _int_arg(n, "left")]), 2, 2, "left(text, n)", "The first n characters."),
    "right": _fn(_nullsafe(lambda s, n: _text(s)[-_int_arg(n, "right"):] if _int_arg(n, "right") else ""), 2, 2,
                 "right(text, n)", "The last n characters."),
    "truncate": _fn(_nullsafe(lambda s, n: _text(s)[: _int_arg(n, "truncate")]), 2, 2, "truncate(text, n)",
                    "Cut to at most n characters (Zoho single-line fields hold 255)."),
    "pad_left": _fn(_pad_left, 2, 3, "pad_left(text, width, fill='0')", "Left-pad to a width ('7' → '0007')."),
    "contains": _fn(lambda s, sub: s is not None and _text(sub) in _text(s), 2, 2, "contains(text, part)", "True if part occurs in text."),
    "starts_with": _fn(lambda s, p: s is not None and _text(s).startswith(_text(p)), 2, 2, "starts_with(text, prefix)", "Prefix test."),
    "ends_with": _fn(lambda s, p: s is not None and _text(s).endswith(_text(p)), 2, 2, "ends_with(text, suffix)", "Suffix test."),
    "length": _fn(_length, 1, 1, "length(x)", "Number of characters or items."),
    # normalisers (comparison keys, see mapping.normalize)
    "normalize_company": _fn(lambda s, strip_region=False: normalize.company_name(s, strip_region=bool(strip_region)), 1, 2,
                             "normalize_company(text[, strip_region])", "Comparison key of a company name."),
    "normalize_phone": _fn(lambda s: normalize.phone(s), 1, 1, "normalize_phone(text)", "Digits of a phone number, without +86/0."),
    "normalize_domain": _fn(lambda s: normalize.domain(s), 1, 1, "normalize_domain(text)",
                            "Domain from a URL or an e-mail address ('https://www.x.cn/a' → 'x.cn')."),
    "normalize_tax_id": _fn(lambda s: normalize.tax_id(s), 1, 1, "normalize_tax_id(text)", "Tax id without spaces, upper case."),
    "normalize_email": _fn(lambda s: normalize.email(s), 1, 1, "normalize_email(text)", "Trimmed lower-case e-mail."),
    # nulls and conditions
    "default": _fn(_default, 2, 2, "default(x, fallback)", "fallback when x is null or empty."),
    "coalesce": _fn(_coalesce, 1, None, "coalesce(a, b, …)", "The first value that is not null or empty."),
    "if": _fn(lambda *_: None, 2, 3, "if(condition, then[, else])", "then when condition is true, else otherwise (lazy)."),
    "case": _fn(_case, 3, None, "case(x, key1, result1, …[, fallback])", "The result paired with the first key equal to x."),
    "is_empty": _fn(_is_empty, 1, 1, "is_empty(x)", "True for null, '' and []."),
    # numbers
    "to_text": _fn(_nullsafe(_text), 1, 1, "to_text(x)", "Text form (decimals exact, dates ISO)."),
    "to_number": _fn(lambda v: None if v is None or v == "" else _number(v, "to_number"), 1, 1, "to_number(x)",
                     "Exact decimal from a number or numeric text."),
    "to_integer": _fn(_to_integer, 1, 1, "to_integer(x)", "Whole number from a number or numeric text."),
    "round": _fn(_round, 1, 2, "round(x, places=0)", "Round half up to a number of places."),
    "abs": _fn(_nullsafe(lambda v: abs(_number(v, "abs"))), 1, 1, "abs(x)", "Absolute value."),
    # dates
    "to_date": _fn(_to_date, 1, 2, "to_date(x[, format])", "Date from a date-time or text (strptime format optional)."),
    "to_datetime": _fn(_to_datetime, 1, 3, "to_datetime(x[, format[, tz]])",
                       "UTC date-time from text; local text is read in tz (default UTC).", tz_arg=2),
    "local_date": _fn(_local_date, 2, 2, "local_date(datetime, tz)", "The calendar date of a date-time in a time zone.", tz_arg=1),
    "add_days": _fn(_add_days, 2, 2, "add_days(date, n)", "Date or date-time plus n days (n may be negative)."),
    "add_months": _fn(_add_months, 2, 2, "add_months(date, n)", "Plus n months, clamped to the month's last day."),
    "add_hours": _fn(_add_hours, 2, 2, "add_hours(datetime, n)", "Date-time plus n hours."),
    "add_minutes": _fn(_add_minutes, 2, 2, "add_minutes(datetime, n)", "Date-time plus n minutes."),
    "days_between": _fn(_days_between, 2, 2, "days_between(start, end)", "Whole days from start to end."),
    "format_date": _fn(_format_date, 2, 2, "format_date(date, format)", "strftime text, e.g. '%Y年%m月%d日'."),
    # lists
    "first": _fn(_first, 1, 1, "first(list)", "The first item (null for an empty list)."),
    "last": _fn(_last, 1, 1, "last(list)", "The last item."),
}

NAMES = ("value", "record")


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[^\W\d]\w*)
  | (?P<op>==|!=|<=|>=|[<>+\-*/()\[\],.|])
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, string, name, op, keyword, end
    text: str
    pos: int
    value: Any = None


def _unescape(body: str, pos: int, source: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            # Unknown escapes stay as written: regex patterns need '\s', '\d', '\1'…
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match:
            ch = source[pos]
            if ch in "'\"":
                raise TransformSyntaxError("unterminated string", pos, source)
            raise TransformSyntaxError(f"unexpected character {ch!r}", pos, source)
        kind = match.lastgroup or ""
        text = match.group(0)
        if kind == "number":
            tokens.append(Token("number", text, pos, Decimal(text) if "." in text else int(text)))
        elif kind == "string":
            tokens.append(Token("string", text, pos, _unescape(text[1:-1], pos, source)))
        elif kind == "name":
            tokens.append(Token("keyword" if text in _KEYWORDS else "name", text, pos))
        elif kind == "op":
            tokens.append(Token("op", text, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


# ---------------------------------------------------------------------------
# Parser -> closures
# ---------------------------------------------------------------------------

Evaluator = Callable[[Any, Any], Any]  # (value, record) -> result


@dataclass(slots=True)
class _Node:
    fn: Evaluator
    const: bool = False  # a literal: its value is known at parse time
    literal: Any = None
    is_record: bool = False  # the bare name `record`


def _const(value: Any) -> _Node:
    return _Node(lambda v, r, _x=value: _x, True, value)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.record_fields: set[str] = set()

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Token | None = None) -> TransformSyntaxError:
        t = token or self.tok
        return TransformSyntaxError(message, t.pos, self.source)

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        t = self.tok
        if t.kind == kind and (text is None or t.text == text):
            self.i += 1
            return t
        return None

    def expect(self, kind: str, text: str, what: str) -> Token:
        t = self.accept(kind, text)
        if t is None:
            found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
            raise self.error(f"expected {what}, found {found}")
        return t

    # -- grammar
    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise self.error("empty expression")
        node = self.pipe()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}")
        return node

    def pipe(self) -> _Node:
        node = self.or_()
        while self.accept("op", "|"):
            name = self.tok
            if name.kind != "name":
                raise self.error("expected a function name after '|'")
            self.i += 1
            args = [node]
            if self.accept("op", "("):
                args += self.arguments()
            node = self.call(name, args)
        return node

    def or_(self) -> _Node:
        node = self.and_()
        while self.accept("keyword", "or"):
            left, right = node, self.and_()
            node = _Node(lambda v, r, a=left.fn, b=right.fn: a(v, r) or b(v, r))
        return node

    def and_(self) -> _Node:
        node = self.not_()
        while self.accept("keyword", "and"):
            left, right = node, self.not_()
            node = _Node(lambda v, r, a=left.fn, b=right.fn: a(v, r) and b(v, r))
        return node

    def not_(self) -> _Node:
        if self.accept("keyword", "not"):
            inner = self.not_()
            return _Node(lambda v, r, a=inner.fn: not a(v, r))
        return self.comparison()

    _COMPARE: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: _eq(a, b),
        "!=": lambda a, b: not _eq(a, b),
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }

    def comparison(self) -> _Node:
        node = self.additive()
        t = self.tok
        if t.kind == "op" and t.text in self._COMPARE:
            self.i += 1
            right = self.additive()
            op = self._COMPARE[t.text]
            return _Node(lambda v, r, a=node.fn, b=right.fn, o=op, s=t.text: _compare(o, s, a(v, r), b(v, r)))
        negate = False
        if t.kind == "keyword" and t.text == "not" and self.tokens[self.i + 1].text == "in":
            self.i += 1
            negate = True
        if self.accept("keyword", "in"):
            right = self.additive()
            return _Node(lambda v, r, a=node.fn, b=right.fn, n=negate: _contains(b(v, r), a(v, r)) != n)
        return node

    def additive(self) -> _Node:
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.tok.text
            self.i += 1
            right = self.term()
            node = _Node(lambda v, r, a=node.fn, b=right.fn, o=op: _arith(o, a(v, r), b(v, r)))
        return node

    def term(self) -> _Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op = self.tok.text
            self.i += 1
            right = self.unary()
            node = _Node(lambda v, r, a=node.fn, b=right.fn, o=op: _arith(o, a(v, r), b(v, r)))
        return node

    def unary(self) -> _Node:
        if self.accept("op", "-"):
            inner = self.unary()
            if inner.const and isinstance(inner.literal, (int, Decimal)):
                return _const(-inner.literal)
            return _Node(lambda v, r, a=inner.fn: _arith("-", Decimal(0), a(v, r)))
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        while True:
            if self.accept("op", "."):
                name = self.tok
                if name.kind not in ("name", "keyword"):
                    raise self.error("expected a field name after '.'")
                self.i += 1
                if node.is_record:
                    self.record_fields.add(name.text)
                node = _Node(lambda v, r, a=node.fn, k=name.text: _item(a(v, r), k))
            elif self.accept("op", "["):
                index = self.pipe()
                self.expect("op", "]", "']'")
                if node.is_record and index.const and isinstance(index.literal, str):
                    self.record_fields.add(index.literal)
                node = _Node(lambda v, r, a=node.fn, k=index.fn: _item(a(v, r), k(v, r)))
            else:
                return node

    def primary(self) -> _Node:
        t = self.tok
        if t.kind in ("number", "string"):
            self.i += 1
            return _const(t.value)
        if t.kind == "keyword" and t.text in ("true", "false", "null"):
            self.i += 1
            return _const({"true": True, "false": False, "null": None}[t.text])
        if self.accept("op", "("):
            node = self.pipe()
            self.expect("op", ")", "')'")
            return node
        if self.accept("op", "["):
            items: list[_Node] = []
            if not self.accept("op", "]"):
                items.append(self.pipe())
                while self.accept("op", ","):
                    items.append(self.pipe())
                self.expect("op", "]", "']' or ','")
            if all(n.const for n in items):
                return _const([n.literal for n in items])
            fns = [n.fn for n in items]
            return _Node(lambda v, r, f=fns: [x(v, r) for x in f])
        if t.kind == "name":
            self.i += 1
            if self.accept("op", "("):
                return self.call(t, self.arguments())
            if t.text == "value":
                return _Node(lambda v, r: v)
            if t.text == "record":
                return _Node(lambda v, r: r, is_record=True)
            hint = _suggest(t.text, [*NAMES, *FUNCTIONS])
            raise self.error(f"unknown name {t.text!r}{hint} (use value, record.<field> or a function call)", t)
        if t.kind == "end":
            raise self.error("unexpected end of expression")
        raise self.error(f"unexpected {t.text!r}")

    def arguments(self) -> list[_Node]:
        args: list[_Node] = []
        if self.accept("op", ")"):
            return args
        args.append(self.pipe())
        while self.accept("op", ","):
            args.append(self.pipe())
        self.expect("op", ")", "')' or ','")
        return args

    def call(self, name: Token, args: list[_Node]) -> _Node:
        spec = FUNCTIONS.get(name.text)
        if spec is None:
            raise self.error(f"unknown function {name.text!r}{_suggest(name.text, FUNCTIONS)}", name)
        n = len(args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            raise self.error(f"{name.text}() takes {_arity(spec)}, got {n} — usage: {spec.signature}", name)
        if spec.regex_arg is not None and n > spec.regex_arg and args[spec.regex_arg].const:
            pattern = args[spec.regex_arg].literal
            try:
                args[spec.regex_arg] = _const(re.compile(pattern))
            except (re.error, TypeError) as exc:
                raise self.error(f"bad regular expression {pattern!r} in {name.text}(): {exc}", name) from None
        if spec.tz_arg is not None and n > spec.tz_arg and args[spec.tz_arg].const:
            try:
                parse_timezone(args[spec.tz_arg].literal)
            except ValueError as exc:
                raise self.error(f"{name.text}(): {exc}", name) from None
        fns = [a.fn for a in args]
        label = name.text
        if label == "if":
            cond, then = fns[0], fns[1]
            other = fns[2] if n == 3 else (lambda v, r: None)
            return _Node(lambda v, r: then(v, r) if cond(v, r) else other(v, r))
        impl = spec.impl
        if n == 1:
            (a,) = fns
            return _Node(lambda v, r: _apply(label, impl, a(v, r)))
        return _Node(lambda v, r: _apply(label, impl, *[f(v, r) for f in fns]))


def _apply(label: str, impl: Callable[..., Any], *args: Any) -> Any:
    try:
        return impl(*args)
    except TransformError:
        raise
    except (TypeError, ValueError, ArithmeticError, OverflowError) as exc:
        shown = ", ".join(repr(a) for a in args)
        raise TransformError(f"{label}({shown}) failed: {exc}") from None


def _arity(spec: Function) -> str:
    if spec.max_args is None:
        return f"at least {spec.min_args} argument{'s' if spec.min_args != 1 else ''}"
    if spec.min_args == spec.max_args:
        return f"{spec.min_args} argument{'s' if spec.min_args != 1 else ''}"
    return f"{spec.min_args} to {spec.max_args} arguments"


def _suggest(word: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, (int, Decimal)) and isinstance(b, str) or isinstance(b, (int, Decimal)) and isinstance(a, str):
        return False
    return a == b


def _compare(op: Callable[[Any, Any], bool], symbol: str, a: Any, b: Any) -> bool:
    try:
        return op(a, b)
    except TypeError:
        raise TransformError(f"cannot compare {a!r} {symbol} {b!r}") from None


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        return item is not None and _text(item) in container
    try:
        return item in container
    except TypeError:
        raise TransformError(f"cannot test membership in {container!r}") from None


def _arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if isinstance(a, (date, datetime)) or isinstance(b, (date, datetime)):
        raise TransformError(f"use add_days()/days_between() for date arithmetic, not {a!r} {op} {b!r}")
    try:
        x, y = to_decimal(a), to_decimal(b)
    except ConversionError:
        raise TransformError(f"cannot compute {a!r} {op} {b!r}") from None
    try:
        if op == "+":
            result = x + y
        elif op == "-":
            result = x - y
        elif op == "*":
            result = x * y
        else:
            result = x / y
    except (InvalidOperation, ArithmeticError) as exc:
        raise TransformError(f"cannot compute {a!r} {op} {b!r}: {exc.__class__.__name__}") from None
    if isinstance(a, int) and isinstance(b, int) and op != "/":
        return int(result)
    return result


def _item(container: Any, key: Any) -> Any:
    if container is None:
        return None
    if isinstance(container, dict):
        if key in container:
            return container[key]
        return container.get(str(key)) if not isinstance(key, str) else None
    if isinstance(container, (list, tuple, str)) and isinstance(key, int) and not isinstance(key, bool):
        return container[key] if -len(container) <= key < len(container) else None
    return None


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transform:
    """A compiled transform. Call it with the field's value and the whole record."""

    source: str
    _fn: Evaluator
    #: Fields read through `record.<name>` (so pulls can request them).
    record_fields: frozenset[str] = frozenset()

    def __call__(self, value: Any, record: Any = None) -> Any:
        try:
            return self._fn(value, record)
        except TransformError:
            raise
        except RecursionError:
            raise TransformError("transform nested too deeply") from None


def compile_transform(spec: str | Sequence[Any]) -> Transform:
    """Compile an expression (``str``) or a pipeline of named steps (``list``).

    Raises :class:`TransformSyntaxError` with the position of the problem.
    """
    if isinstance(spec, (list, tuple)):
        spec = pipeline_source(spec)
    if isinstance(spec, str):
        if len(spec) > 4000:
            raise TransformSyntaxError("expression longer than 4000 characters")
        parser = _Parser(spec)
        node = parser.parse()
        return Transform(spec, node.fn, frozenset(parser.record_fields))
    raise TransformSyntaxError(f"a transform is an expression (text) or a list of steps, not {type(spec).__name__}")


def pipeline_source(steps: Sequence[Any]) -> str:
    """``[trim, {regex_replace: ['\\s+', ' ']}]`` → ``value | trim | regex_replace('\\s+', ' ')``."""
    if not steps:
        raise TransformSyntaxError("a pipeline needs at least one step")
    parts = ["value"]
    for i, step in enumerate(steps):
        if isinstance(step, str):
            name, args = step.strip(), []
        elif isinstance(step, dict) and len(step) == 1:
            ((name, raw),) = step.items()
            args = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        else:
            raise TransformSyntaxError(f"step {i + 1}: expected a function name or {{function: [arguments]}}, got {step!r}")
        if not re.fullmatch(r"[A-Za-z_]\w*", str(name)):
            raise TransformSyntaxError(f"step {i + 1}: {name!r} is not a function name")
        if name not in FUNCTIONS:
            raise TransformSyntaxError(f"step {i + 1}: unknown function {name!r}{_suggest(str(name), FUNCTIONS)}")
        rendered = ", ".join(_literal(a, i) for a in args)
        parts.append(f"{name}({rendered})" if args else name)
    return " | ".join(parts)


def _literal(value: Any, step: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        return format(Decimal(repr(value)) if isinstance(value, float) else value, "f")
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, (date, datetime)):
        return f"'{value.isoformat()}'"
    raise TransformSyntaxError(f"step {step + 1}: argument {value!r} must be text, a number, true/false or null")
