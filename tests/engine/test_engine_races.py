"""Races the chaos test (bench/chaos.py) found between users, webhook runs and passes on one record,
replayed here deterministically with the in-memory systems."""
from __future__ import annotations

import pytest

from connectors.base import ChangeHint
from connectors.errors import ConnectorError
from sync_engine.pull import stage_records
from sync_engine.state.types import utc_now


def _synced_company(systems):
    fx = systems["fx"]
    rid = fx.user_create("AccountObj", {"name": "深圳市恒通科技有限公司", "uscc": "91440300MA5F000001", "tel": "0755-1"})
    return rid


async def test_an_edit_made_just_before_our_write_still_syncs(engine, systems):
    """Our write returns the record's new modified time. The record then also holds a user's edit made
    just before the write, which crmsync has not read: that version must not count as already seen."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _synced_company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"tel": "0755-2"})

    real_push = zoho.push

    async def push_after_a_user_edit(object, ops):
        zoho.user_update("Accounts", zid, {"Account_Name": "深圳市恒通科技股份有限公司"})  # lands first
        zoho.push = real_push
        return await real_push(object, ops)

    zoho.push = push_after_a_user_edit
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-2"

    await engine.run_all()  # the next poll reads the Zoho record again
    assert fx.records("AccountObj")[rid]["name"] == "深圳市恒通科技股份有限公司"
    assert next(iter(erp.records("BD_Customer").values()))["FName"] == "深圳市恒通科技股份有限公司"


async def test_a_read_older_than_our_write_does_not_undo_it(engine, systems):
    """A webhook run reads and stages Fxiaoke's record; before it merges, another run (another
    worker) writes an ERP edit into Fxiaoke. The staged copy is older than that write: its old phone
    is no Fxiaoke edit and must not undo the ERP's."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _synced_company(systems)
    await engine.run_all()
    (eid,) = erp.records("BD_Customer")
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"name": "深圳市恒通科技股份有限公司"})  # what the webhook was about

    read_at = utc_now()
    (stale,) = await fx.fetch("AccountObj", [rid])
    erp.user_update("BD_Customer", eid, {"FTel": "0755-3"})
    await engine.sync_hints("erp", [ChangeHint("BD_Customer", [eid])])  # the other worker
    assert fx.records("AccountObj")[rid]["tel"] == "0755-3"
    with engine.rt.store.write() as session:  # staged before that write, as the first run did
        stage_records(session, "account", "fx", "AccountObj", [stale], origin="event", run_id=None, force=True,
                      fetched_at=read_at)
    real_pull = fx.pull
    fx.pull = fxiaoke_unreachable  # so the pass merges the staged copy, not a fresh one
    await engine.run_all()
    fx.pull = real_pull
    assert fx.records("AccountObj")[rid]["tel"] == "0755-3"
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-3"
    assert erp.records("BD_Customer")[eid]["FTel"] == "0755-3"
    # The Fxiaoke edit the older copy carried is news all the same, and is merged.
    assert zoho.records("Accounts")[zid]["Account_Name"] == "深圳市恒通科技股份有限公司"
    await engine.run_all()
    assert fx.records("AccountObj")[rid]["tel"] == "0755-3"


async def fxiaoke_unreachable(request):
    raise ConnectorError("fx: connection refused")
    yield  # an async generator, like every connector's pull


