"""Shared helpers: build mapping configs from YAML text, and load the shipped examples
without connector settings (the mapping layer needs only each system's type)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from mapping.compiler import MappingSet, compile_mappings
from mapping.testing import MappingConfig, load_mapping_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config" / "examples"
EXAMPLE_SYSTEMS = {"fxiaoke": "fxiaoke", "zoho": "zoho", "erp": "kingdee", "erp_db": "sql"}


def make_config(text: str, systems: dict[str, str] | None = None) -> MappingConfig:
    """A MappingConfig from YAML (systems default to fxiaoke/zoho/erp/erp_db)."""
    data = yaml.safe_load(textwrap.dedent(text)) or {}
    data.setdefault("systems", {n: {"type": t} for n, t in (systems or EXAMPLE_SYSTEMS).items()})
    return MappingConfig.model_validate(data)


def compile_ok(text: str, systems: dict[str, str] | None = None) -> MappingSet:
    result = compile_mappings(make_config(text, systems))
    assert result.issues == [], result.issues
    return result.mappings


def issues_of(text: str, systems: dict[str, str] | None = None) -> list[tuple[tuple, str]]:
    return [(i.path, i.message) for i in compile_mappings(make_config(text, systems)).issues]


@pytest.fixture(scope="session")
def example_path() -> Path:
    return EXAMPLES / "channel-sales.yaml"


@pytest.fixture(scope="session")
def example_config(example_path: Path) -> MappingConfig:
    return load_mapping_config(example_path, systems=EXAMPLE_SYSTEMS)


@pytest.fixture(scope="session")
def example_mappings(example_config: MappingConfig) -> MappingSet:
    return MappingSet.from_config(example_config, base_dir=EXAMPLES)
