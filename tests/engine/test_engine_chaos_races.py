"""More races bench/chaos.py found (issue #10, chaos convergence), replayed deterministically with the
in-memory systems: each test fails without the engine change it is named after."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from connectors.base import ChangeHint
from connectors.errors import ConnectorError, TransientError
from sync_engine import records as rec
from sync_engine.state.models import Link, Review
from sync_engine.state.models.pipeline import OutboxWrite
from sync_engine.state.types import utc_now

from .memory import CLOCK, MemorySystem


def _company(systems, **extra):
    return systems["fx"].user_create(
        "AccountObj", {"name": "深圳市恒通科技有限公司", "uscc": "91440300MA5F000001", "tel": "0755-1", **extra})


def _lands_then_fails(system, error):
    """The target applies the batch, then the answer is lost (a 500 after the commit, a timeout)."""
    real_push = system.push

    async def push(object, ops):
        await real_push(object, ops)
        system.push = real_push
        raise error

    system.push = push


def _age_sends(engine):
    """The in-doubt writes become old enough for recovery (older than two leases)."""
    with engine.rt.store.write() as session:
        session.execute(update(OutboxWrite).where(OutboxWrite.status == "sent")
                        .values(sent_at=utc_now() - timedelta(hours=1)))


async def test_a_create_that_failed_in_flight_is_not_sent_again_by_a_webhook_run(engine, systems):
    """A create answered by a 500 may have landed. Sent again blindly (a webhook run pushes every
    pending write) it made a twin: it is in doubt instead, and recovery looks for it first."""
    fx, zoho = systems["fx"], systems["zoho"]
    rid = _company(systems)
    _lands_then_fails(zoho, TransientError("zoho: HTTP 500 Internal Server Error", code="INTERNAL_ERROR"))
    await engine.run_all()
    assert len(zoho.records("Accounts")) == 1  # it landed
    fx.user_update("AccountObj", rid, {"tel": "0755-2"})
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert len(zoho.records("Accounts")) == 1
    _age_sends(engine)
    await engine.run_all()
    await engine.run_all()
    (zoho_record,) = zoho.records("Accounts").values()
    assert zoho_record["Phone"] == "0755-2"


async def test_a_delete_read_while_a_create_is_in_doubt_reaches_the_created_copy(engine, systems):
    """The ERP create is in doubt when the company is deleted in Zoho: the delete cannot name the ERP
    copy yet. Found later by recovery, that copy must be deleted too."""
    zoho, erp = systems["zoho"], systems["erp"]
    _company(systems)
    _lands_then_fails(erp, TransientError("erp: HTTP 500", code="500"))
    await engine.run_all()
    assert len(erp.records("BD_Customer")) == 1
    (zid,) = zoho.records("Accounts")
    zoho.user_delete("Accounts", zid)
    real_pull = erp.pull

    def erp_unreadable(request):
        raise ConnectorError("erp: 503 service unavailable")

    erp.pull = erp_unreadable  # nor is the ERP copy found by matching in this pass
    await engine.run_all()  # the delete is read and propagated; the ERP create is still in doubt
    erp.pull = real_pull
    _age_sends(engine)
    await engine.run_all()  # recovery finds the ERP copy
    await engine.run_all()
    assert erp.records("BD_Customer") == {}
    assert systems["fx"].records("AccountObj") == {}


async def test_an_update_in_doubt_is_resent_with_the_values_of_now(engine, systems):
    """A worker died while sending an update; recovered a minute later, the update was resent as it
    was, undoing the changes synced meanwhile (and the next read spread the old value everywhere)."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (eid,) = erp.records("BD_Customer")
    (zid,) = zoho.records("Accounts")
    with engine.rt.store.write() as session:
        cid = session.scalar(select(Link.canonical_id).where(Link.system == "erp"))
        row = rec.queue_write(session, entity="account", canonical_id=cid, system="erp", object="BD_Customer",
                              action="update", external_id=eid, values={"phone": "0755-old"}, flow="accounts",
                              origin="poll", run_id=None)
        row.status, row.sent_at = "sent", utc_now()
    fx.user_update("AccountObj", rid, {"tel": "0755-new"})
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert erp.records("BD_Customer")[eid]["FTel"] == "0755-new"
    sent: list[dict] = []
    real_push = erp.push

    async def recording_push(object, ops):
        sent.extend(op.data for op in ops)
        return await real_push(object, ops)

    erp.push = recording_push
    _age_sends(engine)
    await engine.run_all()
    await engine.run_all()
    assert all(data.get("FTel") != "0755-old" for data in sent), sent
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-new"}


