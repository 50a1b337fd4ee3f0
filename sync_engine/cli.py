"""The ``crmsync`` command line.

User mistakes (bad config, unreachable database, refused credentials) print a
clear message and exit non-zero; they never print a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from config.errors import ConfigError
from config.loader import load_config
from config.schema import CrmsyncConfig
from config.secrets import iter_secrets
from connectors import registry

from . import cli_demo, cli_engine, cli_service
from .logs import register_secret, setup_logging
from .state.errors import StateStoreError

app = typer.Typer(
    name="crmsync",
    help="Keeps Fxiaoke, Zoho CRM and the ERP in agreement: partners, accounts, contacts, deals, sales orders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="The configuration file.", no_args_is_help=True)
db_app = typer.Typer(help="The state database.", no_args_is_help=True)
emulator_app = typer.Typer(help="Run a local emulator of a system's API (loopback only).", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(emulator_app, name="emulator")

out = Console()
err = Console(stderr=True)

ConfigArg = typer.Argument(..., help="Path of the YAML configuration file.", show_default=False)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load(path: Path) -> CrmsyncConfig:
    """Load the config, register its secrets for redaction and set up logging."""
    config = load_config(path)
    for secret in iter_secrets(config):
        register_secret(secret)
    setup_logging(config.logging.format, config.logging.level)
    return config


@app.command()
def validate(config_path: Path = ConfigArg) -> None:
    """Check a configuration file and print a one-line summary (exit 2 on problems)."""
    config = load(config_path)
    flows = [name for name, flow in config.flows.items() if flow.enabled]
    out.print(
        f"[green]OK[/green] {config_path}: {len(config.systems)} systems ({', '.join(config.systems)}), "
        f"{len(config.entities)} entities ({', '.join(config.entities)}), "
        f"{len(config.flows)} flows ({len(flows)} enabled)"
        + (f", {len(config.triggers)} trigger{'s' if len(config.triggers) != 1 else ''} ({', '.join(config.triggers)})" if config.triggers else ""),
        highlight=False,
        soft_wrap=True,
    )


@config_app.command("schema")
def config_schema(output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout.")) -> None:
    """Print the JSON Schema of the configuration file (for editor completion)."""
    from config.jsonschema import config_json_schema

    text = json.dumps(config_json_schema(), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text + "\n")


@db_app.command("upgrade")
def db_upgrade(config_path: Path = ConfigArg) -> None:
    """Apply the state database migrations up to the newest."""
    from .state import migrate

    config = load(config_path)
    migrate.upgrade(config.state.url)
    out.print(f"state database at head ({migrate.current(config.state.url)})")


def _register_emulators() -> None:
    for type_name, plugin in sorted(registry.plugins().items()):
        if plugin.emulator_main is not None:
            emulator_app.command(name=type_name, help=f"Emulator of the {plugin.description} API.")(plugin.emulator_main)


def _register_optional_apps() -> None:
    try:
        from .cli_mapping import app as mapping_app
    except ImportError:  # the mapping commands land with the mapping layer
        return
    app.add_typer(mapping_app, name="mapping", help="Show and test mappings.")


_register_emulators()
_register_optional_apps()
cli_engine.register(app)
cli_service.register(app)
cli_demo.register(app)


def main() -> None:
    """Entry point of the ``crmsync`` console script."""
    try:
        app(standalone_mode=False)
    except ConfigError as exc:
        err.print(exc.format(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except StateStoreError as exc:
        err.print(f"error: state database: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        # Typer may bring its own copy of click: recognise its usage errors (bad option values) too.
        vendored = type(exc).__module__.startswith("typer.") and callable(getattr(exc, "show", None))
        if isinstance(exc, click.exceptions.ClickException) or vendored:
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        raise
