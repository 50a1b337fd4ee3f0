"""Clock skew: the source's clock minutes ahead of or behind ours.

Each emulator's clock is shifted through ``PATCH /_admin/switches {"clock_offset_seconds": …}`` (the SQL
source writes its rows with the offset). Cursors must stay in the source's own time: a cursor taken
from our clock misses records when the source is behind, and re-reads them until our clock catches
up when it is ahead.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from .conftest import Source, assert_quiet, counted

SKEW = 7 * 60  # well beyond the 2-minute overlap window


@pytest.mark.parametrize("skew", [SKEW, -SKEW], ids=["ahead", "behind"])
async def test_skewed_source_clock_neither_misses_nor_repeats(source: Source, make_sync, skew: int):
    source.skew(skew)
    for _ in range(3):
        source.create()
    async with make_sync(source, overlap="2m") as sync:
        assert counted(await sync.run(), "created", "mem") == 3
        watermark = sync.watermark()
        # The cursor is the source's time, not ours.
        assert abs((watermark - (datetime.now(UTC) + timedelta(seconds=skew))).total_seconds()) < 60

        # Changed right after the pass, by the source's (skewed) clock.
        source.create()
        assert counted(await sync.run(), "created", "mem") == 1

        # Ten minutes pass at the source; one more change.
        source.skew(skew + 600)
        source.create()
        assert counted(await sync.run(), "created", "mem") == 1
        # Now only the newest record is inside the window: the four older ones are not read again.
        assert_quiet(await sync.run(), window=1)
        names = sync.names()
        assert len(names) == len(set(names)) == 5


async def test_a_source_clock_set_back_is_caught_by_the_window_or_the_reconcile_pass(source: Source, make_sync):
    """The source ran 7 minutes ahead, then its clock was corrected: new records are stamped before
    the cursor. Inside the overlap window they are caught; beyond it, by the reconcile (full) pass."""
    source.skew(SKEW)
    source.create()
    async with make_sync(source, overlap="2m") as sync:
        await sync.run()
        source.skew(SKEW - 60)  # set back one minute: inside the window
        source.create()
        assert counted(await sync.run(), "created", "mem") == 1
        source.skew(0)  # set back to the right time: seven minutes before the cursor
        source.create()
        assert_quiet(await sync.run(), window=2)
        full = await sync.run(full=True)
        assert counted(full, "created", "mem") == 1
        names = sync.names()
        assert len(names) == len(set(names)) == 3
