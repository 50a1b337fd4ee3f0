"""Time-zone offsets in the systems' modified times.

Zoho answers ``Modified_Time`` in the API user's offset (``2024-05-06T10:00:00+05:30``), Kingdee
``FModifyDate`` as the ERP server's local wall-clock time without any offset (Asia/Shanghai), the
SQL ERP naive local ``DATETIME`` values, Fxiaoke epoch milliseconds. Each must come out as the same
UTC instant, and a cursor taken from it must neither skip nor endlessly re-read. The process's own
local zone is set to one that is none of those (America/Sao_Paulo, UTC-3), so code that reads a naive
time as local time, or compares local times as UTC, gets it wrong here.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.zoho.timefmt import parse_offset

from .conftest import SHANGHAI, Source, assert_quiet, counted, second, start_source


@pytest.fixture(autouse=True)
def local_zone(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


ZONED = [("zoho", "+05:30"), ("zoho", "-08:00"), ("kingdee", None), ("fxiaoke", None), ("sql", None)]


@pytest.fixture(params=ZONED, ids=[f"{kind}{offset or ''}" for kind, offset in ZONED])
def zoned(request, admin, tmp_path) -> Iterator[Source]:
    kind, offset = request.param
    source = start_source(kind, admin, tmp_path, **({"time_zone": offset} if offset else {}))
    yield from source


def expected_raw(source: Source, at: datetime) -> object:
    """What the system itself writes for the instant ``at``."""
    if source.kind == "zoho":
        offset = parse_offset(source.emu.store.switch("time_zone"))
        return at.astimezone(timezone(offset)).isoformat()  # e.g. 2026-11-26T05:30:00+05:30
    if source.kind == "fxiaoke":
        return int(at.timestamp() * 1000)
    local = at.astimezone(SHANGHAI).replace(tzinfo=None)
    if source.kind == "kingdee":
        return local.strftime("%Y-%m-%dT%H:%M:%S")
    return local


async def test_offsets_and_local_times_give_one_instant_and_a_cursor_that_moves(zoned: Source, make_sync):
    source = zoned
    at = second(datetime.now(UTC)) - timedelta(hours=2)
    ids = {source.create(at=at) for _ in range(3)}
    async with make_sync(source, overlap="2m") as sync:
        records = await sync.pull(at)
        assert {r.external_id for r in records} == ids and len(records) == 3
        for record in records:
            assert source.raw_modified(record) == expected_raw(source, at)
            assert record.modified_at == at and record.modified_at.utcoffset() == timedelta(0)
        assert await sync.pull(at + timedelta(seconds=1)) == []

        assert counted(await sync.run(), "created", "mem") == 3
        assert sync.watermark() == at
        if source.kind == "zoho":
            # The API user moves to the other side of the world: offsets change, the instants do not.
            other = "-08:00" if source.emu.store.switch("time_zone") == "+05:30" else "+05:30"
            source.switch(time_zone=other)

        # Just after the cursor, and just before it (inside the window): both picked up.
        source.create(at=at + timedelta(seconds=30))
        source.create(at=at - timedelta(seconds=30))
        assert counted(await sync.run(), "created", "mem") == 2
        assert sync.watermark() == at + timedelta(seconds=30)

        # Later by more than the window: the cursor moves there and the earlier ones are not read again.
        later = at + timedelta(minutes=10)
        source.create(at=later)
        assert counted(await sync.run(), "created", "mem") == 1
        assert sync.watermark() == later
        assert_quiet(await sync.run(), window=1)
        names = sync.names()
        assert len(names) == len(set(names)) == 6
