"""Records that become visible late: committed with a modified time older than the cursor.

A slow transaction stamps its rows when it starts and makes them visible when it commits, so a pull
can pass their time before they exist. The overlap window (``sync.overlap``, re-read before the
cursor on every incremental pull) catches those within it; one older than the window is beyond any
incremental pull, and the flow's reconciliation pass (``flows.<name>.reconcile``, a full pass) is
what brings it in (README, "Cursors").
"""
from __future__ import annotations

from datetime import timedelta

from .conftest import Source, assert_quiet, counted, second


async def test_late_records_within_the_overlap_are_caught_and_older_ones_by_the_reconcile_pass(source: Source, make_sync):
    mark = second(source.clock()) - timedelta(hours=1)
    source.create(at=mark - timedelta(minutes=30))
    source.create(at=mark)
    async with make_sync(source, overlap="2m") as sync:
        first = await sync.run()
        assert counted(first, "created", "mem") == 2
        assert sync.watermark() == mark

        # Committed after that pass, stamped 90 s before the cursor: inside the 2-minute window.
        source.create(at=mark - timedelta(seconds=90))
        caught = await sync.run()
        assert counted(caught, "created", "mem") == 1
        assert sync.watermark() == mark  # an older record never moves the cursor back
        assert_quiet(await sync.run(), window=2)

        # Stamped 10 minutes before the cursor: no incremental pull looks that far back ...
        source.create(at=mark - timedelta(minutes=10))
        missed = await sync.run()
        assert_quiet(missed, window=2)
        assert len(sync.names()) == 3

        # ... the reconciliation pass (a full pull) does, and stages only what is new to it.
        full = await sync.run(full=True)
        assert counted(full, "read") == 4
        assert counted(full, "skipped") == 3
        assert counted(full, "created", "mem") == 1
        names = sync.names()
        assert len(names) == len(set(names)) == 4
        assert sync.watermark() == mark
        assert_quiet(await sync.run(), window=2)
