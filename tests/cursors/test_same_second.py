"""Two edits of one record in one second, a pass reading it between them.

Zoho's ``Modified_Time`` (and the ERP's ``modified_at``, Kingdee's ``FModifyDate``) have whole seconds:
both edits carry the same modified time. A pass made between them reconciled the first; the second's
re-read carries a modified time already seen, and was taken for a repeat and skipped — the edit lost
until the record's next change. The content of the version (its hash) tells the two apart, and a true
repeat is still skipped.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from sync_engine import pull
from sync_engine.state.models import Snapshot
from sync_engine.state.types import utc_now

from .conftest import Source, counted, second


async def test_a_second_edit_in_the_same_second_is_synced_and_a_true_repeat_is_not(source: Source, make_sync):
    at = second(source.clock()) - timedelta(minutes=30)
    record_id = source.create(at=at)
    async with make_sync(source, overlap="2m") as sync:
        first = await sync.run()
        assert counted(first, "created", "mem") == 1

        # A user renames it in that same second, after the pass read it.
        name = source.rename(record_id, at)
        report = await sync.run()
        assert counted(report, "updated", "mem") == 1
        assert sync.names() == [name]
        assert sync.watermark() == at

        # Read again (the cursor is inclusive and nothing is newer): the same version, skipped.
        again = await sync.run()
        assert counted(again, "read") == counted(again, "skipped") == 1
        assert counted(again, "updated", "mem") == 0
        assert sync.names() == [name]


async def test_a_version_reconciled_before_hashes_were_kept_is_still_a_repeat(source: Source, make_sync):
    """After the upgrade to 0008 the snapshots have no hash: a re-read of their version is still skipped
    (not every record at the watermark reconciled again), and the next edit is synced and hashed."""
    at = second(source.clock()) - timedelta(minutes=30)
    record_id = source.create(at=at)
    async with make_sync(source, overlap="2m") as sync:
        await sync.run()
        with sync.runtime.store.write() as session:
            assert session.execute(update(Snapshot).where(Snapshot.system == "src").values(source_hash=None)).rowcount == 1
        again = await sync.run()
        assert counted(again, "read") == counted(again, "skipped") == 1

        name = source.rename(record_id, at + timedelta(seconds=1))
        assert counted(await sync.run(), "updated", "mem") == 1
        assert sync.names() == [name]
        with sync.runtime.store.read() as session:
            assert session.scalar(select(Snapshot.source_hash).where(Snapshot.system == "src"))


#: Fxiaoke's milliseconds settle at once, rightly: an edit in that millisecond cannot come 0.6 s later.
@pytest.mark.parametrize("source", ["zoho", "kingdee", "sql"], indirect=True)
async def test_an_instant_settles_only_once_its_second_has_passed(source: Source, make_sync, monkeypatch):
    """With ``sync.overlap`` between zero and a second, the pass right after the one that saw an instant
    would settle it (later passes start past it) while the source's clock may still be in that second: a
    second edit made then, stamped at the settled instant, would never be read. Settling waits one step of
    the source's modified times too (``Connector.timestamp_resolution``: a second unless the connector says
    finer)."""
    at = second(source.clock()) - timedelta(minutes=30)
    record_id = source.create(at=at)
    start = utc_now()
    async with make_sync(source, overlap="500ms") as sync:
        monkeypatch.setattr(pull, "utc_now", lambda: start)
        assert counted(await sync.run(), "created", "mem") == 1
        # 0.6 s later (this machine's clock): past the overlap, but a second's source may still be in it.
        monkeypatch.setattr(pull, "utc_now", lambda: start + timedelta(milliseconds=600))
        await sync.run()
        name = source.rename(record_id, at)
        monkeypatch.setattr(pull, "utc_now", lambda: start + timedelta(milliseconds=700))
        report = await sync.run()
        assert counted(report, "updated", "mem") == 1
        assert sync.names() == [name]
