"""Mapping tests: prove a mapping right with examples before a single record moves.

Each example (``tests:`` beside a system's mapping, or a ``tests_file:``) gives a
record as that system returns it, the canonical values it must become, and the
payload each target system must receive::

    tests:
      - name: 华为 from Fxiaoke
        input: {_id: 65f0a1…, name: 深圳市华为技术有限公司, industry_level1: "2", owner: ["1001"]}
        references: {partner: {ptn-hengtong: {fxiaoke: 65f0b2…, zoho: "3652397000000412001"}}}
        canonical: {name: 深圳市华为技术有限公司, industry: technology, owner: wang.wei@example.cn}
        expect:
          zoho: {Account_Name: 深圳市华为技术有限公司, Industry: Technology, Owner: {id: "3652397000000186017"}}

:func:`run_mapping_tests` returns structured results with a readable diff per failure.
Canonical values compare by meaning (1.50 == 1.5, dates as ISO text); payloads compare
strictly by type except that numbers compare by value and dates by ISO text — Fxiaoke
wants ``"1234.50"`` (text) and the test says so.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.errors import ConfigError, ConfigIssue, LocatedIssue, format_path
from config.suggest import unknown
from config.mapping_schema import EntitySpec, MappingTestCase, MappingTestFile, ValueMapSpec
from config.yaml_source import Interpolator, Position, SourceMap, load_yaml

from .canonical import _normal, entity_info
from .compiler import MappingSet, compile_mappings
from .errors import MappingError
from .mapper import TO_CANONICAL, Mapper
from .references import StaticResolver, UnresolvedReference


class TestFileError(ValueError):
    """A tests_file cannot be read or does not validate (message has FILE:LINE:COL)."""

    __test__ = False  # not a pytest class


# ---------------------------------------------------------------------------
# Loading test files
# ---------------------------------------------------------------------------


def _load_yaml_file(path: FsPath) -> tuple[Any, SourceMap]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TestFileError(f"tests file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TestFileError(f"cannot read tests file {path}: {exc}") from None
    try:
        data, source, problems = load_yaml(text, Interpolator({}, path.parent))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise TestFileError(f"{where}: YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise TestFileError(f"{path}: YAML error: {exc}") from None
    for issue, position in problems:
        pos = position or source.locate(issue.path)
        raise TestFileError(f"{path}:{pos.line}:{pos.column}: {format_path(issue.path)}: {issue.message}")
    return data, source


def load_tests_file(path: str | FsPath) -> list[MappingTestCase]:
    """The cases of a tests file (a ``tests:`` list, or a bare list)."""
    cases, _ = _load_tests_file_located(FsPath(path))
    return cases


def _load_tests_file_located(path: FsPath) -> tuple[list[MappingTestCase], list[Position]]:
    data, source = _load_yaml_file(path)
    wrapped = {"tests": data} if isinstance(data, list) else data
    try:
        parsed = MappingTestFile.model_validate(wrapped)
    except ValidationError as exc:
        messages = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"]) if isinstance(data, dict) else tuple(error["loc"])[1:]
            pos = source.locate(loc)
            messages.append(f"{path}:{pos.line}:{pos.column}: {format_path(loc)}: {error['msg']}")
        raise TestFileError("; ".join(messages)) from None
    prefix: tuple = ("tests",) if isinstance(data, dict) else ()
    positions = [source.locate((*prefix, i)) for i in range(len(parsed.tests))]
    return parsed.tests, positions


# ---------------------------------------------------------------------------
# A config with just the mapping sections (when the full loader is not wanted)
# ---------------------------------------------------------------------------


class _SystemRef(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(description="Plugin type.")


class MappingConfig(BaseModel):
    """The part of the configuration the mapping layer reads. Other sections are ignored."""

    model_config = ConfigDict(extra="ignore")

    systems: dict[str, _SystemRef] = Field(default_factory=dict)
    value_maps: dict[str, ValueMapSpec] = Field(default_factory=dict)
    entities: dict[str, EntitySpec] = Field(default_factory=dict)


def load_mapping_config(path: str | FsPath, *, systems: Mapping[str, str] | None = None) -> MappingConfig:
    """Read only ``systems`` (their types), ``value_maps`` and ``entities`` of a config file.

    For tools and tests that must not need connector plugins or credentials. ``systems``
    (name → type) fills in systems the file does not define. Raises
    :class:`config.errors.ConfigError` with located issues, like the full loader.
    """
    file = FsPath(path)
    try:
        data, source = _load_yaml_file(file)
    except TestFileError as exc:
        raise ConfigError([LocatedIssue(str(path), 1, 1, (), str(exc))]) from None
    data = dict(data or {})
    merged = {name: {"type": t} for name, t in (systems or {}).items()}
    for name, value in (data.get("systems") or {}).items():
        merged[name] = {"type": value.get("type", "?")} if isinstance(value, dict) else value
    data["systems"] = merged
    try:
        config = MappingConfig.model_validate(data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p[:1].isupper()))
            pos = source.locate(loc)
            issues.append(LocatedIssue(str(path), pos.line, pos.column, loc, error["msg"]))
        raise ConfigError(issues) from None
    problems = compile_mappings(config, base_dir=file.parent).issues
    for entity, spec in config.entities.items():
        for system in spec.systems:
            if system not in config.systems:
                where = ("entities", entity, "systems", system)
                problems.append(ConfigIssue(where, unknown("system", system, config.systems)))
    if problems:
        raise ConfigError([_locate(str(path), source, issue) for issue in problems])
    return config


def _locate(filename: str, source: SourceMap, issue: ConfigIssue) -> LocatedIssue:
    pos = source.locate(issue.path)
    return LocatedIssue(filename, pos.line, pos.column, issue.path, issue.message)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class Difference:
    path: str  # 'industry', 'lines[0].quantity', 'Owner.id'
    kind: str  # changed | missing | unexpected
    expected: Any = None
    actual: Any = None

    def describe(self) -> str:
        if self.kind == "missing":
            return f"{self.path}: missing (expected {_show(self.expected)})"
        if self.kind == "unexpected":
            return f"{self.path}: unexpected {_show(self.actual)} (not in the expected values)"
        return f"{self.path}: expected {_show(self.expected)}, got {_show(self.actual)}"


@dataclass(slots=True)
class StepResult:
    step: str  # 'canonical' or a target system name
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.differences and self.error is None


@dataclass(slots=True)
class CaseResult:
    entity: str
    system: str
    name: str
    location: str  # 'file:line' of the case
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None  # a problem of the case itself (unexpected failure, wrong expected error)

    @property
    def passed(self) -> bool:
        return self.error is None and all(s.ok for s in self.steps)

    def diff_text(self) -> str:
        lines = []
        if self.error:
            lines.append(f"  {self.error}")
        for step in self.steps:
            if step.ok:
                continue
            title = "canonical values" if step.step == "canonical" else f"{step.step} payload"
            lines.append(f"  {title}:")
            if step.error:
                lines.append(f"    {step.error}")
            lines.extend(f"    {d.describe()}" for d in step.differences)
        return "\n".join(lines)


@dataclass(slots=True)
class TestReport:
    results: list[CaseResult] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)

    __test__ = False

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        return not self.issues and self.failed == 0 and bool(self.results)

    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float, Decimal)):
        return f"{value} (number)"
    return repr(value)


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------


def _canonical_expected(spec_type: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        return TO_CANONICAL[spec_type](value) if spec_type not in ("records", "text") else value
    except (ValueError, TypeError, ArithmeticError):
        return value


def compare_canonical(entity_model: str, expected: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "") -> list[Difference]:
    """Fields left out of ``expected`` must be null or absent in ``actual``."""
    fields = entity_info(entity_model).fields
    diffs: list[Difference] = []
    for key in sorted(set(expected) | set(actual), key=lambda k: (k not in fields, list(fields).index(k) if k in fields else 0, k)):
        spec = fields.get(key)
        path = f"{prefix}{key}"
        exp = expected.get(key)
        act = actual.get(key)
        if spec is not None and spec.type == "records" and isinstance(exp, list) and isinstance(act, list):
            item_model = spec.item_entity or ""
            for i in range(max(len(exp), len(act))):
                if i >= len(act):
                    diffs.append(Difference(f"{path}[{i}]", "missing", exp[i]))
                elif i >= len(exp):
                    diffs.append(Difference(f"{path}[{i}]", "unexpected", actual=act[i]))
                else:
                    diffs.extend(compare_canonical(item_model, exp[i] or {}, act[i] or {}, f"{path}[{i}]."))
            continue
        exp_form = _canonical_expected(spec.type, exp) if spec is not None else exp
        if _normal(exp_form, spec) == _normal(act, spec):
            continue
        if exp is None:
            diffs.append(Difference(path, "unexpected", actual=act))
        elif key not in actual:
            diffs.append(Difference(path, "missing", exp))
        else:
            diffs.append(Difference(path, "changed", exp_form, act))
    return diffs


def _payload_form(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return ("number", number.normalize() if number else Decimal(0))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def compare_payload(expected: Any, actual: Any, path: str = "") -> list[Difference]:
    """Strict by type (text is not a number) except numbers by value and dates by ISO text."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        diffs = []
        for key in list(expected) + [k for k in actual if k not in expected]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                diffs.append(Difference(sub, "missing", expected[key]))
            elif key not in expected:
                diffs.append(Difference(sub, "unexpected", actual=actual[key]))
            else:
                diffs.extend(compare_payload(expected[key], actual[key], sub))
        return diffs
    if isinstance(expected, list) and isinstance(actual, list):
        diffs = []
        for i in range(max(len(expected), len(actual))):
            sub = f"{path}[{i}]"
            if i >= len(actual):
                diffs.append(Difference(sub, "missing", expected[i]))
            elif i >= len(expected):
                diffs.append(Difference(sub, "unexpected", actual=actual[i]))
            else:
                diffs.extend(compare_payload(expected[i], actual[i], sub))
        return diffs
    if _payload_form(expected) == _payload_form(actual) and isinstance(expected, bool) == isinstance(actual, bool):
        return []
    return [Difference(path or "(payload)", "changed", expected, actual)]


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def run_case(mappings: MappingSet, entity: str, system: str, case: MappingTestCase, location: str = "") -> CaseResult:
    """Run one example: input → canonical (compared) → each expected system payload (compared)."""
    result = CaseResult(entity, system, case.name, location)
    resolver = StaticResolver(case.references)
    model = mappings.models[entity]
    source = mappings.mapper(entity, system)
    try:
        canonical = source.to_canonical(case.input, resolver)
        step = StepResult("canonical")
        if case.canonical is not None:
            step.differences = compare_canonical(model, case.canonical, canonical)
        result.steps.append(step)
        for target, expected in case.expect.items():
            mapper: Mapper = mappings.mapper(entity, target)
            fields = set(case.fields) if case.fields is not None else None
            payload = mapper.to_system(canonical, resolver, fields)
            result.steps.append(StepResult(target, compare_payload(expected, payload)))
    except (MappingError, UnresolvedReference) as exc:
        if case.error is None:
            result.error = f"mapping failed: {exc}"
        else:
            result.steps = [s for s in result.steps if s.step == "canonical" and s.ok]
            result.error = _check_expected_error(case, exc)
        return result
    if case.error is not None:
        result.error = f"expected the mapping to fail with {case.error.code}, but it succeeded"
    return result


