"""Registers the Kingdee connector (entry point ``crmsync.connectors: kingdee``) and its emulator command."""
from __future__ import annotations

import ipaddress

import typer

from ..base import CallObserver, ConnectorPlugin
from .connector import KingdeeConnector
from .settings import KingdeeSettings


def create(name: str, settings: KingdeeSettings, observer: CallObserver | None = None) -> KingdeeConnector:
    if not isinstance(settings, KingdeeSettings):
        settings = KingdeeSettings.model_validate(settings)
    return KingdeeConnector(name, settings, observer=observer)


def emulator_main(
    port: int = typer.Option(..., "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (keep it on loopback)."),
    seed: int = typer.Option(0, "--seed", help="Seed N customers, N/10 dealers and N/2 sales orders (0 = none)."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Added latency per API call, in ms."),
    error_rate: float = typer.Option(0.0, "--error-rate", help="Share of API calls failing with an injected fault."),
    session_ttl: float = typer.Option(1800.0, "--session-ttl", help="Idle seconds before a login session is lost (0 = never)."),
    acct_id: str = typer.Option(None, "--acct-id", help="Accepted data centre id."),
    username: str = typer.Option(None, "--username", help="Accepted user name."),
    password: str = typer.Option(None, "--password", help="Accepted password (ValidateUser)."),
    app_id: str = typer.Option(None, "--app-id", help="Accepted AppID (LoginByAppSecret)."),
    app_secret: str = typer.Option(None, "--app-secret", help="Accepted AppSecret (LoginByAppSecret)."),
    timezone: str = typer.Option("Asia/Shanghai", "--timezone", help="Time zone of the emulated server's local times."),
    random_seed: int = typer.Option(0, "--random-seed", help="Seed of the fake data and fault draws."),
) -> None:
    """Run a local Kingdee K/3 Cloud WebAPI emulator (a simulator, not the ERP)."""
    import uvicorn

    from .emulator import DEFAULT_CREDENTIALS, Credentials, create_app, print_banner
    from .localtime import zone

    if not 0 <= error_rate <= 1:
        raise typer.BadParameter("must be between 0 and 1", param_hint="--error-rate")
    if seed < 0 or latency_ms < 0 or session_ttl < 0:
        raise typer.BadParameter("--seed, --latency-ms and --session-ttl cannot be negative")
    try:
        zone(timezone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timezone") from None
    credentials = Credentials(
        acct_id=acct_id or DEFAULT_CREDENTIALS.acct_id,
        username=username or DEFAULT_CREDENTIALS.username,
        password=password or DEFAULT_CREDENTIALS.password,
        app_id=app_id or DEFAULT_CREDENTIALS.app_id,
        app_secret=app_secret or DEFAULT_CREDENTIALS.app_secret,
    )
    app = create_app(credentials=credentials, seed=random_seed, seed_count=seed, latency_ms=latency_ms,
                     error_rate=error_rate, session_ttl=session_ttl, timezone=timezone)
    print_banner(host, port, credentials, echo=typer.echo)
    if not _is_loopback(host):
        typer.echo(f"warning: listening on {host}, not loopback; this emulator has no real security", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


plugin = ConnectorPlugin(
    type="kingdee",
    description="Kingdee K/3 Cloud (金蝶云星空) through its WebAPI: customers, dealers, sales orders.",
    settings_model=KingdeeSettings,
    create=create,
    webhook_verifier=None,  # Kingdee sends no webhooks: the engine polls FModifyDate
    emulator_main=emulator_main,
)


if __name__ == "__main__":  # python -m connectors.kingdee.plugin --port 8765
    typer.run(emulator_main)
