"""The emulators' clock switches (``clock_offset_seconds``, ``frozen_time``) over their /_admin API."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from .conftest import Source, start_source


@pytest.fixture(params=["zoho", "fxiaoke", "kingdee"])
def emulated(request, admin, tmp_path) -> Iterator[Source]:
    yield from start_source(request.param, admin, tmp_path)


async def test_offset_shifts_the_stamps_and_bad_values_are_refused(emulated: Source, make_sync):
    source = emulated
    assert source.switch(clock_offset_seconds=-3600)["clock_offset_seconds"] == -3600
    rid = source.create()
    async with make_sync(source) as sync:
        (record,) = [r for r in await sync.pull(None) if r.external_id == rid]
    lag = datetime.now(UTC) - record.modified_at
    assert timedelta(minutes=59) < lag < timedelta(minutes=61)

    for bad in ({"clock_offset_seconds": "ten"}, {"clock_offset_seconds": None},
                {"frozen_time": "2026-11-27 10:00"}, {"frozen_time": "yesterday"}):
        response = source.admin.patch(f"{source.url}/_admin/switches", json=bad)
        assert response.status_code == 400
        assert next(iter(bad)) in response.json()["detail"]
    assert source.switch()["clock_offset_seconds"] == -3600  # a refused change leaves the clock alone
