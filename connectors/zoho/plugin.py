"""The Zoho CRM plugin (entry point ``crmsync.connectors: zoho``).

Kept import-light: listing plugins must not load FastAPI or the emulator.
"""
from __future__ import annotations

from typing import Optional

import typer

from connectors.base import CallObserver, ConnectorPlugin

from .settings import ZohoSettings


def _create(name: str, settings: ZohoSettings, observer: CallObserver | None = None):
    from .connector import ZohoConnector

    return ZohoConnector(name, settings, observer=observer)


def _verifier(name: str, settings: ZohoSettings):
    from .webhook import ZohoWebhookVerifier

    return ZohoWebhookVerifier(name)


def emulator_main(
    port: int = typer.Option(8555, "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (keep it loopback)."),
    seed: int = typer.Option(0, "--seed", help="Create this many realistic records per module at start."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Added latency of every API call, in ms."),
    error_rate: float = typer.Option(0.0, "--error-rate", help="Share of API calls failing with 429/500 (0-1)."),
    rate_limit: Optional[float] = typer.Option(None, "--rate-limit", help="API calls per second before 429 TOO_MANY_REQUESTS."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Concurrent API calls before 429 (editions: 5-25)."),
    token_ttl: int = typer.Option(3600, "--token-ttl", help="Lifetime of access tokens in seconds (Zoho: 3600)."),
    time_zone: str = typer.Option("+05:30", "--time-zone", help="UTC offset of the API user's time zone, e.g. +08:00, -08:00."),
    random_seed: int = typer.Option(0, "--random-seed", help="Seed of the generated data and of fault injection."),
    client_id: str = typer.Option("1000.CRMSYNCEMULATOR0000000000000", "--client-id", help="Client ID the emulator accepts."),
    client_secret: str = typer.Option("emulator-client-secret", "--client-secret", help="Client secret it accepts."),
    refresh_token: str = typer.Option("1000.emulator.refresh-token", "--refresh-token", help="Refresh token it accepts."),
) -> None:
    """Run the Zoho CRM emulator (Zoho Accounts + CRM REST API v2-v8) until interrupted."""
    import uvicorn

    from .emulator import ZohoEmulator
    from .timefmt import parse_offset

    try:
        parse_offset(time_zone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--time-zone") from None
    if not 0 <= error_rate <= 1:
        raise typer.BadParameter("must be between 0 and 1", param_hint="--error-rate")
    emu = ZohoEmulator(
        client_id=client_id, client_secret=client_secret, refresh_token=refresh_token, seed=seed,
        random_seed=random_seed, latency_ms=latency_ms, error_rate=error_rate, rate_limit=rate_limit,
        concurrency=concurrency, token_ttl=token_ttl, time_zone=time_zone,
    )
    base = f"http://{host}:{port}"
    emu.base_url = base
    typer.echo(f"Zoho CRM emulator on {base}  (API {base}/crm/v8/..., admin {base}/_admin/)")
    typer.echo("Accepted credentials (settings for a system of type zoho):")
    typer.echo(f"  accounts_url:  {base}")
    typer.echo(f"  api_domain:    {base}")
    typer.echo(f"  client_id:     {client_id}")
    typer.echo(f"  client_secret: {client_secret}")
    typer.echo(f"  refresh_token: {refresh_token}")
    if seed:
        typer.echo(f"Seeded {seed} records in each of {', '.join(emu.object_names())}.")
    uvicorn.run(emu.app, host=host, port=port, log_level="warning", access_log=False)


plugin = ConnectorPlugin(
    type="zoho",
    description="Zoho CRM",
    settings_model=ZohoSettings,
    create=_create,
    webhook_verifier=_verifier,
    emulator_main=emulator_main,
)
