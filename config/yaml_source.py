"""YAML parsing that remembers where every key and value came from.

PyYAML's composer gives nodes with marks; we build plain Python data from them
ourselves so that (a) every key path maps to a line and column, (b) duplicate
keys are an error instead of silently keeping the last one, and (c) ``${VAR}``
interpolation happens per scalar with the path known for error messages.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import yaml

from .errors import ConfigIssue, Path


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class SourceMap:
    """Where each key path sits in the file: the key itself, and its value."""

    keys: dict[Path, Position] = field(default_factory=dict)
    values: dict[Path, Position] = field(default_factory=dict)
    containers: set[Path] = field(default_factory=set)

    def locate(self, path: Path, *, prefer_key: bool | None = None) -> Position:
        """Position of ``path``, or of its nearest ancestor that exists in the file.

        By default a problem with a mapping or list points at its key (the line
        that names it) and a problem with a scalar points at the value itself.
        """
        probe = tuple(path)
        if prefer_key is None:
            prefer_key = probe in self.containers or probe not in self.values
        while probe:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if probe in first:
                return first[probe]
            if probe in second:
                return second[probe]
            probe = probe[:-1]
        return self.values.get((), Position(1, 1))


# The last alternative is a "${" never closed: an error, not literal text that would
# silently become (part of) a password.
_VAR = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Interpolator:
    """``${VAR}``, ``${VAR:-default}``, ``${file:/path/to/secret}``; ``$$`` is a literal ``$``.

    Values are never echoed in errors: a secret may be the thing that is wrong.
    """

    def __init__(self, environ: dict[str, str] | None = None, base_dir: FsPath | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.base_dir = base_dir or FsPath.cwd()

    def __call__(self, text: str, path: Path, issues: list[ConfigIssue]) -> str:
        if "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            if match.group(1) is None:
                issues.append(ConfigIssue(path, "unclosed variable reference: '${' without '}' (write $$ for a literal $)"))
                return ""
            expr = match.group(1).strip()
            if expr.startswith("file:"):
                return self._read_file(expr[5:].strip(), path, issues)
            name, sep, default = expr.partition(":-")
            name = name.strip()
            if not _NAME.match(name):
                issues.append(ConfigIssue(path, f"bad variable reference ${{{expr}}}: expected ${{NAME}} or ${{NAME:-default}}"))
                return ""
            value = self.environ.get(name)
            if value is None or (sep and value == ""):
                if sep:
                    return default
                issues.append(ConfigIssue(path, f"environment variable {name} is not set"))
                return ""
            return value

        return _VAR.sub(replace, text)

    def _read_file(self, file_path: str, path: Path, issues: list[ConfigIssue]) -> str:
        target = FsPath(file_path)
        if not target.is_absolute():
            target = self.base_dir / target
        try:
            return target.read_text(encoding="utf-8").strip()
        except OSError as exc:
            issues.append(ConfigIssue(path, f"cannot read secret file {file_path}: {exc.strerror or exc}"))
            return ""


#: A real configuration has a few thousand values; far more means alias bombs.
MAX_NODES = 200_000


class TooLarge(Exception):
    def __init__(self, position: Position) -> None:
        self.position = position


def _node_kind(node: yaml.Node, value: object) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "true/false" if isinstance(value, bool) else type(value).__name__


def _scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader):
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, interpolate: Interpolator) -> tuple[object, SourceMap, list[tuple[ConfigIssue, Position | None]]]:
    """Parse ``text`` into plain data and its source map.

    Returns problems found on the way (duplicate keys, unset variables), each
    with an explicit position where the path alone would point elsewhere.
    Raises ``yaml.YAMLError`` for syntax errors (the caller locates them).
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    source = SourceMap()
    issues: list[ConfigIssue] = []
    duplicates: list[tuple[ConfigIssue, Position]] = []
    if root is None:
        return None, source, []
    constructor = yaml.SafeLoader("")
    # Node ids on the way from the root to the node being built: an alias that names one
    # of them (``a: &x {b: *x}``) would make data that contains itself.
    ancestors: set[int] = set()
    built = [0]

    def pos(node: yaml.Node) -> Position:
        return Position(node.start_mark.line + 1, node.start_mark.column + 1)

    def build(node: yaml.Node, path: Path):
        if id(node) in ancestors:
            # Located by its key: the alias itself has no node of its own in PyYAML.
            issues.append(ConfigIssue(path, "circular alias: this value contains itself"))
            return None
        built[0] += 1
        if built[0] > MAX_NODES:
            # Aliases of aliases can expand a small file into billions of values.
            raise TooLarge(pos(node))
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            ancestors.add(id(node))
            try:
                return _build_container(node, path)
            finally:
                ancestors.discard(id(node))
        source.values[path] = pos(node)
        value = _scalar(node, constructor)
        if isinstance(value, str):
            return interpolate(value, path, issues)
        return value

    def _build_container(node: yaml.Node, path: Path):
        source.values[path] = pos(node)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            source.containers.add(path)
        if isinstance(node, yaml.MappingNode):
            constructor.flatten_mapping(node)
            out: dict = {}
            for key_node, value_node in node.value:
                key = _scalar(key_node, constructor) if isinstance(key_node, yaml.ScalarNode) else None
                if key is None or not isinstance(key, (str, int, float)) or isinstance(key, bool):
                    found = "nothing" if key is None and isinstance(key_node, yaml.ScalarNode) else _node_kind(key_node, key)
                    issues_at.append((ConfigIssue(path, f"a key must be a name, found {found}"), pos(key_node)))
                    continue
                key = str(key)
                child = (*path, key)
                if key in out:
                    first = source.keys[child]
                    duplicates.append(
                        (ConfigIssue(child, f"duplicate key {key!r} (first defined on line {first.line})"), pos(key_node))
                    )
                    continue
                source.keys[child] = pos(key_node)
                out[key] = build(value_node, child)
            return out
        return [build(item, (*path, i)) for i, item in enumerate(node.value)]

    issues_at: list[tuple[ConfigIssue, Position]] = []
    try:
        data = build(root, ())
    except TooLarge as exc:
        return {}, source, [(ConfigIssue((), f"more than {MAX_NODES} values once aliases are expanded"), exc.position)]
    # Duplicate keys are reported at the second occurrence, the one to delete or rename.
    return data, source, [(issue, None) for issue in issues] + list(duplicates) + issues_at
