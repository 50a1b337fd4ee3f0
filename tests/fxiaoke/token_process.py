"""One crmsync-like process for test_shared_tokens: opens the state database, waits for the common start
instant, proves the Fxiaoke credentials, and prints how it got its token as one JSON line."""
from __future__ import annotations

import asyncio
import json
import sys
import time

from connectors.fxiaoke.connector import FxiaokeConnector
from connectors.fxiaoke.settings import FxiaokeSettings
from sync_engine.state import StateStore
from sync_engine.token_cache import StateTokenCache


async def main(settings_json: str, state_url: str, owner: str, start_at: float) -> None:
    settings = FxiaokeSettings(**json.loads(settings_json))
    store = StateStore.open(state_url)
    connector = FxiaokeConnector("crm_cn", settings)
    connector.share_tokens(StateTokenCache.for_store(store), owner)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        await connector.check()
        status = connector.client.tokens.status()
        print(json.dumps({"ok": True, "fetches": status["token_fetches"], "adopted": status["shared_tokens_adopted"]}))
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
    finally:
        await connector.close()
        store.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
