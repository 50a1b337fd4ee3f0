"""Registers the Fxiaoke connector with crmsync (entry point ``connectors.fxiaoke.plugin:plugin``)."""
from __future__ import annotations

from pydantic import BaseModel

import typer

from ..base import CallObserver, ConnectorPlugin, WebhookVerifier
from ..errors import ConnectorConfigError
from .connector import FxiaokeConnector
from .settings import FxiaokeSettings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create(name: str, settings: BaseModel, observer: CallObserver | None = None) -> FxiaokeConnector:
    if not isinstance(settings, FxiaokeSettings):
        settings = FxiaokeSettings.model_validate(
            settings.model_dump() if isinstance(settings, BaseModel) else settings
        )
    return FxiaokeConnector(name, settings, observer=observer)


def webhook_verifier(name: str, settings: BaseModel) -> WebhookVerifier:
    """The verifier for the push style chosen in ``notifications.style``."""
    from .push_apl import AplPushVerifier
    from .push_open_platform import OpenPlatformPushVerifier

    if not isinstance(settings, FxiaokeSettings):
        settings = FxiaokeSettings.model_validate(settings.model_dump())
    n = settings.notifications
    if n.style == "open_platform":
        assert n.token is not None and n.encoding_aes_key is not None  # checked by the settings model
        return OpenPlatformPushVerifier(
            n.token.get_secret_value(), n.encoding_aes_key.get_secret_value(), window_seconds=n.clock_window_seconds
        )
    if n.style == "apl_function":
        assert n.apl_secret is not None
        return AplPushVerifier(n.apl_secret.get_secret_value(), window_seconds=n.apl_clock_window_seconds)
    raise ConnectorConfigError(
        f"system {name!r} has no change notifications (set notifications.style to open_platform or apl_function)",
        system=name,
    )


def emulator_main(
    port: int = typer.Option(..., "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to listen on."),
    seed: int = typer.Option(
        0, "--seed", min=0, help="Create N realistic accounts, with partners, contacts, opportunities and orders."
    ),
    random_seed: int = typer.Option(0, "--random-seed", help="Seed of the fake-data generator (same seed, same data)."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", min=0, help="Added latency per API call."),
    error_rate: float = typer.Option(
        0.0, "--error-rate", min=0.0, max=1.0, help="Share of API calls answered with an injected -1/30004 error."
    ),
    rate_limit: int = typer.Option(100, "--rate-limit", min=1, help="Calls allowed per interface per 20 s."),
    rate_period: float = typer.Option(20.0, "--rate-period", min=0.1, help="Window of --rate-limit in seconds."),
    token_ttl: float = typer.Option(7200.0, "--token-ttl", min=1, help="Token lifetime in seconds."),
    daily_quota: int | None = typer.Option(None, "--daily-quota", min=1, help="Calls per Beijing day before 30002."),
    app_id: str = typer.Option(..., "--app-id", help="appId the emulator accepts (FSAID_…)."),
    app_secret: str = typer.Option(..., "--app-secret", help="appSecret the emulator accepts."),
    permanent_code: str = typer.Option(..., "--permanent-code", help="permanentCode the emulator accepts."),
    push_url: str | None = typer.Option(None, "--push-url", help="Loopback URL for the open-platform push."),
    apl_push_url: str | None = typer.Option(None, "--apl-push-url", help="Loopback URL for the APL-function push."),
    push_token: str = typer.Option("emulator-push-token", "--push-token", help="Open-platform push token."),
    push_aes_key: str | None = typer.Option(
        None, "--push-aes-key", help="43-character encodingAesKey for the open-platform push (random if omitted)."
    ),
    apl_secret: str = typer.Option("emulator-apl-secret-0123456789", "--apl-secret", help="APL push HMAC secret."),
    push_on_api_writes: bool = typer.Option(False, "--push-on-api-writes", help="Also push changes made via the API."),
    opportunity_object: str = typer.Option(
        "NewOpportunityObj", "--opportunity-object", help="Active opportunity object (or OpportunityObj)."
    ),
) -> None:
    """Run the Fxiaoke OpenAPI emulator on a loopback port."""
    import uvicorn

    from .emulator import EmulatorConfig, FxiaokeEmulator
    from .push_open_platform import new_encoding_aes_key

    if host not in LOOPBACK:
        raise typer.BadParameter(
            "the emulator listens on loopback only (127.0.0.1, localhost or ::1)", param_hint="--host"
        )
    if opportunity_object not in ("NewOpportunityObj", "OpportunityObj"):
        raise typer.BadParameter("use NewOpportunityObj or OpportunityObj", param_hint="--opportunity-object")
    if push_aes_key is not None and len(push_aes_key) != 43:
        raise typer.BadParameter("an encodingAesKey has 43 characters", param_hint="--push-aes-key")
    config = EmulatorConfig(
        app_id=app_id,
        app_secret=app_secret,
        permanent_code=permanent_code,
        seed=random_seed,
        seed_count=seed,
        latency_ms=latency_ms,
        error_rate=error_rate,
        rate_limit=rate_limit,
        rate_period=rate_period,
        token_ttl=token_ttl,
        daily_quota=daily_quota,
        push_token=push_token,
        push_aes_key=push_aes_key or new_encoding_aes_key(),
        apl_secret=apl_secret,
        open_platform_push_url=push_url,
        apl_push_url=apl_push_url,
        opportunity_object=opportunity_object,
    )
    try:
        emulator = FxiaokeEmulator(config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    emulator.switches.extra["push_on_api_writes"] = push_on_api_writes
    creds = emulator.credentials()
    base = f"http://{host}:{port}"
    typer.echo(f"Fxiaoke OpenAPI emulator on {base}  (admin: {base}/_admin/switches, docs: {base}/_admin/docs)")
    typer.echo(f"  records:        {sum(emulator.store.counts().values())} ({seed} accounts requested)")
    typer.echo(f"  limits:         {rate_limit} calls / {rate_period:g} s per interface, token life {token_ttl:g} s")
    typer.echo("  accepted credentials (config: systems.<name> with type: fxiaoke):")
    typer.echo(f"    host: {base}")
    typer.echo(f"    app_id: {creds['app_id']}")
    typer.echo(f"    app_secret: {creds['app_secret']}")
    typer.echo(f"    permanent_code: {creds['permanent_code']}")
    typer.echo(f"    user_id: {creds['user_id']}            # current auth (x-fs-ea = {creds['ea']})")
    typer.echo(f"    open_user_id: {creds['open_user_id']}  # legacy auth (corpId = {creds['corp_id']})")
    typer.echo("  change pushes:")
    typer.echo(f"    open_platform → {push_url or '(off)'}  token={creds['push_token']} "
               f"encoding_aes_key={creds['push_encoding_aes_key']}")
    typer.echo(f"    apl_function  → {apl_push_url or '(off)'}  apl_secret={creds['apl_secret']}")
    uvicorn.run(emulator.app, host=host, port=port, log_level="warning")


plugin = ConnectorPlugin(
    type="fxiaoke",
    description="Fxiaoke (纷享销客 / ShareCRM) OpenAPI: accounts, partners, contacts, opportunities, sales orders, "
    "custom __c objects; both auth generations; signed change pushes.",
    settings_model=FxiaokeSettings,
    create=create,
    webhook_verifier=webhook_verifier,
    emulator_main=emulator_main,
)
