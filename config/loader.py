"""Load a configuration file: YAML → interpolation → schema → cross-references.

Every problem is collected and reported as ``FILE:LINE:COL: key.path: message``
(:class:`config.errors.ConfigError`); nothing here prints a traceback for a
user's mistake.
"""
from __future__ import annotations

import types
import typing
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from connectors import registry

from . import checks
from .errors import ConfigError, ConfigIssue, LocatedIssue, Path
from .schema import CrmsyncConfig, SystemConfig
from .suggest import did_you_mean, unknown
from .yaml_source import Interpolator, Position, load_yaml


def load_config(path: str | FsPath, *, environ: dict[str, str] | None = None) -> CrmsyncConfig:
    """Read and validate ``path``. Raises :class:`ConfigError` listing every problem."""
    file = FsPath(path)
    name = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([LocatedIssue(name, 1, 1, (), "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([LocatedIssue(name, 1, 1, (), f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigError([LocatedIssue(name, 1, 1, (), f"cannot read: {exc.strerror or exc}")]) from None
    return parse_config(text, name, environ=environ, base_dir=file.parent)


def parse_config(
    text: str, filename: str = "<config>", *, environ: dict[str, str] | None = None, base_dir: FsPath | None = None
) -> CrmsyncConfig:
    try:
        data, source, raw_issues = load_yaml(text, Interpolator(environ, base_dir))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax error: {exc.problem or exc}"
        if exc.context:
            message += f" ({exc.context})"
        raise ConfigError([LocatedIssue(filename, line, col, (), message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([LocatedIssue(filename, 1, 1, (), f"YAML error: {exc}")]) from None

    located: list[LocatedIssue] = []

    def add(issue: ConfigIssue, position: Position | None = None, *, prefer_key: bool | None = None) -> None:
        pos = position or source.locate(issue.path, prefer_key=prefer_key)
        located.append(LocatedIssue(filename, pos.line, pos.column, issue.path, issue.message))

    for issue, position in raw_issues:
        add(issue, position, prefer_key=False)
    # A value the YAML layer already complained about (unset variable, circular alias, bad key)
    # would only fail again, less clearly, in the schema: one message per mistake.
    raw_paths = {issue.path for issue, _ in raw_issues}

    def explained(path: Path) -> bool:
        return any(path[: len(p)] == p for p in raw_paths if p)

    if () in raw_paths:  # the whole file is unusable (alias bomb)
        raise ConfigError(located)

    if data is None:
        add(ConfigIssue((), "the file is empty: expected at least a 'systems' section"))
        raise ConfigError(located)
    if not isinstance(data, dict):
        add(ConfigIssue((), f"expected a mapping of sections at the top level, found {_kind(data)}"))
        raise ConfigError(located)

    data = dict(data)
    systems_raw = data.get("systems")
    if isinstance(systems_raw, dict):
        data["systems"] = {
            name: _validate_system(name, value, add, explained) for name, value in systems_raw.items()
        }

    try:
        config = CrmsyncConfig.model_validate(data)
    except ValidationError as exc:
        for issue, prefer_key in _pydantic_issues(exc, data, CrmsyncConfig):
            if not explained(issue.path):
                add(issue, prefer_key=prefer_key)
        raise ConfigError(located) from None

    for issue in checks.check_config(config, base_dir=base_dir or FsPath.cwd()):
        # A problem with a key's own name ("unknown field 'nmae'") points at the key.
        names_key = bool(issue.path) and f"'{issue.path[-1]}'" in issue.message
        add(issue, prefer_key=True if names_key else None)
    if located:
        raise ConfigError(located)
    return config


def _validate_system(name: str, value: Any, add, explained=lambda _path: False) -> Any:
    path: Path = ("systems", name)
    if explained(path):
        return SystemConfig(type="?")
    if not isinstance(value, dict):
        add(ConfigIssue(path, f"expected a mapping with a 'type' key, found {_kind(value)}"))
        return SystemConfig(type="?")
    settings = dict(value)
    type_name = settings.pop("type", None)
    known = registry.plugins()
    if type_name is None:
        add(ConfigIssue(path, f"missing key 'type' (one of: {', '.join(sorted(known))})"), prefer_key=True)
        return SystemConfig(type="?")
    if not isinstance(type_name, str):
        add(ConfigIssue((*path, "type"), f"expected a system type name ({', '.join(sorted(known))}), found {_kind(type_name)}"))
        return SystemConfig(type="?")
    if type_name not in known:
        add(ConfigIssue((*path, "type"), unknown("system type", type_name, known)))
        return SystemConfig(type=str(type_name))
    model = known[type_name].settings_model
    # A setting already reported (an unset variable) makes the system's own cross-field checks fail
    # too ("auth 'password' needs password"): one message per mistake, the precise one.
    reported = any(explained((*path, key)) for key in settings)
    try:
        validated = model.model_validate(settings)
    except ValidationError as exc:
        for issue, prefer_key in _pydantic_issues(exc, settings, model):
            if explained((*path, *issue.path)) or (reported and not issue.path):
                continue
            add(ConfigIssue((*path, *issue.path), issue.message), prefer_key=prefer_key)
        return SystemConfig(type=type_name)
    for field_name, info in model.model_fields.items():
        # `${ZOHO_CLIENT_SECRET:-}` with the variable unset gives an empty credential that could only
        # fail later, at the first login, far from the line to fix.
        value = getattr(validated, field_name, None)
        empty = isinstance(value, SecretStr) and not value.get_secret_value().strip()
        if info.is_required() and empty and not explained((*path, field_name)):
            add(ConfigIssue((*path, field_name), f"{field_name} is empty"), prefer_key=False)
    return SystemConfig(type=type_name, settings=validated)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false",
            type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _clean_loc(loc: tuple, data: Any) -> tuple[Path, bool]:
    """Drop pydantic's union-member tags from ``loc``; say whether the path exists in the data."""
    node = data
    clean: list[str | int] = []
    exists = True
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            clean.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            clean.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str) and not _is_union_tag(part):
            clean.append(part)
            exists = False
        # else: a union tag such as 'SourceOfTruth' or "literal['manual']": not a key of the file
    return tuple(clean), exists


#: Tags pydantic gives the plain-type members of a union (``str | int | bool``).
_TYPE_TAGS = {"str", "int", "bool", "float", "none", "bytes", "decimal"}


def _is_union_tag(part: str) -> bool:
    return part[:1].isupper() or "[" in part or "(" in part or part in _TYPE_TAGS


#: What each pydantic type error expected, in words (for a value no union member accepts).
_EXPECTED = {
    "string_type": "text", "int_type": "a whole number", "int_parsing": "a whole number",
    "bool_type": "true/false", "bool_parsing": "true/false", "float_type": "a number", "float_parsing": "a number",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _model_at(model: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for 'did you mean')."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        containers = [m for m in members if typing.get_origin(m) in (dict, list)]
        return (models or containers or members or [annotation])[0]
    if origin is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _best_errors(exc: ValidationError, data: Any) -> list[tuple[dict, Path, bool]]:
    """One error per place. For a union (``latest_wins | {source_of_truth: …}``) pydantic
    reports every member's complaint; keep the one that matches what was written: the
    literal's for a scalar, the model's for a mapping."""
    grouped: dict[Path, list[tuple[dict, bool]]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        path, exists = _clean_loc(error["loc"], data)
        grouped.setdefault(path, []).append((error, exists))
    chosen = []
    for path, errors in grouped.items():
        is_mapping = isinstance(_value_at(data, path), dict)

        def rank(item: tuple[dict, bool]) -> int:
            kind = item[0]["type"]
            if kind in ("model_type", "dict_type", "model_attributes_type"):
                return 9
            if kind in ("literal_error", "enum"):
                return 5 if is_mapping else 0
            return 1

        error, exists = min(errors, key=rank)
        kinds = {e["type"] for e, _ in errors}
        if len(errors) > 1 and kinds <= set(_EXPECTED):
            # No member of a union took the value: say what would have been accepted.
            wanted = list(dict.fromkeys(_EXPECTED[k] for k in sorted(kinds, key=list(_EXPECTED).index)))
            words = ", ".join(wanted[:-1]) + " or " + wanted[-1] if len(wanted) > 1 else wanted[0]
            error = {**error, "type": "union_type", "msg": f"expected {words}, found {_kind(_value_at(data, path))}"}
        chosen.append((error, path, exists))
    # A mapping written where a union allows a keyword or a mapping (`{source_of_truth: x, bogus: 1}`):
    # the mapping's own errors below it explain the problem; "is not one of the keywords" does not.
    deeper = {path[:i] for _, path, _ in chosen for i in range(len(path))}
    return [
        (error, path, exists)
        for error, path, exists in chosen
        if not (error["type"] in ("literal_error", "enum") and path in deeper and isinstance(_value_at(data, path), dict))
    ]


def _pydantic_issues(exc: ValidationError, data: Any, model: type[BaseModel]) -> list[tuple[ConfigIssue, bool | None]]:
    out: list[tuple[ConfigIssue, bool | None]] = []
    for error, path, exists in _best_errors(exc, data):
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "extra_forbidden":
            parent = _model_at(model, path[:-1])
            allowed = list(parent.model_fields) if parent else []
            message = f"unknown key {path[-1]!r}" + did_you_mean(str(path[-1]), allowed)
            out.append((ConfigIssue(path, message), True))
        elif kind == "missing":
            out.append((ConfigIssue(path, f"required key {path[-1]!r} is missing"), True))
        elif kind in ("literal_error", "enum"):
            got = _value_at(data, path)
            expected = ctx.get("expected", "")
            options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()]
            message = f"{got!r} is not allowed: expected {expected}" + did_you_mean(str(got), options)
            out.append((ConfigIssue(path, message), False))
        else:
            message = error["msg"]
            if kind in ("model_type", "dict_type", "model_attributes_type"):
                # "…or instance of ServerConfig" names a class the user never wrote.
                message = f"expected a mapping, found {_kind(_value_at(data, path))}"
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            if message.startswith("Assertion failed, "):
                message = message[len("Assertion failed, ") :]
            out.append((ConfigIssue(path, message[:1].lower() + message[1:] if message else kind), None))
    return _drop_missing_explained_by_typos(out)


def _drop_missing_explained_by_typos(issues: list[tuple[ConfigIssue, bool | None]]) -> list[tuple[ConfigIssue, bool | None]]:
    """'unknown key sytems; did you mean systems?' already says why 'systems' is missing."""
    suggested = set()
    for issue, _ in issues:
        if "; did you mean " in issue.message and issue.message.startswith("unknown key"):
            suggested.add((*issue.path[:-1], issue.message.rsplit("'", 2)[-2]))
    return [
        (issue, key)
        for issue, key in issues
        if not (issue.message.startswith("required key") and issue.path in suggested)
    ]


def _value_at(data: Any, path: Path) -> Any:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