async def test_an_edit_made_between_our_read_and_our_write_is_not_overwritten(engine, systems):
    """Zoho is read, a user edits the phone there, then crmsync writes Fxiaoke's older phone edit into
    Zoho: no API offers a conditional write, so the target is read again right before the write."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    (eid,) = erp.records("BD_Customer")
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    real_fetch = zoho.fetch

    async def fetch_then_user_edits(object, ids, fields=()):
        records = await real_fetch(object, ids, fields)
        zoho.fetch = real_fetch
        zoho.user_update("Accounts", zid, {"Phone": "0755-zoho"})  # after our read, before our write
        return records

    zoho.fetch = fetch_then_user_edits
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-zoho"
    await engine.run_all()
    await engine.run_all()
    # latest_wins: the Zoho edit is the later one
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-zoho"}


async def test_an_edit_made_while_our_write_waits_for_its_turn_is_not_overwritten(engine, systems):
    """The target was read again before the write, then the write waited for its turn in the connector
    (a concurrency slot, a rate-limit permit: 0.2–3 s under load in bench/chaos.py) and a user's edit of
    the same field landing meanwhile was overwritten. The re-read happens once the call has its turn
    (Connector.push_checked); the update is withdrawn and the edit weighed by policy."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    (eid,) = erp.records("BD_Customer")
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})

    def user_edits_while_we_wait():
        zoho.while_waiting = None
        zoho.user_update("Accounts", zid, {"Phone": "0755-zoho"})

    zoho.while_waiting = user_edits_while_we_wait
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.while_waiting is None  # the write did wait
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-zoho"
    await engine.run_all()
    await engine.run_all()
    # latest_wins: the Zoho edit is the later one
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-zoho"}


async def test_the_read_right_before_an_update_is_retried_though_the_update_is_not(engine, systems):
    """The check before an update runs inside the update's single attempt (single_attempt); its read used
    to be tried once too, so a transient failure of the read (one call in five in bench/chaos.py) put the
    update off to a later pass. A read overwrites nothing: it is retried, the update goes out now."""
    from connectors.http import RetryPolicy, with_retries

    fx, zoho = systems["fx"], systems["zoho"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    real_fetch = zoho.fetch
    failures = []

    async def fetch_failing_once(object, ids, fields=()):
        tries = []

        async def attempt():
            tries.append(True)
            if len(tries) == 1:  # each read fails once
                failures.append(True)
                raise TransientError("zoho: HTTP 503", code="503")
            return await real_fetch(object, ids, fields)

        # as the real connectors do: transient failures are retried after a backoff
        return await with_retries(attempt, RetryPolicy(base_seconds=0.001, cap_seconds=0.001))

    zoho.fetch = fetch_failing_once
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert failures
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-fx"


async def test_nothing_but_the_comparison_sits_between_the_last_read_and_the_update(engine, systems):
    """Every edit landing between the check's read of the target and our write is overwritten: under load
    (bench/chaos.py, load 8) the queries made after that read (snapshots, records, reviews) were enough
    for a user's edit to land there. They are made before the read; an update sent costs no query after it."""
    from sqlalchemy import event

    fx, zoho = systems["fx"], systems["zoho"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    real_fetch, real_push = zoho.fetch, zoho.push
    since_read: list[str] = []
    at_write: list[list[str]] = []

    async def fetch(object, ids, fields=()):
        records = await real_fetch(object, ids, fields)
        since_read.clear()
        return records

    async def push(object, ops):
        if any(op.action == "update" for op in ops):
            at_write.append(list(since_read))
        return await real_push(object, ops)

    def count(conn, cursor, statement, *args):
        since_read.append(statement.split()[0])

    zoho.fetch, zoho.push = fetch, push
    db = engine.rt.store.engine
    event.listen(db, "before_cursor_execute", count)
    try:
        await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    finally:
        event.remove(db, "before_cursor_execute", count)
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-fx"
    assert at_write == [[]]


async def test_an_update_waiting_when_the_record_is_deleted_is_not_sent(engine, systems):
    """An ERP update put off by an outage was still pending when the company was deleted in Fxiaoke. Sent
    after that delete had reached the ERP (another worker), it failed: a dead letter for a record that is
    meant to be gone (chaos, seeds 7 and 11). The check drops an update of a record deleted since."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    real_push = erp.push

    async def outage(object, ops):
        erp.push = real_push
        raise ConnectorError("erp: 503 service unavailable")

    erp.push = outage
    zoho.user_update("Accounts", zid, {"Phone": "0755-zoho"})
    await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid])])
    with engine.rt.store.read() as session:
        waiting = session.scalars(select(OutboxWrite).where(OutboxWrite.system == "erp",
                                                            OutboxWrite.action == "update")).all()
        assert [w.status for w in waiting] == ["pending"]
    updates = erp.writes["update"]
    fx.user_delete("AccountObj", rid)
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid], "delete")])
    assert erp.records("BD_Customer") == {}
    assert erp.writes["update"] == updates  # not sent to a record being deleted
    with engine.rt.store.read() as session:
        assert session.get(OutboxWrite, waiting[0].id).status == "superseded"


async def test_an_older_edit_merged_after_a_newer_one_does_not_win(engine, systems):
    """Fxiaoke's phone edit is older than the ERP's, but is merged after it, while our write of the ERP's
    value into Fxiaoke is still on its way: its change starts from an older value than the base, so it is
    weighed against the change that set the base (latest_wins), not taken as the only change."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (eid,) = erp.records("BD_Customer")
    (zid,) = zoho.records("Accounts")
    (before,) = await fx.fetch("AccountObj", [rid])
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})  # the older edit
    erp.user_update("BD_Customer", eid, {"FTel": "0755-erp"})  # the newer one
    real_fetch, real_push = fx.fetch, fx.push

    async def fetch_before_the_edit(object, ids, fields=()):
        return [before]  # this run read Fxiaoke just before its user's edit

    async def fx_down(object, ops):
        raise ConnectorError("fx: 503 service unavailable")

    fx.fetch, fx.push = fetch_before_the_edit, fx_down
    await engine.sync_hints("erp", [ChangeHint("BD_Customer", [eid])])
    fx.fetch, fx.push = real_fetch, real_push
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-erp"
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    await engine.run_all()
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-erp"}


