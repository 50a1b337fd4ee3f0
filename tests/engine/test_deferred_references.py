"""A record whose parent is not synced yet waits (deferred) and is retried every pass; only scheduled
passes count as failed attempts, once each, so a burst of webhook runs does not spend its
max_attempts before the parent's own poll could bring the parent in."""
from __future__ import annotations

from sqlalchemy import select

from connectors.base import ChangeHint
from sync_engine.state.models import DeadLetter, Link, StagedChange

from .memory import CLOCK


def staged(engine, external_id: str) -> StagedChange | None:
    with engine.rt.store.read() as s:
        return s.scalar(select(StagedChange).where(StagedChange.external_id == external_id))


def letters(engine) -> list[DeadLetter]:
    with engine.rt.store.read() as s:
        return list(s.scalars(select(DeadLetter)))


async def test_webhook_runs_retry_a_deferred_record_without_spending_its_attempts(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    assert engine.rt.config.sync.max_attempts == 5
    # The contact's company is not visible to crmsync yet (created a moment later, or shared later).
    waiting = fx.user_create("ContactObj", {"name": "张伟", "email": "zhang.wei@example.cn", "account_id": "fx-900"})
    other = fx.user_create("ContactObj", {"name": "李娜", "email": "li.na@example.cn"})
    await engine.run_all()  # the scheduled pass: one counted attempt
    row = staged(engine, waiting)
    assert row is not None and row.status == "deferred" and row.attempts == 1, row

    for i in range(20):  # edits of another contact arrive as webhooks; each run retries the waiting one
        fx.user_update("ContactObj", other, {"name": f"李娜{i}"})
        [report] = await engine.sync_hints("fx", [ChangeHint("ContactObj", [other], "update")])
        assert report.total("deferred") >= 1  # it was retried
    row = staged(engine, waiting)
    assert row is not None and row.attempts == 1, "webhook runs spent the deferred record's attempts"
    assert letters(engine) == []

    # The company appears; the next scheduled pass syncs it and then the contact.
    fx.objects.setdefault("AccountObj", {})["fx-900"] = {"name": "深圳市华为技术有限公司"}
    fx.modified[("AccountObj", "fx-900")] = CLOCK.tick()
    await engine.run_all()
    assert staged(engine, waiting) is None and letters(engine) == []
    with engine.rt.store.read() as s:
        assert s.scalar(select(Link).where(Link.system == "fx", Link.external_id == waiting)) is not None
    assert any(c.get("Email") == "zhang.wei@example.cn" for c in zoho.records("Contacts").values())


async def test_a_parent_that_never_appears_dead_letters_after_max_attempts_scheduled_passes(engine, systems):
    fx = systems["fx"]
    orphan = fx.user_create("ContactObj", {"name": "王芳", "email": "wang.fang@example.cn", "account_id": "fx-901"})
    for attempt in range(1, 5):
        await engine.run_all()
        row = staged(engine, orphan)
        assert row is not None and row.attempts == attempt, (attempt, row and row.attempts)  # one per pass
    await engine.run_all()
    [letter] = letters(engine)
    assert letter.code == "reference.unresolved" and letter.external_id == orphan and letter.attempts == 5
