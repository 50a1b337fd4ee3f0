"""Pooled connections are not reused near a server's keep-alive timeout.

uvicorn, Apache and Node close an idle connection after 5 s, httpx's default pool expiry. A connection
idle just under that was reused, and when the event loop spent a moment elsewhere before sending, the
server closed it as the request went out: a ReadError, and a create's outcome unknown (bench/initial_sync
left 100 accounts in doubt in about half its runs on a slow machine). ``ApiClient`` drops connections
idle for ``KEEPALIVE_EXPIRY_SECONDS``, well under 5 s.
"""
from __future__ import annotations

import asyncio

from connectors.emulation.server import serve_in_thread
from connectors.http import KEEPALIVE_EXPIRY_SECONDS, ApiClient


async def _peer_port(scope, receive, send):
    """An ASGI app answering with the client's port: one port per TCP connection."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(scope["client"][1]).encode()})


async def test_an_idle_connection_is_reused_briefly_then_replaced_well_before_five_seconds():
    assert KEEPALIVE_EXPIRY_SECONDS <= 2.5
    with serve_in_thread(_peer_port) as server:
        client = ApiClient("test", base_url=server.url, concurrency=1)
        try:
            async def port() -> str:
                return (await client.request("GET", "/", endpoint="GET /")).text

            first = await port()
            assert await port() == first, "a connection just used is reused"
            await asyncio.sleep(KEEPALIVE_EXPIRY_SECONDS + 0.5)
            assert await port() != first, "idle past the expiry (still under 5 s): a new connection"
        finally:
            await client.aclose()