async def test_the_record_our_create_in_doubt_made_keeps_its_users_edit(engine, systems):
    """Our Zoho create got a 500 but landed; a user edited that record before crmsync linked it by
    matching. What we sent is what it held: only the user's edit is a change, and it syncs (instead of
    a first-sight disagreement held for review under the manual policy)."""
    fx, zoho = systems["fx"], systems["zoho"]
    rid = _company(systems, industry="制造")
    _lands_then_fails(zoho, TransientError("zoho: HTTP 500 Internal Server Error", code="INTERNAL_ERROR"))
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    CLOCK.tick()
    zoho.user_update("Accounts", zid, {"Industry": "软件"})
    await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid], "create")])
    assert fx.records("AccountObj")[rid]["industry"] == "软件"
    with engine.rt.store.read() as session:
        assert list(session.scalars(select(Review))) == []


async def _zoho_create_lands_unanswered(engine, systems, **company) -> str:
    """A company whose Zoho create lands but is answered with a 500 (Zoho's tombstones show the name only)."""
    zoho = systems["zoho"]
    zoho.tombstone_fields = ("Account_Name",)
    _company(systems, **company)
    _lands_then_fails(zoho, TransientError("zoho: HTTP 500 Internal Server Error", code="INTERNAL_ERROR"))
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    return zid


async def _user_deletes_it_before_we_read_it(engine, zoho, zid) -> None:
    """A Zoho user deletes that copy; recovery then looks for the create in doubt, over two passes."""
    zoho.user_delete("Accounts", zid)
    _age_sends(engine)
    await engine.run_all()
    await engine.run_all()


