"""1,000 records sharing one modified time, straddling page edges, at exactly the cursor.

The airbyte failure (rows at MAX(updated_at) silently dropped, sync-lessons.md §1) needs a cursor that
is exclusive at ties; the opposite failure is a cursor that never gets past a tie and re-reads it
forever. Both are asserted here for each source, with the engine's overlap set to zero so that the
cursor's own inclusive bound has to hold the tie.
"""
from __future__ import annotations

from datetime import timedelta

from .conftest import Source, counted, second

TIED = 1000


async def test_a_thousand_records_tied_at_the_cursor_come_exactly_once(source: Source, make_sync):
    tie = second(source.clock()) - timedelta(minutes=30)
    before = source.bulk(7, tie - timedelta(seconds=10))
    anchor = source.create(at=tie)
    async with make_sync(source, overlap="0s") as sync:
        assert counted(await sync.run(), "created", "mem") == 8
        assert sync.watermark() == tie  # the last pass ended exactly at the tie

        # A bulk import in that same second, committed after the pass.
        tied = source.bulk(TIED, tie)

        # The connector alone, from a bound equal to the tie: every record once, across page edges.
        records = await sync.pull(tie)
        ids = [r.external_id for r in records]
        assert len(ids) == len(set(ids)) == TIED + 1
        assert set(ids) == {anchor, *tied}
        assert {r.modified_at for r in records} == {tie}
        # From a little earlier the tie starts in the middle of the first page: still once each, in order.
        records = await sync.pull(tie - timedelta(minutes=1))
        ids = [r.external_id for r in records]
        assert len(ids) == len(set(ids)) == TIED + 8
        assert set(ids) == {*before, anchor, *tied}
        assert [r.modified_at for r in records] == sorted(r.modified_at for r in records)

        # The engine from that cursor: each new record staged and written once; the anchor deduped.
        report = await sync.run()
        assert counted(report, "read") == TIED + 1
        assert counted(report, "skipped") == 1
        assert counted(report, "created", "mem") == TIED
        names = sync.names()
        assert len(names) == len(set(names)) == TIED + 8
        assert sync.watermark() == tie

        # The next pass re-reads the tie (the cursor is inclusive and nothing is newer), but stages
        # and writes nothing: the (id, modified) dedupe stops them.
        again = await sync.run()
        assert counted(again, "read") == counted(again, "skipped") == TIED + 1
        assert counted(again, "created", "mem") == counted(again, "updated", "mem") == 0

        # A change after the tie moves the cursor past it, and from then on the tie is not read at all.
        later = tie + timedelta(minutes=5)
        source.create(at=later)
        moved = await sync.run()
        assert counted(moved, "created", "mem") == 1
        assert sync.watermark() == later
        quiet = await sync.run()
        assert counted(quiet, "read") == counted(quiet, "skipped") == 1
        assert len(sync.names()) == TIED + 9
