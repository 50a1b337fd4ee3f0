"""`crmsync validate` as a user runs it: exit codes, messages, never a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from sync_engine.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=60,
    )


def test_broken_file_exits_2_with_located_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("systems:\n  crm:\n    type: nosuchtype\nflows:\n  x: {entity: a, systems: [crm]}\n", encoding="utf-8")
    result = run("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:3:11: systems.crm.type: unknown system type 'nosuchtype'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "problems found." in result.stderr


def test_yaml_syntax_error_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("systems: [\n", encoding="utf-8")
    result = run("validate", str(bad))
    assert result.returncode == 2
    assert "YAML syntax error" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_exits_2(tmp_path):
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr


def test_help_lists_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("validate", "config", "db", "emulator"):
        assert command in result.stdout


def test_config_schema_is_json_schema():
    import json

    result = run("config", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["title"] == "crmsync configuration"
    assert "systems" in schema["properties"] and "flows" in schema["properties"]