async def test_a_create_that_landed_and_was_deleted_before_we_read_it_is_not_made_again(engine, systems):
    """Our Zoho create got a 500 but landed; a user deleted that record before crmsync ever read it.
    Recovery finds it among the deleted (Zoho's deleted list keeps its name): the company was deleted
    in Zoho, so it goes everywhere, instead of being created in Zoho once more."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    zid = await _zoho_create_lands_unanswered(engine, systems)
    await _user_deletes_it_before_we_read_it(engine, zoho, zid)
    assert zoho.records("Accounts") == {}
    assert fx.records("AccountObj") == {} and erp.records("BD_Customer") == {}


async def test_a_create_deleted_before_we_read_it_is_found_though_the_cursor_moved_past_the_delete(
        engine, systems):
    """As above, but passes read Zoho past the delete before recovery looked (the tombstone of a record
    not linked yet is nothing to them). Recovery looked from where the last read ended only: the delete
    was not found, the create was sent again, and the company deleted in Zoho lived on everywhere with a
    new Zoho copy (chaos, seeds 6 and 8: "deleted in zoho, still in ['erp', 'fx', 'zoho']")."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    zoho.tombstone_fields = ("Account_Name",)
    _company(systems)
    _lands_then_fails(zoho, TransientError("zoho: HTTP 500 Internal Server Error", code="INTERNAL_ERROR"))
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    zoho.user_delete("Accounts", zid)
    CLOCK.now += timedelta(minutes=50)  # later, another company changes in Zoho: the cursor moves past the delete
    zoho.user_create("Accounts", {"Account_Name": "深圳市另一家科技有限公司", "Unified_Social_Credit_Code": "91440300MA5F000002"})
    await engine.run_all()
    _age_sends(engine)  # in doubt for an hour: as long as the systems' clocks moved, and more
    with engine.rt.store.write() as session:
        session.execute(update(OutboxWrite).where(OutboxWrite.status == "sent")
                        .values(created_at=utc_now() - timedelta(hours=1)))
    await engine.run_all()
    await engine.run_all()
    left = [r["Account_Name"] for r in zoho.records("Accounts").values()]
    assert left == ["深圳市另一家科技有限公司"]
    assert [r["name"] for r in fx.records("AccountObj").values()] == left
    assert [r["FName"] for r in erp.records("BD_Customer").values()] == left


async def test_an_update_for_a_record_deleted_there_meanwhile_brings_the_delete_instead(engine, systems):
    """A user deleted the company in Zoho after our read and before our update: the update would fail
    (a dead letter); the re-read before writing sees the delete, and the delete propagates."""
    from sync_engine.state.models import DeadLetter

    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"tel": "0755-2"})
    real_fetch = zoho.fetch

    async def fetch_then_user_deletes(object, ids, fields=()):
        records = await real_fetch(object, ids, fields)
        zoho.fetch = real_fetch
        zoho.user_delete("Accounts", zid)
        return records

    zoho.fetch = fetch_then_user_deletes
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    await engine.run_all()
    assert fx.records("AccountObj") == {} and erp.records("BD_Customer") == {}
    with engine.rt.store.read() as session:
        assert list(session.scalars(select(DeadLetter))) == []


async def test_an_update_decided_before_a_newer_merge_is_not_sent(engine, systems):
    """The update was decided, then (before it went out) another run merged the target's own edit of
    that field into a review: the target's snapshot already shows the edit, so the re-read sees nothing
    new, yet the update would overwrite the edit a person is now deciding about."""
    fx, zoho = systems["fx"], systems["zoho"]
    rid = _company(systems, industry="制造")
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"industry": "软件"})
    real_fetch = zoho.fetch
    state = {"calls": 0}

    async def fetch_then_another_run_merges(object, ids, fields=()):
        state["calls"] += 1
        if state["calls"] == 2:  # the re-read right before the write
            zoho.fetch = real_fetch
            zoho.user_update("Accounts", zid, {"Industry": "教育"})
            await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid])])  # another worker's run
        return await real_fetch(object, ids, fields)

    zoho.fetch = fetch_then_another_run_merges
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.records("Accounts")[zid]["Industry"] == "教育"
    with engine.rt.store.read() as session:
        assert [r.kind for r in session.scalars(select(Review))] == ["conflict"]


async def test_a_copy_matched_to_a_record_deleted_meanwhile_is_deleted_too(engine, systems):
    """Our Zoho create was in doubt when the company was deleted in Fxiaoke; the Zoho copy, read later,
    matches the deleted record: the delete must reach it, not leave it behind alone in Zoho."""
    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    _lands_then_fails(zoho, TransientError("zoho: HTTP 500 Internal Server Error", code="INTERNAL_ERROR"))
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_delete("AccountObj", rid)
    real_pull = zoho.pull

    def zoho_unreadable(request):
        raise ConnectorError("zoho: 503 service unavailable")

    zoho.pull = zoho_unreadable
    await engine.run_all()  # the delete is read and reaches the ERP; the Zoho copy is not known yet
    zoho.pull = real_pull
    assert erp.records("BD_Customer") == {}
    await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid], "create")])
    assert zoho.records("Accounts") == {}


