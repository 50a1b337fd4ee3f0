"""``crmsync mapping …``: look at a mapping, and prove it with its examples.

    crmsync mapping test CONFIG [--entity account] [--system zoho] [--mapping-only]
    crmsync mapping show CONFIG ENTITY SYSTEM

Exit codes: 0 all good, 1 a mapping test failed, 2 the configuration has problems.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from config.errors import ConfigError

app = typer.Typer(help="Show and test mappings.", no_args_is_help=True, pretty_exceptions_enable=False)

out = Console()
err = Console(stderr=True)

ConfigArg = typer.Argument(..., help="Path of the YAML configuration file.", show_default=False)
MappingOnly = typer.Option(
    False,
    "--mapping-only",
    help="Read only systems' types, value_maps and entities: no connector settings, credentials or "
    "environment variables needed (for reviewing mappings without secrets).",
)


def _load(path: Path, mapping_only: bool) -> Any:
    if mapping_only:
        from mapping.testing import load_mapping_config

        return load_mapping_config(path)
    from config.loader import load_config

    return load_config(path)


def _load_or_exit(path: Path, mapping_only: bool) -> Any:
    try:
        return _load(path, mapping_only)
    except ConfigError as exc:
        err.print(exc.format(), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command("test")
def test(
    config_path: Path = ConfigArg,
    entity: Optional[str] = typer.Option(None, "--entity", "-e", help="Only this entity's tests."),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="Only tests whose input comes from this system."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List passing tests too."),
    mapping_only: bool = MappingOnly,
) -> None:
    """Run the mapping tests (examples beside each mapping) and print a diff for each failure."""
    from config.errors import format_path
    from mapping.testing import TestFileError, run_mapping_tests

    config = _load_or_exit(config_path, mapping_only)
    if entity is not None and entity not in config.entities:
        from config.suggest import unknown

        err.print(f"error: {unknown('entity', entity, config.entities)}", highlight=False, markup=False)
        raise typer.Exit(2)
    try:
        report = run_mapping_tests(config, config_path, entity=entity, system=system)
    except TestFileError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if report.issues:
        for issue in report.issues:
            err.print(f"{config_path}: {format_path(issue.path)}: {issue.message}", highlight=False, markup=False)
        raise typer.Exit(2)
    if not report.results:
        err.print("no mapping tests found (add `tests:` or `tests_file:` under entities.<entity>.systems.<system>)")
        raise typer.Exit(1)
    for result in report.results:
        title = f"{result.entity} / {result.system}: {result.name}"
        if result.passed:
            if verbose:
                out.print(f"[green]PASS[/green] {title}", highlight=False, soft_wrap=True)
            continue
        out.print(f"[red]FAIL[/red] {title}  ({result.location})", highlight=False, soft_wrap=True)
        out.print(result.diff_text(), highlight=False, markup=False, soft_wrap=True)
    colour = "green" if report.failed == 0 else "red"
    out.print(f"[{colour}]{report.passed} passed, {report.failed} failed[/{colour}]", highlight=False)
    if report.failed:
        raise typer.Exit(1)


@app.command("show")
def show(
    config_path: Path = ConfigArg,
    entity: str = typer.Argument(..., help="Entity name (a key of `entities`)."),
    system: str = typer.Argument(..., help="System name (a key of `systems`)."),
    mapping_only: bool = MappingOnly,
) -> None:
    """Print the resolved mapping of ENTITY in SYSTEM: converters, value maps, transforms, references."""
    from config.suggest import unknown
    from mapping.compiler import compile_mappings

    config = _load_or_exit(config_path, mapping_only)
    compiled = compile_mappings(config, base_dir=config_path.parent)
    if compiled.issues:
        from config.errors import format_path

        for issue in compiled.issues:
            err.print(f"{config_path}: {format_path(issue.path)}: {issue.message}", highlight=False, markup=False)
        raise typer.Exit(2)
    if entity not in config.entities:
        err.print(f"error: {unknown('entity', entity, config.entities)}", highlight=False, markup=False)
        raise typer.Exit(2)
    mapped = config.entities[entity].systems
    if system not in mapped:
        err.print(f"error: {unknown(f'system mapped for {entity}', system, mapped)}", highlight=False, markup=False)
        raise typer.Exit(2)
    if (entity, system) not in compiled.mappings.mappers:
        err.print(f"error: system {system!r} is not defined in `systems`", highlight=False, markup=False)
        raise typer.Exit(2)
    mapper = compiled.mappings.mapper(entity, system)
    out.print(
        f"[bold]{entity}[/bold] ({mapper.model}) in [bold]{system}[/bold] "
        f"(type {mapper.system_type or '?'}, object [cyan]{mapper.object}[/cyan])",
        highlight=False,
    )
    table = Table(show_lines=False, header_style="bold")
    for column in ("Canonical field", "System field", "Direction", "Converter", "Value map", "Transform",
                   "Reference", "Notes"):
        table.add_column(column, overflow="fold")
    for row in mapper.describe():
        table.add_row(row["canonical"], row["system"], row["direction"], row["converter"], row["value_map"],
                      row["transform"], row["reference"], row["notes"])
    out.print(table)
    if mapper.constants:
        written = ", ".join(f"{'.'.join(parts)} = {value!r}" for parts, value in mapper.constants)
        out.print(f"Written on create: {written}", highlight=False, soft_wrap=True)
    unmapped = [f for f in _canonical_fields(mapper.model) if f not in {r.canonical for r in mapper.rules}]
    if unmapped:
        out.print(f"[dim]Not mapped in {system}: {', '.join(unmapped)}[/dim]", highlight=False, soft_wrap=True)


def _canonical_fields(model: str) -> list[str]:
    from mapping.canonical import fields_of

    return list(fields_of(model))
