"""The shipped example configurations: they validate on a fresh machine (no environment), and
every object and field their mappings name exists in the emulator of that system — so what the
examples promise is what runs against the emulators (and, through them, the real APIs)."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from config.jsonschema import config_json_schema
from config.loader import load_config
from connectors.emulation.server import serve_in_thread
from connectors.fxiaoke.emulator import create_app as fxiaoke_app
from connectors.fxiaoke.emulator_schema import OBJECTS as FXIAOKE_OBJECTS
from connectors.kingdee.emulator_forms import FORMS as KINGDEE_FORMS
from connectors.zoho.emulator import create_app as zoho_app
from connectors.zoho.emulator_schema import LINE_ITEM_FIELDS, build_modules
from mapping.compiler import MappingSet
from mapping.mapper import Mapper
from sync_engine.engine import SyncEngine
from sync_engine.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config" / "examples"
ZOHO_MODULES = build_modules()
CLI = [sys.executable, "-c", "from sync_engine.cli import main; main()"]


def mapped_paths(mapper: Mapper) -> list[tuple[str, Mapper | None]]:
    """Every system field path of a mapping (read and written), with the line-item mapping of list fields."""
    out = [(rule.path, rule.items) for rule in mapper.rules if rule.path]
    out += [(".".join(parts), None) for parts, _ in mapper.constants]
    return out


def zoho_missing(mapper: Mapper) -> list[str]:
    module = ZOHO_MODULES.get(mapper.object)
    if module is None:
        return [f"module {mapper.object}"]
    missing = []
    for path, items in mapped_paths(mapper):
        root = path.split(".")[0]
        if root not in module.by_name:
            missing.append(path)
        elif items is not None:
            missing += [f"{root}[].{p}" for p, _ in mapped_paths(items) if p.split(".")[0] not in LINE_ITEM_FIELDS]
    return missing


def fxiaoke_missing(mapper: Mapper) -> list[str]:
    obj = FXIAOKE_OBJECTS.get(mapper.object)
    if obj is None:
        return [f"object {mapper.object}"]
    return [path for path, _ in mapped_paths(mapper) if path.split(".")[0] not in obj.by_name]


def kingdee_missing(mapper: Mapper) -> list[str]:
    form = KINGDEE_FORMS.get(mapper.object)
    if form is None:
        return [f"form {mapper.object}"]
    missing = []
    for path, items in mapped_paths(mapper):
        # Query keys: FCustId.FNumber follows the reference; FSaleOrderEntry_FEntryId is an entry's row id.
        root = path.split(".")[0]
        entry = form.entry(root)
        if entry is not None:
            for item_path, _ in mapped_paths(items) if items else []:
                key = item_path.split(".")[0]
                if key.lower() != entry.query_pk.lower() and key.lower() not in entry.fields:
                    missing.append(f"{root}[].{item_path}")
        elif form.field(root) is None and root.lower() != form.pk.lower():
            missing.append(path)
    return missing


CHECKS = {"zoho": zoho_missing, "fxiaoke": fxiaoke_missing, "kingdee": kingdee_missing}


@pytest.mark.parametrize("name", ["channel-sales.yaml", "minimal.yaml", "channel-sales-sql.yaml"])
def test_examples_validate_without_any_environment(name):
    config = load_config(EXAMPLES / name, environ={})
    assert config.systems and config.entities and config.flows


@pytest.mark.parametrize("name", ["channel-sales.yaml", "minimal.yaml"])
def test_every_mapped_object_and_field_exists_in_the_emulators(name):
    config = load_config(EXAMPLES / name, environ={})
    mappings = MappingSet.from_config(config, base_dir=EXAMPLES)
    problems = {}
    checked = 0
    for (entity, system), mapper in mappings.mappers.items():
        check = CHECKS[config.systems[system].type]
        missing = check(mapper)
        checked += 1
        if missing:
            problems[f"{entity}/{system} ({mapper.object})"] = missing
    assert checked >= 2
    assert problems == {}


def test_the_committed_json_schema_is_current_and_the_examples_point_at_it():
    committed = json.loads((ROOT / "config" / "schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(config_json_schema())), "run: crmsync config schema -o config/schema.json"
    for path in EXAMPLES.glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schema.json", path.name


def test_crmsync_validate_passes_on_the_examples_in_a_clean_environment():
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    for name in ("channel-sales.yaml", "minimal.yaml", "channel-sales-sql.yaml"):
        result = subprocess.run([*CLI, "validate", str(EXAMPLES / name)], capture_output=True, text=True, env=env,
                                cwd=ROOT, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("OK "), result.stdout


def test_the_minimal_example_runs_against_the_emulators(tmp_path):
    with serve_in_thread(zoho_app()) as zoho, serve_in_thread(fxiaoke_app()) as fx, httpx.Client(timeout=10) as admin:
        admin.post(f"{zoho.url}/_admin/records/Accounts", json={
            "Account_Name": "深圳市华为技术有限公司", "Unified_Social_Credit_Code": "914403001922038216",
            "Website": "https://www.huawei.com/cn/"}).raise_for_status()
        env = {"ZOHO_ACCOUNTS_URL": zoho.url, "ZOHO_API_DOMAIN": zoho.url, "FXIAOKE_HOST": fx.url,
               "CRMSYNC_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
        config = load_config(EXAMPLES / "minimal.yaml", environ=env)

        async def sync():
            runtime = Runtime(config, base_dir=EXAMPLES)
            try:
                async with runtime:
                    return await SyncEngine(runtime).run_all()
            finally:
                runtime.store.dispose()

        [report] = asyncio.run(sync())
        assert not report.errors and report.counts["fxiaoke"]["created"] == 1
        [account] = admin.get(f"{fx.url}/_admin/records/AccountObj").json()
        assert account["name"] == "深圳市华为技术有限公司" and account["credit_code__c"] == "914403001922038216"
        assert account["owner"] == ["1000"] and account["url"] == "huawei.com"