async def test_a_slow_send_of_a_live_worker_is_not_taken_for_lost(engine, systems):
    """On a loaded machine a send can outlast recovery's wait. While the worker running it still holds
    its job, the create is not looked for (not landed yet, it was not found and sent again: a twin)."""
    from sync_engine.state.models import Job, Run
    from sync_engine.state.models.enums import JobStatus, RunKind, RunStatus

    zoho = systems["zoho"]
    _company(systems)
    await engine.run_all()
    with engine.rt.store.write() as session:
        cid = session.scalar(select(Link.canonical_id).where(Link.system == "fx"))
        session.execute(Link.__table__.delete().where(Link.system == "zoho"))
        job = Job(kind="webhook", payload={}, status=JobStatus.RUNNING, lease_expires_at=utc_now() + timedelta(minutes=5))
        session.add(job)
        session.flush()
        run = Run(flow="accounts", kind=RunKind.WEBHOOK, status=RunStatus.RUNNING, stats={}, job_id=job.id)
        session.add(run)
        session.flush()
        row = rec.queue_write(session, entity="account", canonical_id=cid, system="zoho", object="Accounts",
                              action="create", external_id=None, values={"name": "深圳市恒通科技有限公司"},
                              flow="accounts", origin="event", run_id=run.id)
        row.status, row.sent_at = "sent", utc_now() - timedelta(hours=1)
        zoho.objects["Accounts"].clear()  # the slow send has not landed yet
        zoho.modified.clear()
    await engine.run_all()
    assert zoho.records("Accounts") == {}
    with engine.rt.store.read() as session:
        assert session.scalar(select(OutboxWrite.status).where(OutboxWrite.system == "zoho",
                                                               OutboxWrite.status == "sent")) == "sent"


async def test_an_update_is_not_replayed_over_an_edit_made_while_its_call_failed(engine, systems):
    """The update was checked against Zoho right before the call, but the call failed (a 503) and the
    connector replayed it after a backoff: a user's edit made in that backoff was overwritten (seen in
    Fxiaoke, seed 3). An update is tried once; failed, it is read again before it is sent again."""
    from connectors.http import RetryPolicy, with_retries

    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    (eid,) = erp.records("BD_Customer")
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
    real_push = zoho.push

    async def push_with_retries(object, ops):
        failed = []

        async def attempt():
            if any(op.action == "update" for op in ops) and not failed:
                failed.append(True)
                zoho.user_update("Accounts", zid, {"Phone": "0755-zoho"})  # while our call fails
                raise TransientError("zoho: HTTP 503", code="503")
            return await real_push(object, ops)

        # as the real connectors do: transient failures are retried after a backoff
        return await with_retries(attempt, RetryPolicy(base_seconds=0.001, cap_seconds=0.001))

    zoho.push = push_with_retries
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    assert zoho.records("Accounts")[zid]["Phone"] == "0755-zoho"
    zoho.push = real_push
    await engine.run_all()
    await engine.run_all()
    # latest_wins: the Zoho edit is the later one
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-zoho"}


async def test_an_edit_of_our_copy_in_doubt_does_not_silently_undo_a_later_edit(engine, systems):
    """Our Zoho create landed in doubt; a user edited that copy, then another user made a later edit of
    the same field in Fxiaoke, synced first. Matched at last, the copy's edit (from what we sent) was
    merged as the only change and undid the later one without a conflict (chaos, seed 5): under the
    manual policy it goes to a person."""
    fx, zoho = systems["fx"], systems["zoho"]
    rid = _company(systems, industry="制造")
    _lands_then_fails(zoho, TransientError("zoho: HTTP 500 Internal Server Error", code="INTERNAL_ERROR"))
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    zoho.user_update("Accounts", zid, {"Industry": "软件"})  # our copy, not linked yet
    fx.user_update("AccountObj", rid, {"industry": "电子"})  # later, and read first
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid], "create")])
    assert fx.records("AccountObj")[rid]["industry"] == "电子"
    with engine.rt.store.read() as session:
        reviews = list(session.scalars(select(Review)))
    assert [(r.details or {}).get("field") for r in reviews] == ["industry"]


