"""The Kingdee emulator answers FModifyDate windows from an index: the same rows as a scan of every record.

ExecuteBillQuery with ``FModifyDate >= x`` (the connector's incremental pull) used to test every record
of the form; it now reads the FModifyDate window of a sorted index and runs the same filter and sort on
it. These tests compare that answer with the brute-force scan (the filter over every record, in the
table's order) for many filters, orders and pages, on ties of one modified time, after edits, status
changes that move FModifyDate, deletes and a BatchSave rolled back.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from connectors.emulation.switches import Switches
from connectors.kingdee.emulator import DEFAULT_CREDENTIALS
from connectors.kingdee.emulator_forms import FORMS
from connectors.kingdee.emulator_index import FormTable
from connectors.kingdee.emulator_query import plan, run
from connectors.kingdee.emulator_store import KingdeeStore

FORM = FORMS["BD_Customer"]
KEYS = "FCUSTID,FNumber,FName,FModifyDate,FDocumentStatus"
T0 = datetime(2026, 3, 1, 9, 0, 0)


def brute(store: KingdeeStore, data: dict) -> list[list]:
    query = plan(store.resolver, {"FormId": "BD_Customer", "FieldKeys": KEYS, **data}, max_limit=10_000)
    return run(query, list(store.records["BD_Customer"].values()))


def indexed(store: KingdeeStore, data: dict) -> list[list]:
    return store.query({"FormId": "BD_Customer", "FieldKeys": KEYS, **data})


def at(moment: datetime) -> str:
    return f"2026-03-01T{moment:%H:%M:%S}+08:00"  # the emulator's zone (Asia/Shanghai): local = this


@pytest.fixture
def store() -> KingdeeStore:
    switches = Switches()
    store = KingdeeStore(DEFAULT_CREDENTIALS, switches)
    rng = random.Random(5)
    # 120 customers over 12 seconds, several per second and per millisecond (ties), saved out of time order.
    moments = [T0 + timedelta(seconds=rng.randrange(12), milliseconds=rng.choice([0, 0, 250, 500])) for _ in range(120)]
    for n, moment in enumerate(moments):
        switches.frozen_time = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+08:00"
        store.apply_model(FORM, {"FName": f"客户{n:03d}", "FCreateOrgId": {"FNumber": "100"},
                                 "FUseOrgId": {"FNumber": "100"}})
    switches.frozen_time = None
    return store


def literal(moment: datetime, rng: random.Random) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return rng.choice([f"'{text}'", f"{{ts'{text}'}}", f"'{text}.250'"])


def queries(rng: random.Random, n: int) -> list[dict]:
    orders = ["FModifyDate ASC,FCUSTID ASC", "FModifyDate ASC,FNumber ASC", "FModifyDate DESC", "FModifyDate ASC",
              "FNumber DESC", ""]
    out = []
    for _ in range(n):
        a = T0 + timedelta(seconds=rng.randrange(-1, 14))
        b = a + timedelta(seconds=rng.randrange(0, 6))
        filters = [
            f"FModifyDate >= {literal(a, rng)}",
            f"FModifyDate > {literal(a, rng)}",
            f"FModifyDate = {literal(a, rng)}",
            f"FModifyDate <= {literal(b, rng)}",
            f"FModifyDate < {literal(b, rng)}",
            f"FModifyDate BETWEEN {literal(a, rng)} AND {literal(b, rng)}",
            f"FModifyDate >= {literal(a, rng)} and FModifyDate < {literal(b, rng)}",
            f"(FDocumentStatus = 'A') and fmodifydate >= {literal(a, rng)}",
            f"FModifyDate >= {literal(a, rng)} and FName like '%1%'",
            f"FModifyDate >= {literal(a, rng)} or FName like '%7'",  # no window: every record
            f"not FModifyDate < {literal(a, rng)}",
            f"FModifyDate <> {literal(a, rng)}",
            f"FModifyDate >= {literal(b, rng)} and FModifyDate <= {literal(a, rng)}",  # empty when b > a
            "FModifyDate >= NULL",
        ]
        data = {"FilterString": rng.choice(filters), "OrderString": rng.choice(orders)}
        if rng.random() < 0.7:
            data["StartRow"] = rng.randrange(0, 30)
            data["Limit"] = rng.randrange(1, 25)
        if rng.random() < 0.2:
            data["TopRowCount"] = rng.randrange(1, 40)
        out.append(data)
    return out


def assert_same(store: KingdeeStore, seed: int, n: int = 150) -> None:
    for data in queries(random.Random(seed), n):
        assert indexed(store, data) == brute(store, data), data


def test_index_answers_like_the_scan_with_ties(store):
    assert isinstance(store.records["BD_Customer"], FormTable)
    stamps = [r["FModifyDate"] for r in store.records["BD_Customer"].values()]
    assert len(set(stamps)) < len(stamps) / 2  # many ties on one modified time
    assert_same(store, 1)


def test_index_follows_edits_deletes_status_changes_and_rollbacks(store):
    switches, table = store.switches, store.records["BD_Customer"]
    rng = random.Random(9)
    pks = list(table)
    # edits: some move later, some (a late commit with an older stamp) earlier, several onto the same instant
    for pk in rng.sample(pks, 30):
        moment = T0 + timedelta(seconds=rng.choice([-3, 2, 5, 20, 20]))
        switches.frozen_time = at(moment)
        store.apply_model(FORM, {"FCUSTID": pk, "FName": f"改{pk}"}, need=["FName"], as_admin=True)
    assert_same(store, 2)
    # deletes through the API (status A only) and the admin API
    deleted, failed = store.operate("Delete", "BD_Customer", {"Ids": ",".join(map(str, pks[:15]))})
    assert deleted and not failed
    store.admin_delete("BD_Customer", str(pks[20]))
    assert_same(store, 3)
    # a status change that moves FModifyDate in place
    switches.extra["status_bumps_modify_date"] = True
    switches.frozen_time = at(T0 + timedelta(seconds=30))
    done, _ = store.operate("Submit", "BD_Customer", {"Ids": ",".join(map(str, pks[30:40]))})
    assert len(done) == 10
    assert_same(store, 4)
    assert len(indexed(store, {"FilterString": "FModifyDate >= '2026-03-01 09:00:30'"})) == 10
    # a BatchSave rolled back: the records come back (at the end of the table's order) with their old times
    switches.extra["batch_all_or_nothing"] = True
    switches.frozen_time = at(T0 + timedelta(seconds=40))
    models = [{"FCUSTID": pk, "FName": "回滚"} for pk in pks[40:45]] + [{"FCUSTID": 999_999, "FName": "x"}]
    saved, failed = store.save("BD_Customer", {"Model": models, "NeedUpDateFields": ["FName"]}, batch=True)
    assert not saved and failed
    assert_same(store, 5)
    assert not indexed(store, {"FilterString": "FModifyDate >= '2026-03-01 09:00:40'"})
    # new records after all that
    switches.frozen_time = at(T0 + timedelta(seconds=6))
    for n in range(5):
        store.apply_model(FORM, {"FName": f"新{n}", "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"}})
    assert_same(store, 6)


def test_the_window_is_read_from_the_index_not_the_whole_table(store, monkeypatch):
    table = store.records["BD_Customer"]
    newest = max(r["FModifyDate"] for r in table.values())
    seen: list[int] = []
    real = FormTable.window

    def window(self, low, high):
        found = real(self, low, high)
        seen.append(len(found))
        return found

    monkeypatch.setattr(FormTable, "window", window)
    rows = indexed(store, {"FilterString": f"FModifyDate >= '{newest:%Y-%m-%d %H:%M:%S}'",
                           "OrderString": "FModifyDate ASC,FCUSTID ASC"})
    assert rows and seen and seen[0] < len(table) / 4  # only the last second's records were offered to the filter


def test_form_table_keeps_dict_behaviour():
    table = FormTable()
    table[3] = {"FModifyDate": T0 + timedelta(seconds=2)}
    table[1] = {"FModifyDate": T0}
    table[2] = {"FModifyDate": "not a date"}  # kept aside, always offered
    table[3] = {"FModifyDate": T0 + timedelta(seconds=1)}  # replaced: keeps its place in the order
    assert list(table) == [3, 1, 2]
    assert [pk for pk in table] == [3, 1, 2]
    got = table.window(T0 + timedelta(seconds=1), None)
    assert got == [table[3], table[2]]
    assert table.pop(1)["FModifyDate"] == T0 and table.pop(1, None) is None
    with pytest.raises(KeyError):
        table.pop(1)
    table.setdefault(5, {"FModifyDate": T0 + timedelta(seconds=9)})
    table.update({6: {"FModifyDate": T0 + timedelta(seconds=9)}})
    del table[3]
    assert list(table) == [2, 5, 6]
    assert table.window(T0 + timedelta(seconds=9), T0 + timedelta(seconds=9)) == [table[2], table[5], table[6]]
    table[5]["FModifyDate"] = T0  # in place: the index needs telling
    table.reindex(5)
    assert table.window(T0 + timedelta(seconds=9), None) == [table[2], table[6]]
    table.clear()
    assert not table and table.window(None, None) == []
