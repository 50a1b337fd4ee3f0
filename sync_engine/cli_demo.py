"""``crmsync demo``: the product end to end on this machine, with emulated systems."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        serve: bool = typer.Option(False, "--serve", help="Keep running afterwards: status page, webhooks, scheduler (Ctrl-C stops)."),
        directory: Path = typer.Option(Path(".crmsync-demo"), "--dir", help="Where the demo keeps its config and state (wiped first)."),
        scale: float = typer.Option(1.0, "--records-scale",
                                    help="Multiply the seeded data, 0.01 to 20 (1.0: 24 partners, 560 accounts, "
                                    "1,000 contacts, 800 deals)."),
    ) -> None:
        """Start Fxiaoke, Zoho and Kingdee emulators, seed a channel-sales company, sync, edit, sync again, explain."""
        from .cli import UserError
        from .demo import DemoError, run_demo

        if not 0.01 <= scale <= 20:
            raise UserError(f"--records-scale must be between 0.01 and 20, not {scale:g}", exit_code=2)
        # Piped into a file or a CI log, the tables still get room to breathe.
        console = Console() if sys.stdout.isatty() else Console(width=132)
        try:
            result = asyncio.run(run_demo(directory, scale=scale, serve=serve, console=console))
        except DemoError as exc:
            raise UserError(str(exc), exit_code=2) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        if not result.ok:
            raise UserError("the demo's checks failed (see above)")