async def test_our_update_read_back_before_its_outcome_is_not_an_edit_of_that_system(engine, systems):
    """Our update to the ERP landed late (after a newer Fxiaoke edit) and its answer was lost. The ERP,
    read before the outcome was recorded, showed the value we had sent, newer by its modified time:
    taken for the ERP's own edit it undid the Fxiaoke edit everywhere (chaos, seed 5). It is our echo."""
    from connectors.errors import RateLimited

    fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
    rid = _company(systems)
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    (eid,) = erp.records("BD_Customer")
    real_push = erp.push

    async def lands_late_then_fails(object, ops):
        await real_push(object, ops)
        erp.modified[(object, eid)] += timedelta(minutes=5)  # it landed late: after the Fxiaoke edit below
        raise TransientError("erp: timed out", code="timeout")

    async def refused(object, ops):
        raise RateLimited("erp: call limit reached", code="14")

    erp.push = lands_late_then_fails
    zoho.user_update("Accounts", zid, {"Phone": "0755-zoho"})
    await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid])])
    assert erp.records("BD_Customer")[eid]["FTel"] == "0755-zoho"  # landed, answer lost
    erp.push = refused
    fx.user_update("AccountObj", rid, {"tel": "0755-fx"})  # the last edit
    await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
    await engine.sync_hints("erp", [ChangeHint("BD_Customer", [eid])])  # reads our late write back
    erp.push = real_push
    await engine.run_all()
    await engine.run_all()
    assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
            erp.records("BD_Customer")[eid]["FTel"]} == {"0755-fx"}


async def test_a_create_sent_after_another_run_linked_a_copy_leaves_no_twin(engine, systems):
    """Long chaos run, seed 11: run A claimed a pending Fxiaoke create; run B then matched a copy already
    in Fxiaoke by its tax id, linked it and superseded the create row; A's call went out anyway 0.8 s
    later and made a second copy, unlinked: a record deleted later was deleted everywhere but there.
    The copy A made is deleted; the link keeps the copy B matched."""
    fx, zoho = systems["fx"], systems["zoho"]
    zoho.user_create("Accounts", {"Account_Name": "深圳市恒通科技有限公司", "Tax_ID": "91440300MA5F000002",
                                  "Phone": "0755-1"})
    found = []

    def another_run_links_a_copy():
        fx.while_waiting = None
        copy = fx.user_create("AccountObj", {"name": "深圳市恒通科技有限公司", "uscc": "91440300MA5F000002",
                                             "tel": "0755-1"})
        with engine.rt.store.write() as session:
            (cid,) = session.scalars(select(OutboxWrite.canonical_id).where(
                OutboxWrite.system == "fx", OutboxWrite.action == "create"))
            session.add(Link(entity="account", canonical_id=cid, system="fx", object="AccountObj",
                             external_id=copy, status="active"))
            session.execute(update(OutboxWrite).where(OutboxWrite.system == "fx", OutboxWrite.action == "create")
                            .values(status="superseded"))
        found.append(copy)

    fx.while_waiting = another_run_links_a_copy
    await engine.run_all()
    assert found, "the create waited for its turn"
    await engine.run_all()  # the twin's delete goes out
    assert list(fx.records("AccountObj")) == found
    with engine.rt.store.read() as session:
        links = session.scalars(select(Link).where(Link.system == "fx")).all()
        assert [(link.external_id, link.status) for link in links] == [(found[0], "active")]
    # A later delete in Zoho reaches the one copy there is.
    (zid,) = zoho.records("Accounts")
    zoho.user_delete("Accounts", zid)
    await engine.run_all()
    await engine.run_all()
    assert fx.records("AccountObj") == {}


async def test_a_tombstone_is_matched_on_what_it_shows_not_on_a_transformed_field_it_lacks(memory_plugin, tmp_path):
    """As in the test above, but Zoho maps a field through a read transform (bench/chaos.py: the website,
    normalize_domain). A tombstone carries the name only; mapped, the transform still gave the website,
    as None, and recovery compared it with the website we sent: no match, the create was sent again and
    the company deleted in Zoho lived on everywhere (chaos, seed 13: "deleted in zoho, still in
    ['erp', 'fx', 'zoho']")."""
    from .conftest import THREE_SYSTEMS, engine_for

    text = (THREE_SYSTEMS
            .replace("fields: {name: name, tax_id: uscc,", "fields: {name: name, tax_id: uscc, domain: url,")
            .replace("fields: {name: Account_Name, tax_id: Tax_ID,",
                     "fields: {name: Account_Name, tax_id: Tax_ID,"
                     " domain: {field: Website, transform: {read: \"normalize_domain(value)\"}},"))
    assert "domain: url" in text and "Website" in text
    async with engine_for(text, f"sqlite:///{tmp_path / 'state.db'}") as engine:
        systems = MemorySystem.instances
        fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
        zid = await _zoho_create_lands_unanswered(engine, systems, url="hengtong.example.cn")
        assert zoho.records("Accounts")[zid]["Website"] == "hengtong.example.cn"
        await _user_deletes_it_before_we_read_it(engine, zoho, zid)
        assert zoho.records("Accounts") == {}
        assert fx.records("AccountObj") == {} and erp.records("BD_Customer") == {}


