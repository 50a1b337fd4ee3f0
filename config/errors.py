"""Configuration problems, collected (never just the first) and printed as
``FILE:LINE:COL: key.path: message`` so an editor can jump to each one.
"""
from __future__ import annotations

from dataclasses import dataclass

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """A problem at a key path of the config; the loader adds file, line and column."""

    path: Path
    message: str


@dataclass(frozen=True, slots=True)
class LocatedIssue:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: Path
    message: str

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        key = format_path(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class ConfigError(Exception):
    """The configuration cannot be used. ``issues`` holds every problem found."""

    def __init__(self, issues: list[LocatedIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column, i.message))
        super().__init__("\n".join(i.format() for i in self.issues))

    def format(self) -> str:
        n = len(self.issues)
        return "\n".join(i.format() for i in self.issues) + f"\n{n} problem{'s' if n != 1 else ''} found."
