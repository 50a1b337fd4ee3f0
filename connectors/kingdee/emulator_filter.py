"""The emulator's reading of ExecuteBillQuery ``FilterString`` / ``OrderString``.

Real K/3 Cloud turns the filter into SQL; clients write it as a SQL-like
condition (``FNumber = 'C001' and FModifyDate >= '2024-01-01 00:00:00'``,
``{ts'…'}`` literals, ``IN (…)``, ``LIKE``, ``IS NULL``, ``and``/``or``/``not``,
parentheses). This module parses that subset into a predicate over rows; field
keys are resolved (case-insensitively) by the store, which also decides how
values compare (dates as dates, text case-insensitively like the ERP's
``Chinese_PRC_CI_AS`` collation).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class FilterSyntaxError(ValueError):
    """The filter is not valid; the message reads like the SQL Server error the ERP would relay."""


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any  # str | float | None
    timestamp: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class InList:
    field: str
    values: tuple[Literal, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Like:
    field: str
    pattern: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    field: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    field: str
    low: Literal
    high: Literal


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and | or
    parts: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Any


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<ts>\{\s*(?:ts|d|t)\s*'(?:[^']|'')*'\s*\})
      | (?P<str>N?'(?:[^']|'')*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><>|!=|>=|<=|=|>|<)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_\u4e00-\u9fff][\w.\u4e00-\u9fff]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "like", "is", "null", "between"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            snippet = text[pos:pos + 10].strip()
            raise FilterSyntaxError(f"'{snippet}' 附近有语法错误。")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "word" and value.lower() in _KEYWORDS:
            kind = value.lower()
        out.append((kind, value))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterSyntaxError("过滤条件不完整：语句意外结束。")
        if kind is not None and token[0] != kind:
            raise FilterSyntaxError(f"'{token[1]}' 附近有语法错误。")
        self.i += 1
        return token

    def parse(self) -> Any:
        node = self.or_expr()
        if self.peek() is not None:
            raise FilterSyntaxError(f"'{self.peek()[1]}' 附近有语法错误。")
        return node

    def or_expr(self) -> Any:
        parts = [self.and_expr()]
        while self.peek() and self.peek()[0] == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Any:
        parts = [self.not_expr()]
        while self.peek() and self.peek()[0] == "and":
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_expr(self) -> Any:
        if self.peek() and self.peek()[0] == "not":
            self.take()
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Any:
        token = self.peek()
        if token and token[1] == "(":
            self.take()
            node = self.or_expr()
            self.expect(")")
            return node
        field = self.take("word")[1]
        token = self.peek()
        if token is None:
            raise FilterSyntaxError(f"'{field}' 附近有语法错误。")
        kind, value = token
        if kind == "op":
            self.take()
            return Compare(field, "<>" if value == "!=" else value, self.literal())
        negate = False
        if kind == "not":
            self.take()
            negate = True
            kind, value = self.peek() or ("", "")
        if kind == "in":
            self.take()
            self.expect("(")
            values = [self.literal()]
            while self.peek() and self.peek()[1] == ",":
                self.take()
                values.append(self.literal())
            self.expect(")")
            return InList(field, tuple(values), negate)
        if kind == "like":
            self.take()
            pattern = self.literal()
            return Like(field, str(pattern.value), negate)
        if kind == "between" and not negate:
            self.take()
            low = self.literal()
            self.take("and")
            return Between(field, low, self.literal())
        if kind == "is" and not negate:
            self.take()
            is_not = False
            if self.peek() and self.peek()[0] == "not":
                self.take()
                is_not = True
            self.take("null")
            return IsNull(field, is_not)
        raise FilterSyntaxError(f"'{value or field}' 附近有语法错误。")

    def expect(self, symbol: str) -> None:
        token = self.peek()
        if token is None or token[1] != symbol:
            raise FilterSyntaxError(f"'{token[1] if token else symbol}' 附近有语法错误。")
        self.i += 1

    def literal(self) -> Literal:
        kind, value = self.take()
        if kind == "str":
            body = value[1:] if value.startswith("N") else value
            return Literal(body[1:-1].replace("''", "'"))
        if kind == "num":
            return Literal(float(value))
        if kind == "ts":
            inner = value[value.index("'") + 1:value.rindex("'")]
            return Literal(inner.replace("''", "'"), timestamp=True)
        if kind == "null":
            return Literal(None)
        raise FilterSyntaxError(f"'{value}' 附近有语法错误。")


def parse_filter(text: str) -> Any | None:
    if not text or not text.strip():
        return None
    return _Parser(text).parse()


def fields_of(node: Any) -> list[str]:
    if node is None:
        return []
    if isinstance(node, BoolOp):
        return [f for part in node.parts for f in fields_of(part)]
    if isinstance(node, Not):
        return fields_of(node.part)
    return [node.field]


def like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def parse_order(text: str) -> list[tuple[str, bool]]:
    """``"FModifyDate ASC,FCUSTID DESC"`` -> [(key, descending)]."""
    out: list[tuple[str, bool]] = []
    for part in (text or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise FilterSyntaxError(f"'{part.strip()}' 附近有语法错误。")
        out.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return out


Predicate = Callable[[Any], bool]