async def test_an_update_that_landed_unbeknown_and_was_superseded_is_no_edit_of_the_target(memory_plugin, tmp_path):
    """Our ERP update landed but its answer was lost (the long chaos run: a BatchSave landed, the next call of
    the same push hit the call limit, and the whole push was put back as pending). A later edit elsewhere
    superseded that update before it was resent. Read back, the value that landed was taken for the ERP's own
    edit and, the ERP being the field's source of truth, it won over the later edit everywhere (seed 11,
    10,000 ops: a Fxiaoke address edit lost). An update sent since that system was last read may have
    landed: its values read back are our echo, superseded or not."""
    from .conftest import THREE_SYSTEMS, engine_for

    text = THREE_SYSTEMS.replace("      credit_limit: {source_of_truth: erp}\n",
                                 "      credit_limit: {source_of_truth: erp}\n      phone: {source_of_truth: erp}\n")
    assert "phone: {source_of_truth: erp}" in text
    async with engine_for(text, f"sqlite:///{tmp_path / 'state.db'}") as engine:
        systems = MemorySystem.instances
        fx, zoho, erp = systems["fx"], systems["zoho"], systems["erp"]
        rid = _company(systems)
        await engine.run_all()
        (zid,) = zoho.records("Accounts")
        (eid,) = erp.records("BD_Customer")
        (before,) = await erp.fetch("BD_Customer", [eid])
        fx.user_update("AccountObj", rid, {"tel": "0755-fx"})
        _lands_then_fails(erp, TransientError("erp: BatchSave: call limit reached", code="MsgCode 14"))
        await engine.sync_hints("fx", [ChangeHint("AccountObj", [rid])])
        assert erp.records("BD_Customer")[eid]["FTel"] == "0755-fx"  # it landed; we do not know it
        CLOCK.tick()
        zoho.user_update("Accounts", zid, {"Phone": "0755-zoho"})  # the later edit
        real_fetch, real_push = erp.fetch, erp.push

        async def read_before_the_landing(object, ids, fields=()):
            return [before]

        async def erp_down(object, ops):
            raise ConnectorError("erp: 503 service unavailable")

        # This run read the ERP before our update landed there (another worker's read, long in coming);
        # the ERP update it decides anew supersedes the one in doubt, and is put off.
        erp.fetch, erp.push = read_before_the_landing, erp_down
        await engine.sync_hints("zoho", [ChangeHint("Accounts", [zid])])
        erp.fetch, erp.push = real_fetch, real_push
        with engine.rt.store.read() as session:
            assert sorted(r.status for r in session.scalars(select(OutboxWrite).where(
                OutboxWrite.system == "erp", OutboxWrite.action == "update"))) == ["pending", "superseded"]
        await engine.run_all()
        await engine.run_all()
        assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
                erp.records("BD_Customer")[eid]["FTel"]} == {"0755-zoho"}

        # Long after the attempt (reads that began well after it have been merged), an ERP user setting the
        # phone back to the value that attempt carried is the ERP's own edit, not our echo: it reaches everyone.
        with engine.rt.store.write() as session:
            assert session.scalar(select(OutboxWrite.id).where(OutboxWrite.status == "superseded",
                                                               OutboxWrite.attempts > 0)) is not None
            session.execute(update(OutboxWrite).where(OutboxWrite.status == "superseded")
                            .values(sent_at=utc_now() - timedelta(hours=1)))
        CLOCK.tick()
        erp.user_update("BD_Customer", eid, {"FTel": "0755-fx"})
        await engine.run_all()
        await engine.run_all()
        assert {fx.records("AccountObj")[rid]["tel"], zoho.records("Accounts")[zid]["Phone"],
                erp.records("BD_Customer")[eid]["FTel"]} == {"0755-fx"}
