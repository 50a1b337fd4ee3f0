"""A Zoho user's edit landing between our last read of the record and our write (the check read of
Connector.push_checked) is overwritten, and no read shows it again. The notification of that edit,
carrying the new values (``affected_values``) and Zoho's ``server_time``, is the evidence that brings it
back (sync_engine/notified.py): replayed deterministically with the in-memory systems."""
from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import func, select, update

from connectors.base import ChangeHint
from sync_engine.intake import hint_of
from sync_engine.state.models import AuditEvent, Conflict
from sync_engine.state.models.pipeline import NotifiedChange, OutboxWrite
from sync_engine.state.types import utc_now

from .memory import CLOCK


def _near_now():
    """The systems' modified times near the real clock: the outbox's send and done times, which a
    notification's time is compared with, are ours (as Zoho's clock and ours are in production). Set, not
    advanced: the tests run before may have ticked it past the real clock."""
    CLOCK.now = utc_now() - timedelta(minutes=5)


async def _linked_company(engine, systems):
    _near_now()
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = fx.user_create("AccountObj", {"name": "深圳市恒通科技有限公司", "uscc": "91440300MA5F000001", "tel": "0755-1"})
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    (eid,) = erp.records("BD_Customer")
    return rid, zid, eid


def _user_edits_zoho_right_before_our_write(zoho, zid, phone, notices):
    """After the check's read, before our update reaches Zoho (the window no read can close): a Zoho user
    sets the phone, and Zoho notifies that edit (values and server time), then our write overwrites it."""
    real_push = zoho.push

    async def push(object, ops):
        if any(op.action == "update" and op.external_id == zid for op in ops):
            zoho.push = real_push
            at = utc_now()
            zoho.user_update("Accounts", zid, {"Phone": phone}, at=at)
            notices.append(ChangeHint("Accounts", [zid], "update", occurred_at=at, values={zid: {"Phone": phone}}))
            results = await real_push(object, ops)
            # Zoho notifies our write too (API writes are notified): our echo, with our value.
            notices.append(ChangeHint("Accounts", [zid], "update", occurred_at=utc_now(),
                                      values={zid: {"Phone": ops[0].data.get("Phone")}}))
            return results
        return await real_push(object, ops)

    zoho.push = push

async def _raced(engine, systems, *, fx_at=None):
    """A linked company; a Fxiaoke user edits its phone (the older edit, at ``fx_at``); crmsync writes it to
    Zoho while a Zoho user's edit lands between the check and the write. The Zoho notices, in order."""
    rid, zid, eid = await _linked_company(engine, systems)
    fx, zoho = systems["fx"], systems["zoho"]
    if fx_at is None:
        fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    else:
        fx.user_update("AccountObj", rid, {"tel": "0755-fx"}, at=fx_at)
    notices: list[ChangeHint] = []
    _user_edits_zoho_right_before_our_write(zoho, zid, "0755-zoho", notices)
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    return rid, zid, eid, notices



def _phones(systems, rid, zid, eid):
    return (systems["fx"].records("AccountObj")[rid]["tel"], systems["zoho"].records("Accounts")[zid]["Phone"],
            systems["erp"].records("BD_Customer")[eid]["FTel"])


def _writes(systems):
    return {name: sum(s.writes.values()) for name, s in systems.items()}


async def test_a_zoho_edit_our_write_overwrote_wins_everywhere_when_newer(engine, systems):
    """The long chaos run's lost phone: a Zoho edit 0.2 s before our write of an older Fxiaoke edit."""
    zoho = systems["zoho"]
    rid, zid, eid, notices = await _raced(engine, systems)
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-fx", "the race: our write overwrote the Zoho edit"
    user, echo = notices

    # The notifications arrive (our echo first: deliveries are reordered) and are processed.
    await engine.sync_hints("zoho", [echo])
    await engine.sync_hints("zoho", [user])
    # latest_wins: the Zoho user's edit is the newer one; it reaches every system, Zoho included.
    assert _phones(systems, rid, zid, eid) == ("0755-zoho",) * 3
    with engine.rt.store.read() as s:
        (conflict,) = s.scalars(select(Conflict).where(Conflict.field == "phone")).all()
        assert conflict.winner_system == "zoho" and conflict.values["fx"] == "0755-fx"
        assert s.scalar(select(func.count()).select_from(NotifiedChange)) == 0, "weighed for good: forgotten"
        notified_read = s.scalars(select(AuditEvent).where(AuditEvent.kind == "read", AuditEvent.system == "zoho")
                                  .order_by(AuditEvent.id.desc())).first()
        assert notified_read.details["notified"] and notified_read.details["changes"]["phone"][1] == "0755-zoho"

    # Duplicates and the late echo change nothing, now or on later passes.
    before = _writes(systems)
    await engine.sync_hints("zoho", [user])
    await engine.sync_hints("zoho", [echo, user])
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-zoho",) * 3
    assert _writes(systems) == before