def _check_expected_error(case: MappingTestCase, exc: Exception) -> str | None:
    want = case.error
    assert want is not None
    if isinstance(exc, UnresolvedReference):
        code, field_name, entity, message = "unresolved_reference", None, exc.entity, str(exc)
        field_name = exc.missing[0].field if exc.missing else None
    else:
        assert isinstance(exc, MappingError)
        code, field_name, entity, message = exc.code, exc.field, None, exc.message
    problems = []
    if want.code != code:
        problems.append(f"code {code!r} instead of {want.code!r}")
    if want.field is not None and want.field != field_name:
        problems.append(f"field {field_name!r} instead of {want.field!r}")
    if want.entity is not None and want.entity != entity:
        problems.append(f"entity {entity!r} instead of {want.entity!r}")
    if want.message_contains is not None and want.message_contains not in message:
        problems.append(f"message without {want.message_contains!r}")
    if problems:
        return f"failed differently than expected ({'; '.join(problems)}): {exc}"
    return None


def run_mapping_tests(
    config: Any,
    config_path: str | FsPath | None = None,
    *,
    entity: str | None = None,
    system: str | None = None,
) -> TestReport:
    """Run every mapping test of ``config`` (optionally one entity / source system)."""
    base_dir = FsPath(config_path).parent if config_path is not None else None
    compiled = compile_mappings(config, base_dir=base_dir)
    report = TestReport(issues=compiled.issues)
    if compiled.issues:
        return report
    mappings = compiled.mappings
    source = _source_map(FsPath(config_path)) if config_path is not None else None
    for entity_name, spec in config.entities.items():
        if entity is not None and entity_name != entity:
            continue
        for system_name, sm in spec.systems.items():
            if system is not None and system_name != system:
                continue
            if (entity_name, system_name) not in mappings.mappers:
                continue
            cases: list[tuple[MappingTestCase, str]] = []
            for i, case in enumerate(sm.tests):
                path = ("entities", entity_name, "systems", system_name, "tests", i)
                where = f"{config_path}:{source.locate(path).line}" if source else format_path(path)
                cases.append((case, where))
            if sm.tests_file is not None and base_dir is not None:
                file = base_dir / sm.tests_file
                file_cases, positions = _load_tests_file_located(file)
                cases.extend((c, f"{file}:{p.line}") for c, p in zip(file_cases, positions, strict=True))
            for case, where in cases:
                report.results.append(run_case(mappings, entity_name, system_name, case, where))
    return report


def _source_map(path: FsPath) -> SourceMap | None:
    try:
        _, source = _load_yaml_file(path)
    except TestFileError:
        return None
    return source


def tested_pairs(config: Any) -> Iterable[tuple[str, str]]:
    """(entity, system) pairs that have at least one test (inline or file)."""
    for entity_name, spec in config.entities.items():
        for system_name, sm in spec.systems.items():
            if sm.tests or sm.tests_file:
                yield entity_name, system_name


__all__ = [
    "CaseResult",
    "Difference",
    "MappingConfig",
    "StepResult",
    "TestFileError",
    "TestReport",
    "compare_canonical",
    "compare_payload",
    "load_mapping_config",
    "load_tests_file",
    "run_case",
    "run_mapping_tests",
]
