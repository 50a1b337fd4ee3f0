"""Settling: the overlap window is re-read until a pass starts the overlap (and the connector's own
look-back for late commits) after the watermark was seen; that pass reads it one last time, and later
passes start just past the settled watermark instead of re-reading the window before it forever.

A record becomes visible within the overlap of being written (what ``sync.overlap`` is for), so nothing
at or before a settled watermark can still appear. Elapsed time is this machine's; the source's clock
(skewed, another time zone) never enters, and a pass right after another keeps the whole window
(``test_late``).
"""
from __future__ import annotations

from datetime import timedelta

import sync_engine.pull as pull
from sync_engine.state.types import utc_now

from .conftest import Source, assert_quiet, counted, second


async def test_a_settled_watermark_is_not_read_again_and_later_changes_still_are(source: Source, make_sync, monkeypatch):
    mark = second(source.clock()) - timedelta(hours=1)
    source.create(at=mark - timedelta(seconds=30))
    source.create(at=mark)
    async with make_sync(source, overlap="2m") as sync:
        first = await sync.run()
        assert counted(first, "created", "mem") == 2 and sync.watermark() == mark
        assert_quiet(again := await sync.run(), window=2)
        assert counted(again, "read") == 2  # right after: the window is still re-read

        # An hour later (past the overlap and Kingdee's 60 s look-back): one pass reads the window a last time ...
        later = utc_now() + timedelta(hours=1)
        monkeypatch.setattr(pull, "utc_now", lambda: later)
        assert_quiet(await sync.run(), window=2)
        # ... and the next starts past the settled watermark (Kingdee's filter takes whole seconds).
        quiet = await sync.run()
        assert_quiet(quiet, window=1 if source.kind == "kingdee" else 0)

        source.create(at=mark + timedelta(seconds=1))
        caught = await sync.run()
        assert counted(caught, "created", "mem") == 1
        assert sync.watermark() == mark + timedelta(seconds=1)
        assert len(sync.names()) == 3