async def test_the_users_notification_first_and_its_echo_after_end_the_same(engine, systems):
    rid, zid, eid, notices = await _raced(engine, systems)
    user, echo = notices
    await engine.sync_hints("zoho", [user, echo])  # one job's hints, in order
    await engine.sync_hints("zoho", [echo])
    assert _phones(systems, rid, zid, eid) == ("0755-zoho",) * 3


async def test_without_the_notification_the_overwritten_edit_is_lost(engine, systems):
    """The race itself, for the record: the read after our write shows our value, nothing else would tell."""
    rid, zid, eid, notices = await _raced(engine, systems)
    await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid], "update", occurred_at=h.occurred_at) for h in notices])
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-fx",) * 3


async def test_an_overwritten_edit_older_than_our_writes_source_changes_nothing(engine, systems):
    """Our write carried an Fxiaoke edit newer than the Zoho edit it overwrote: latest_wins keeps it."""
    fx, zoho = systems["fx"], systems["zoho"]
    rid, zid, eid = await _linked_company(engine, systems)
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"}, at=utc_now() + timedelta(minutes=1))
    notices: list[ChangeHint] = []
    _user_edits_zoho_right_before_our_write(zoho, zid, "0755-zoho", notices)
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    before = _writes(systems)
    await engine.sync_hints("zoho", notices)
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-fx",) * 3
    assert _writes(systems) == before
    with engine.rt.store.read() as s:
        (conflict,) = s.scalars(select(Conflict).where(Conflict.field == "phone")).all()
        assert conflict.winner_system == "fx"
        assert s.scalar(select(func.count()).select_from(NotifiedChange)) == 0


async def _then_the_next_fx_edit_is_written_over_it(engine, systems, rid, user, *, offset, monkeypatch):
    """Chaos seed 33: before the Zoho notification is processed, an Fxiaoke edit made ``offset`` from the
    Zoho edit is read and written to Zoho too: Zoho then holds our second write, not the one that overwrote.
    That write is decided well after the Zoho edit (seconds in the chaos run, ms here: the systems here
    share our clock, so no skew is allowed for)."""
    monkeypatch.setattr("sync_engine.notified.SKEW", timedelta(0))
    systems["fx"].user_update("AccountObj", rid, {"tel": "0755-fx-2"}, at=user.occurred_at + offset)
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])


async def test_an_overwritten_edit_comes_back_after_our_next_write_of_an_older_change(engine, systems, monkeypatch):
    rid, zid, eid, notices = await _raced(engine, systems, fx_at=utc_now() - timedelta(seconds=10))
    user, echo = notices
    await _then_the_next_fx_edit_is_written_over_it(engine, systems, rid, user, offset=-timedelta(seconds=1),
                                                  monkeypatch=monkeypatch)
    assert _phones(systems, rid, zid, eid) == ("0755-fx-2",) * 3, "the older Fxiaoke edit reached Zoho too"
    await engine.sync_hints("zoho", [echo, user])
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-zoho",) * 3, "latest_wins: the Zoho edit is the newest"
    with engine.rt.store.read() as s:
        assert s.scalar(select(func.count()).select_from(NotifiedChange)) == 0


async def test_an_overwritten_edit_older_than_our_next_write_stays_overwritten(engine, systems, monkeypatch):
    rid, zid, eid, notices = await _raced(engine, systems, fx_at=utc_now() - timedelta(seconds=10))
    user, echo = notices
    await _then_the_next_fx_edit_is_written_over_it(engine, systems, rid, user, offset=timedelta(seconds=1),
                                                  monkeypatch=monkeypatch)
    before = _writes(systems)
    await engine.sync_hints("zoho", [user, echo])
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-fx-2",) * 3
    assert _writes(systems) == before


async def test_a_delayed_notification_does_not_undo_a_newer_change(engine, systems):
    """The Zoho edit won; then an Fxiaoke user changed the phone again, and only then a delayed copy of the
    Zoho notification arrives: it must not bring the older value back."""
    fx = systems["fx"]
    rid, zid, eid, notices = await _raced(engine, systems)
    user, echo = notices
    await engine.sync_hints("zoho", [user])
    assert _phones(systems, rid, zid, eid) == ("0755-zoho",) * 3
    fx.user_update("AccountObj", rid, {"tel": "0755-fx-2"}, at=utc_now())
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert _phones(systems, rid, zid, eid) == ("0755-fx-2",) * 3
    before = _writes(systems)
    await engine.sync_hints("zoho", [user, echo])
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-fx-2",) * 3
    assert _writes(systems) == before


