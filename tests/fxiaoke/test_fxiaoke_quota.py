"""The daily quota: 30002 pauses the system until 00:00 Beijing time, the pause shows on
status, no call is made while paused, and partially written batches report per record."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from connectors.base import PullRequest, WriteOp
from connectors.errors import QuotaExhausted
from connectors.fxiaoke.limits import next_beijing_midnight

BEIJING = ZoneInfo("Asia/Shanghai")


class Wall:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def drain(crm, request):
    return [r async for page in crm.pull(request) for r in page.records]


async def test_quota_exhaustion_pauses_until_beijing_midnight_and_reports_it(fx):
    fx.emu.store.seed(5, ["AccountObj"])
    rid = fx.emu.store.dump("AccountObj")[0]["_id"]
    wall = Wall(datetime(2026, 3, 10, 23, 10, tzinfo=BEIJING))
    fx.switch(quota_exhausted=True)
    async with fx.connector(wall_clock=wall, daily_quota=100_000) as crm:
        with pytest.raises(QuotaExhausted) as caught:
            await drain(crm, PullRequest(object="AccountObj"))
        assert caught.value.until == datetime(2026, 3, 11, 0, 0, tzinfo=BEIJING)
        assert caught.value.code == "30002"
        status = crm.status()
        assert status["paused"] is True
        assert status["paused_until"] == "2026-03-11T00:00:00+08:00"
        assert "30002" in status["daily_quota"]["pause_reason"]
        assert status["daily_quota"]["quota"] == 100_000 and status["daily_quota"]["used_today"] == 1

        # While paused nothing reaches the API: the pause is answered locally.
        answered = sum(fx.emu.answers.values())
        with pytest.raises(QuotaExhausted):
            await crm.fetch("AccountObj", [rid])
        assert sum(fx.emu.answers.values()) == answered

        # Midnight in Beijing: the tenant's count restarts and so does the connector.
        fx.switch(quota_exhausted=False)
        wall.now = datetime(2026, 3, 11, 0, 0, 1, tzinfo=BEIJING)
        assert len(await drain(crm, PullRequest(object="AccountObj"))) == 5
        status = crm.status()
        assert status["paused"] is False and status["daily_quota"]["pause_reason"] is None
        assert status["daily_quota"]["day"] == "2026-03-11"


async def test_a_batch_cut_by_the_quota_reports_what_was_written_and_what_must_wait(fx):
    fx.switch(daily_quota=4)
    ops = [WriteOp(key=f"k{i}", action="create", data={"name": f"成都市星河电子有限公司{i}"}) for i in range(8)]
    async with fx.connector(write_concurrency=1) as crm:
        results = await crm.push("PartnerObj", ops)
        with pytest.raises(QuotaExhausted):  # nothing at all can be written now: the call itself fails
            await crm.push("PartnerObj", ops[:2])
    assert [r.ok for r in results] == [True] * 4 + [False] * 4
    assert all(r.retryable and r.code == "30002" for r in results[4:])
    assert len(fx.emu.store.dump("PartnerObj")) == 4


def test_next_beijing_midnight_from_utc_times():
    utc = ZoneInfo("UTC")
    # 15:59 UTC is 23:59 in Beijing; 16:00 UTC is already the next Beijing day.
    assert next_beijing_midnight(datetime(2026, 1, 31, 15, 59, tzinfo=utc)) == datetime(2026, 2, 1, tzinfo=BEIJING)
    assert next_beijing_midnight(datetime(2026, 1, 31, 16, 0, tzinfo=utc)) == datetime(2026, 2, 2, tzinfo=BEIJING)