async def test_a_webhook_run_that_cannot_read_a_counterpart_writes_nothing_over_it(engine, systems):
    """An ERP edit arrives by webhook while Zoho, where a user just edited the same field, does not
    answer: writing the ERP's value into Zoho unread would erase the later Zoho edit for good."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _synced_company(systems)
    await engine.run_all()
    (eid,) = erp.records("BD_Customer")
    (zid,) = zoho.records("Accounts")
    erp.user_update("BD_Customer", eid, {"FTel": "0755-4"})
    zoho.user_update("Accounts", zid, {"Phone": "0755-5"})  # later

    real_fetch = zoho.fetch

    async def zoho_down(object, ids, fields=()):
        raise ConnectorError("zoho: 503 service unavailable")

    zoho.fetch = zoho_down
    with pytest.raises(ConnectorError):  # the job fails and is retried
        await engine.sync_hints("erp", [ChangeHint("BD_Customer", [eid])])
    zoho.fetch = real_fetch
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-5"
    await engine.sync_hints("erp", [ChangeHint("BD_Customer", [eid])])  # the retry
    await engine.run_all()
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-5"}


async def test_a_delete_cancels_a_create_not_sent_yet(engine, systems):
    """Created in Fxiaoke, copied to Zoho; the ERP copy waits (the ERP did not answer). The company is
    then deleted in Zoho: the waiting create must not bring it into the ERP."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    real_push = erp.push

    async def erp_down(object, ops):
        raise ConnectorError("erp: 503 service unavailable")

    erp.push = erp_down
    _synced_company(systems)
    await engine.run_all()
    assert erp.records("BD_Customer") == {} and len(zoho.records("Accounts")) == 1
    erp.push = real_push
    (zid,) = zoho.records("Accounts")
    zoho.user_delete("Accounts", zid)
    await engine.run_all()
    await engine.run_all()
    assert erp.records("BD_Customer") == {}
    assert fx.records("AccountObj") == {}


async def test_a_new_record_matching_one_whose_copy_there_was_deleted_waits_for_a_person(engine, systems):
    """Its link to the deleted copy still holds the record's one place in that system: linking the
    newcomer too broke the links' unique key, failing every pass and webhook job from then on."""
    from sqlalchemy import select

    from sync_engine.state.models import Review

    fx, zoho = systems["fx"], systems["zoho"]
    _synced_company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    zoho.user_delete("Accounts", zid)
    await engine.run_all()
    assert fx.records("AccountObj") == {}
    zoho.user_create("Accounts", {"Account_Name": "深圳市恒通科技有限公司", "Tax_ID": "91440300MA5F000001", "Phone": "1"})
    report = (await engine.run_all())[0]
    assert not any("IntegrityError" in e for e in report.errors), report.errors
    with engine.rt.store.read() as session:
        reviews = list(session.scalars(select(Review)))
    assert [r.kind for r in reviews] == ["match"]


async def test_a_users_edit_right_after_our_write_is_not_mistaken_for_an_old_read(engine, systems):
    """The read began before our write was recorded, but ran after it, and shows a user's newer
    edit of the field we wrote. That field is taken as we wrote it for now; the read must not count
    as seen, so the next read brings the user's edit."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _synced_company(systems)
    await engine.run_all()
    (eid,) = erp.records("BD_Customer")
    (zid,) = zoho.records("Accounts")
    read_at = utc_now()
    erp.user_update("BD_Customer", eid, {"FTel": "0755-6"})
    await engine.sync_hints("erp", [ChangeHint("BD_Customer", [eid])])  # our write into Fxiaoke
    fx.user_update("AccountObj", rid, {"tel": "0755-7"})  # the user's edit right after it
    (fresh,) = await fx.fetch("AccountObj", [rid])
    with engine.rt.store.write() as session:
        stage_records(session, "account", "fx", "AccountObj", [fresh], origin="event", run_id=None, force=True,
                      fetched_at=read_at)
    real_pull = fx.pull
    fx.pull = fxiaoke_unreachable
    await engine.run_all()
    fx.pull = real_pull
    await engine.run_all()
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-7"}


async def test_a_create_in_doubt_for_a_record_linked_there_meanwhile_is_not_sent_again(engine, systems):
    """A worker died with a Zoho create in doubt; the company was then linked to a Zoho record by
    matching. Recovery must not send the create again (a twin in Zoho)."""
    from datetime import timedelta

    from sqlalchemy import select

    from sync_engine import records as rec
    from sync_engine.state.models import Link

    zoho = systems["zoho"]
    _synced_company(systems)
    await engine.run_all()
    with engine.rt.store.write() as session:
        cid = session.scalar(select(Link.canonical_id).where(Link.system == "zoho"))
        row = rec.queue_write(session, entity="account", canonical_id=cid, system="zoho", object="Accounts",
                              action="create", external_id=None, values={"name": "深圳市恒通科技有限公司"},
                              flow="accounts", origin="poll", run_id=None)
        row.status, row.sent_at = "sent", utc_now() - timedelta(hours=1)
    await engine.run_all()
    assert len(zoho.records("Accounts")) == 1