async def test_a_notification_of_an_edit_no_write_of_ours_overwrote_changes_nothing(engine, systems):
    """A Zoho edit made before our write was sent (our check read saw it) or merged normally: its
    notification, delayed past our write, is not taken for an overwritten edit."""
    fx, zoho = systems["fx"], systems["zoho"]
    rid, zid, eid = await _linked_company(engine, systems)
    old = utc_now() - timedelta(seconds=30)
    zoho.user_update("Accounts", zid, {"Phone": "0755-old"}, at=old)
    await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid])])
    assert _phones(systems, rid, zid, eid) == ("0755-old",) * 3
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"}, at=utc_now())
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert _phones(systems, rid, zid, eid) == ("0755-fx",) * 3
    before = _writes(systems)
    stale = ChangeHint("Accounts", [zid], "update", occurred_at=old, values={zid: {"Phone": "0755-old"}})
    await engine.sync_hints("zoho", [stale, stale])
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-fx",) * 3
    assert _writes(systems) == before
    with engine.rt.store.read() as s:
        assert not s.scalars(select(Conflict).where(Conflict.field == "phone")).all()
        assert s.scalar(select(func.count()).select_from(NotifiedChange)) == 0


async def test_a_notified_edit_survives_the_job_payload(engine, systems):
    """The webhook job keeps a hint as the intake stored it: the values and time come back with it."""
    at = utc_now()
    hint = ChangeHint("Accounts", ["42"], "update", occurred_at=at, values={"42": {"Phone": "0755-zoho"}})
    stored = asdict(hint) | {"occurred_at": at.isoformat()}  # as WebhookIntake.accept stores it
    assert hint_of(stored) == hint
    assert hint_of({"object": "Accounts", "ids": ["42"], "event": "update", "occurred_at": None}) == \
        ChangeHint("Accounts", ["42"], "update")


async def test_a_notification_weighed_after_a_newer_change_was_merged_does_not_undo_it(engine, systems):
    """Our write overwrote the Zoho edit; then a newer Fxiaoke edit was merged, its write to Zoho not sent
    yet (Zoho failing) when the notification is weighed: the newer change stays, everywhere."""
    from connectors.errors import TransientError

    fx, zoho = systems["fx"], systems["zoho"]
    rid, zid, eid, notices = await _raced(engine, systems)
    user, _ = notices
    fx.user_update("AccountObj", rid, {"tel": "0755-fx-2"}, at=utc_now() + timedelta(minutes=1))
    real_push = zoho.push

    async def zoho_down(object, ops):
        raise TransientError("zoho: HTTP 503", code="503")

    zoho.push = zoho_down
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    zoho.push = real_push
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-fx"  # the newer edit's write is still waiting
    await engine.sync_hints("zoho", [user])
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-fx-2",) * 3


async def test_a_notification_weighed_while_our_write_is_in_doubt_waits_for_it(engine, systems):
    """The worker died right after our write landed (its outcome unrecorded, the update in doubt) and the
    Zoho user's notification is processed before the update is settled: the notification is kept, and
    weighed once our update is done (recovery sends it again)."""
    fx, zoho = systems["fx"], systems["zoho"]
    rid, zid, eid = await _linked_company(engine, systems)
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    notices: list[ChangeHint] = []
    _user_edits_zoho_right_before_our_write(zoho, zid, "0755-zoho", notices)
    real_push = zoho.push  # the hook above

    class Killed(Exception):
        pass

    async def push_then_die(object, ops):
        await real_push(object, ops)
        raise Killed

    zoho.push = push_then_die
    try:
        await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    except Killed:
        pass
    zoho.push = type(zoho).push.__get__(zoho)
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-fx"
    user, _ = notices
    await engine.sync_hints("zoho", [user])
    with engine.rt.store.read() as s:
        assert s.scalar(select(func.count()).select_from(NotifiedChange)) == 1, "kept: our write is in doubt"
    with engine.rt.store.write() as s:  # the dead worker's sends are old enough for recovery
        s.execute(update(OutboxWrite).where(OutboxWrite.status == "sent").values(sent_at=utc_now() - timedelta(hours=1)))
    await engine.run_all()
    await engine.run_all()
    assert _phones(systems, rid, zid, eid) == ("0755-zoho",) * 3
