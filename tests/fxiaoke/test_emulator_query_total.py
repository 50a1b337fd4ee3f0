"""The emulator's counted query: the page and total are the scan's, and a full walk does not rescan the table per page."""
from __future__ import annotations

import random

from connectors.fxiaoke.emulator_query import Filter, Order, Table, matches


def _flt(field: str, op: str, *values: str) -> Filter:
    return Filter(field, op, tuple(values))


def _table(n: int, rng: random.Random) -> Table:
    table = Table()
    table.load([
        {"_id": f"6a{i:022x}", "last_modified_time": 1_700_000_000_000 + rng.randrange(40),
         "life_status": rng.choice(["normal", "normal", "invalid"]), "name": f"客户{i}"}
        for i in range(n)
    ])
    return table


def _not_invalid(record):
    return record.get("life_status") != "invalid"


def _scan_total(table: Table, filters: list[Filter], visible) -> int:
    return sum(1 for r in table.records.values() if visible(r) and all(matches(r, f) for f in filters))


def test_counted_totals_equal_a_scan_through_changes():
    rng = random.Random(7)
    table = _table(600, rng)
    ids = sorted(table.records)
    for step in range(200):
        t = str(1_700_000_000_000 + rng.randrange(42))
        at = rng.choice(ids)
        filters = rng.choice([
            [_flt("life_status", "N", "invalid"), _flt("_id", "GT", at)],
            [_flt("_id", "GTE", at), _flt("_id", "LT", rng.choice(ids))],
            [_flt("life_status", "N", "invalid"), _flt("last_modified_time", "GTE", t)],
            [_flt("last_modified_time", "EQ", t), _flt("_id", "GT", at)],
            [_flt("last_modified_time", "GT", t), _flt("name", "LIKE", "1")],
            [_flt("_id", "IN", at, rng.choice(ids))],  # not a range: the scan decides
            [_flt("last_modified_time", "GTE", t + ".5")],  # not a whole number: the scan decides
        ])
        orders = rng.choice([[Order("_id", True)], [Order("_id", False)],
                             [Order("last_modified_time", True), Order("_id", True)]])
        visible = rng.choice([_not_invalid, lambda _r: True])
        offset = rng.choice([0, 0, 50, 100, 250])
        page, total = table.query(filters, orders, offset=offset, limit=50, count_total=True, visible=visible)
        assert total == _scan_total(table, filters, visible), (step, filters, orders)
        # the page is the one the uncounted query (a plain scan in index order) gives
        scanned, _ = table.query(filters, orders, offset=offset, limit=50, count_total=False, visible=visible)
        assert [r["_id"] for r in page] == [r["_id"] for r in scanned], (step, filters, orders, offset)
        assert len(page) == max(0, min(50, total - offset))
        if step % 3 == 0:  # change the table between queries: no stale total
            rid = rng.choice(ids)
            record = dict(table.records[rid])
            record["life_status"] = "invalid" if record["life_status"] == "normal" else "normal"
            record["last_modified_time"] += rng.randrange(3)
            table.put(record)
        if step % 17 == 0:
            gone = rng.choice(ids)
            table.remove(gone)
            ids.remove(gone)


def test_a_counted_walk_reads_each_record_a_bounded_number_of_times():
    """Keyset pages of 100 with a total each (the connector's full pull): without a cached
    count each page rescans the rest of the table, n²/200 record checks in all."""
    table = _table(5000, random.Random(3))
    checks = 0

    def visible(record):
        nonlocal checks
        checks += 1
        return _not_invalid(record)

    after, seen, totals = None, 0, []
    while True:
        filters = [_flt("life_status", "N", "invalid")] + ([_flt("_id", "GT", after)] if after else [])
        page, total = table.query(filters, [Order("_id", True)], offset=0, limit=100, count_total=True, visible=visible)
        totals.append(total)
        seen += len(page)
        if len(page) < 100 or total <= len(page):
            break
        after = page[-1]["_id"]
    live = sum(1 for r in table.records.values() if _not_invalid(r))
    assert seen == live and totals[0] == live
    assert checks <= 3 * len(table), checks


def test_writes_between_counted_queries_move_the_cached_keys_instead_of_a_rescan():
    """An incremental pull after users edited a few records: the counted query's cached keys follow
    each write (ties on one modified time, moves back and forth, invalidation, removal) and the
    answers stay the scan's, without checking the whole table again."""
    rng = random.Random(11)
    table = _table(3000, rng)
    checks = 0

    def visible(record):
        nonlocal checks
        checks += 1
        return _not_invalid(record)

    since = 1_700_000_000_000 + 30

    def counted(filters, orders, offset=0):
        return table.query(filters, orders, offset=offset, limit=100, count_total=True, visible=visible)

    walks = [
        ([_flt("life_status", "N", "invalid"), _flt("last_modified_time", "GTE", str(since))],
         [Order("last_modified_time", True), Order("_id", True)]),
        ([_flt("life_status", "EQ", "invalid"), _flt("last_modified_time", "GT", str(since))],
         [Order("last_modified_time", True), Order("_id", True)]),
        ([_flt("life_status", "N", "invalid"), _flt("_id", "GT", sorted(table.records)[1500])], [Order("_id", True)]),
    ]
    for filters, orders in walks:
        counted(filters, orders)
    checks = 0
    ids = sorted(table.records)
    for round_ in range(30):
        for rid in rng.sample(ids, 5):
            record = dict(table.records[rid])
            record["last_modified_time"] = rng.choice([since, since, since + 1, since - 5, since + 50 + round_])
            if rng.random() < 0.3:
                record["life_status"] = "invalid" if record["life_status"] == "normal" else "normal"
            table.put(record)
        if round_ % 5 == 0:
            gone = rng.choice(ids)
            table.remove(gone)
            ids.remove(gone)
        if round_ % 7 == 0:
            new = f"6b{round_:022x}"
            table.put({"_id": new, "last_modified_time": since, "life_status": "normal", "name": "新"})
            ids.append(new)
        for filters, orders in walks:
            for offset in (0, 100):
                page, total = counted(filters, orders, offset)
                assert total == _scan_total(table, filters, _not_invalid), (round_, filters)
                scanned, _ = table.query(filters, orders, offset=offset, limit=100, count_total=False,
                                         visible=_not_invalid)
                assert [r["_id"] for r in page] == [r["_id"] for r in scanned], (round_, filters, offset)
    # 5–6 records written per round, each checked once per cached filter set: nothing like a rescan (3,000 each)
    assert checks <= 30 * 7 * len(walks), checks
