"""MatchIndex: the candidates a batch reads up front are those a query per record would find,
including records the batch itself created (written to the table only at the batch's end)."""
from __future__ import annotations

import pytest

from sync_engine.matching import KeySpec
from sync_engine.records import FUZZY_CANDIDATES, MatchIndex
from sync_engine.state import migrate
from sync_engine.state.db import StateStore
from sync_engine.state.models import Link, Record
from sync_engine.state.models.pipeline import MatchKey

SPECS = [KeySpec("tax_id", "tax_id", True), KeySpec("name", "company_name_no_region", False)]


@pytest.fixture
def session(tmp_path):
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    migrate.upgrade(store.engine)
    with store.write() as session:
        # 25 names in one block (same first two characters), more than a match looks at.
        for i in range(25):
            cid = f"db{i:02d}"
            session.add(Record(entity="account", canonical_id=cid, values={}))
            session.add(MatchKey(entity="account", field="name", value=f"华信b{i:02d}", canonical_id=cid))
        session.add(MatchKey(entity="account", field="tax_id", value="91440300X", canonical_id="db24"))
        session.flush()
        session.add(Link(entity="account", canonical_id="db24", system="fx", object="AccountObj", external_id="fx-24"))
        session.flush()
        yield session
    store.dispose()


def test_exact_keys_and_the_first_similar_names_with_their_keys_and_systems(session):
    index = MatchIndex(session, "account", SPECS)
    mine = {"name": "华信z", "tax_id": "91440300X"}
    index.prefetch([mine])
    found = {c.canonical_id: c for c in index.candidates(mine)}
    # the first FUZZY_CANDIDATES of the block by value, plus the exact tax id match (the 25th name)
    assert set(found) == {f"db{i:02d}" for i in range(FUZZY_CANDIDATES)} | {"db24"}
    assert found["db24"].keys == {"name": "华信b24", "tax_id": "91440300X"}
    assert found["db24"].systems == {"fx"} and found["db00"].systems == set()


def test_records_created_in_the_batch_are_candidates_before_they_are_written(session):
    index = MatchIndex(session, "account", SPECS)
    index.prefetch([{"name": "华信z"}, {"name": "华信y"}])
    index.add("new1", {"name": "华信a", "tax_id": "91110000Y"})
    ids = [c.canonical_id for c in index.candidates({"name": "华信y"})]
    # "华信a" sorts first in the block: it takes the place of the last of the first twenty
    assert ids[:1] == ["db00"] and "new1" in ids and f"db{FUZZY_CANDIDATES - 1:02d}" not in ids
    assert len(ids) == FUZZY_CANDIDATES
    assert [c.canonical_id for c in index.candidates({"tax_id": "91110000Y"})] == ["new1"]


def test_a_block_read_after_the_batch_created_records_in_it_includes_them(session):
    index = MatchIndex(session, "account", SPECS)
    index.prefetch([{"name": "华信z"}])
    index.add("new2", {"name": "深圳x"})
    index.prefetch([{"name": "深圳y"}])  # a record mapped late in the batch
    assert [c.canonical_id for c in index.candidates({"name": "深圳y"})] == ["new2"]
    assert index.candidates({"name": "星河"}) == []


def test_names_with_a_leading_region_are_candidates_through_their_core_key(session):
    """深圳市华为技术 and 华为技术 share no two-character block: the core key (stored, and searched by
    block too) brings them together, whichever of them was there first."""
    from sync_engine.matching import keys_of

    specs = [KeySpec("tax_id", "tax_id", True), KeySpec("name", "company_name", False)]
    index = MatchIndex(session, "account", specs)
    index.prefetch([])
    index.add("plain", keys_of(specs, {"name": "华为技术有限公司"}))
    index.add("service", keys_of(specs, {"name": "华为技术服务有限公司"}))
    regional = keys_of(specs, {"name": "深圳市华为技术有限公司"})
    index.prefetch([regional])
    assert {c.canonical_id for c in index.candidates(regional)} == {"plain", "service"}
    assert not {c.canonical_id for c in index.candidates(regional)} & {f"db{i:02d}" for i in range(25)}

    index = MatchIndex(session, "account", specs)
    index.add("regional", regional)
    plain = keys_of(specs, {"name": "Huawei Technologies GmbH"})
    index.add("latin", keys_of(specs, {"name": "Shenzhen Huawei Technologies Co., Ltd."}))
    index.prefetch([keys_of(specs, {"name": "华为技术有限公司"}), plain])
    assert [c.canonical_id for c in index.candidates(keys_of(specs, {"name": "华为技术有限公司"}))] == ["regional"]
    assert [c.canonical_id for c in index.candidates(plain)] == ["latin"]


def _same_name_records(session, n: int, *, linked_in: str | None) -> None:
    for i in range(n):
        session.add(Record(entity="account", canonical_id=f"same{i:03d}", values={}))
    session.flush()
    for i in range(n):
        cid = f"same{i:03d}"
        session.add(MatchKey(entity="account", field="name", value="vertexenergy", canonical_id=cid))
        if linked_in:
            session.add(Link(entity="account", canonical_id=cid, system=linked_in, object="AccountObj",
                             external_id=f"{linked_in}-same{i}"))
    session.flush()


def test_a_common_name_does_not_bring_records_that_already_have_one_in_the_records_system(session):
    """300 companies called Vertex Energy, each with its Fxiaoke record: another Fxiaoke record of that
    name cannot be any of them (decide() skips a candidate linked in the same system unless a strong key
    is equal), so none is read — a first sync would otherwise read every namesake in every batch."""
    _same_name_records(session, 300, linked_in="fx")
    mine = {"name": "vertexenergy"}
    index = MatchIndex(session, "account", SPECS)
    index.prefetch([mine], "fx")
    # Only the name block's first FUZZY_CANDIDATES (similar names, bounded whatever the data) remain.
    assert [c.canonical_id for c in index.candidates(mine, "fx")] == [f"same{i:03d}" for i in range(FUZZY_CANDIDATES)]
    assert not index.exact_weak
    # From Zoho, where none of them has a record yet, every namesake is a candidate (a person decides).
    index.prefetch([mine], "zoho")
    assert len(index.candidates(mine, "zoho")) == 300


def test_a_namesake_with_the_same_tax_id_is_still_found_as_a_possible_twin(session):
    """The strong key finds it: the name filter never hides a duplicate keyed in twice."""
    from sync_engine.matching import decide

    _same_name_records(session, 5, linked_in="fx")
    session.add(MatchKey(entity="account", field="tax_id", value="91440300Q", canonical_id="same003"))
    session.flush()
    mine = {"name": "vertexenergy", "tax_id": "91440300Q"}
    index = MatchIndex(session, "account", SPECS)
    index.prefetch([mine], "fx")
    found = index.candidates(mine, "fx")
    assert "same003" in [c.canonical_id for c in found]
    assert {c.canonical_id: c.systems for c in found}["same003"] == {"fx"}
    decision = decide(SPECS, mine, found, system="fx")
    assert decision.outcome == "review" and "already linked" in decision.reason


def test_a_record_the_batch_created_with_a_common_name_is_still_a_candidate(session):
    _same_name_records(session, 30, linked_in="fx")
    index = MatchIndex(session, "account", SPECS)
    index.prefetch([{"name": "vertexenergy"}], "zoho")
    index.prefetch([{"name": "vertexenergy"}], "fx")
    index.add("new9", {"name": "vertexenergy"})
    for_fx = {c.canonical_id for c in index.candidates({"name": "vertexenergy"}, "fx")}
    assert "new9" in for_fx and len(for_fx) == 1 + FUZZY_CANDIDATES - 1  # new9 sorts in among the first 20
    assert len(index.candidates({"name": "vertexenergy"}, "zoho")) == 31


def test_namesakes_are_left_out_by_their_core_key_too(session):
    """A company name is keyed twice (``keys_of``: the name, and its core ``name#core``). The core is a name
    as well: namesakes linked in the record's system are left out on it too. Read as a strong key, every
    namesake came back through its core in every batch of the 1M-record bench (26,000 per batch of 200 at
    130k records: the memory slope and most of the CPU)."""
    from sync_engine.matching import keys_of

    mine = keys_of(SPECS, {"name": "Vertex Energy"})
    assert set(mine) == {"name", "name#core"}
    for i in range(300):
        session.add(Record(entity="account", canonical_id=f"same{i:03d}", values={}))
    session.flush()
    for i in range(300):
        cid = f"same{i:03d}"
        for field, value in mine.items():
            session.add(MatchKey(entity="account", field=field, value=value, canonical_id=cid))
        session.add(Link(entity="account", canonical_id=cid, system="fx", object="AccountObj", external_id=f"fx-same{i}"))
    session.flush()
    index = MatchIndex(session, "account", SPECS)
    index.prefetch([mine], "fx")
    assert len(index.candidates(mine, "fx")) == FUZZY_CANDIDATES  # the name block's first similar names only
    assert not index.exact and len(index.keys) == FUZZY_CANDIDATES
    index.prefetch([mine], "zoho")
    assert len(index.candidates(mine, "zoho")) == 300


def test_the_namesake_filter_reads_the_links_index_only(session):
    """Each namesake's links are checked in the (entity, canonical_id, system) index without reading the
    link's row: a random page of a large table per namesake, most of a 1M first sync's time otherwise."""
    from sqlalchemy import event

    from sync_engine.matching import keys_of

    statements: list[tuple[str, tuple]] = []

    def collect(conn, cursor, statement, parameters, context, executemany) -> None:
        if "FROM links" in statement and "match_keys" in statement:
            statements.append((statement, tuple(parameters)))

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", collect)
    try:
        MatchIndex(session, "account", SPECS).prefetch([keys_of(SPECS, {"name": "Vertex Energy"})], "fx")
    finally:
        event.remove(bind, "before_cursor_execute", collect)
    assert statements
    for statement, parameters in statements:
        plan = [row[3] for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        assert any(step.startswith("SEARCH links USING COVERING INDEX") for step in plan), plan


def _match_key_lookups(session, run) -> list[tuple]:
    """The parameters of the exact-key lookups on match_keys that ``run`` makes."""
    from sqlalchemy import event

    found: list[tuple] = []

    def collect(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().startswith("SELECT match_keys.value"):
            found.append(tuple(parameters))

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", collect)
    try:
        run()
    finally:
        event.remove(bind, "before_cursor_execute", collect)
    return found


def test_a_region_stripped_name_is_looked_up_through_its_core_alone(session):
    """Equal region-stripped name keys have equal cores (the core is that key trimmed), so the name's own
    lookup found nothing more: it only walked the same namesakes in SQLite a second time. Each record
    still finds its namesakes, and those linked in its system are still left out."""
    from sync_engine.matching import keys_of

    mine = keys_of(SPECS, {"name": "深圳市华为技术有限公司"})
    assert mine == {"name": "华为技术", "name#core": "华为技术"}
    for i, raw in enumerate(["华为技术有限公司", "深圳华为技术有限公司（2）", "Huawei"]):
        cid = f"hw{i}"
        session.add(Record(entity="account", canonical_id=cid, values={}))
        for field, value in keys_of(SPECS, {"name": raw}).items():
            session.add(MatchKey(entity="account", field=field, value=value, canonical_id=cid))
    session.flush()
    session.add(Link(entity="account", canonical_id="hw1", system="fx", object="AccountObj", external_id="fx-hw1"))
    session.flush()
    index = MatchIndex(session, "account", SPECS)
    lookups = _match_key_lookups(session, lambda: index.prefetch([mine], "fx"))
    assert lookups and all("name" not in params for params in lookups), lookups
    assert any("name#core" in params for params in lookups)
    # The namesakes, found through the core; hw1 has its fx record already, so it is left out for a record
    # of fx. "Huawei" is another name, not a namesake.
    assert index.exact_weak[("fx", "name#core", "华为技术")] == {"hw0"}
    assert "hw0" in {c.canonical_id for c in index.candidates(mine, "fx")}
    index.prefetch([mine], "zoho")
    assert index.exact_weak[("zoho", "name#core", "华为技术")] == {"hw0", "hw1"}
    assert {"hw0", "hw1"} <= {c.canonical_id for c in index.candidates(mine, "zoho")}


def test_a_name_stored_cut_short_is_still_looked_up_by_name(session):
    """Keys are stored cut to 255 characters: two long names equal in their first 255 may have different
    cores, so a long name is looked up by its own key as well."""
    from sync_engine.matching import keys_of

    long_name = "星" * 300 + "科技有限公司"
    mine = keys_of(SPECS, {"name": long_name})
    assert len(mine["name"]) >= 255
    index = MatchIndex(session, "account", SPECS)
    lookups = _match_key_lookups(session, lambda: index.prefetch([mine], "fx"))
    assert any("name" in params for params in lookups), lookups


def test_linked_text_names_whole_systems_that_fit():
    from sync_engine.records import linked_text
    from sync_engine.state.models.pipeline import LINKED_LEN

    assert linked_text([]) == ""
    assert linked_text({"zoho", "fx"}) == " fx zoho "
    many = [f"system{i:03d}_{'x' * 40}" for i in range(10)]
    text = linked_text(many)
    assert len(text) <= LINKED_LEN and text.startswith(" ") and text.endswith(" ")
    # Never a name cut short: the column promises links, so a system that does not fit is left out.
    assert set(text.split()) < set(many)
    # Names are separated by spaces: a name holding one is never listed (" a b " is not "a b").
    assert linked_text({"a", "b", "my erp"}) == " a b "


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store_session(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_databases")()
    store = StateStore.open(url)
    migrate.upgrade(store.engine)
    with store.write() as session:
        yield session
    store.dispose()


def test_namesakes_whose_keys_name_the_system_are_left_out_on_their_keys_alone(any_store_session):
    """match_keys.linked rules a namesake out without its links being read: here its key says fx and it
    has no link row at all (which the engine never writes; it shows which of the two decided). A system
    name is matched whole and case-sensitively: `erp_1` is not `erpx1`, `FX` is not `fx`."""
    from sync_engine.matching import keys_of

    session = any_store_session
    mine = keys_of(SPECS, {"name": "Vertex Energy"})
    for cid, linked in (("k-fx", " fx zoho "), ("k-none", ""), ("k-erp", " erp_1 "), ("k-upper", " FX ")):
        session.add(Record(entity="account", canonical_id=cid, values={}))
        for field, value in mine.items():
            session.add(MatchKey(entity="account", field=field, value=value, canonical_id=cid, linked=linked))
    session.flush()
    index = MatchIndex(session, "account", SPECS)
    index.prefetch([mine], "fx")
    assert index.exact_weak[("fx", "name#core", mine["name#core"])] == {"k-none", "k-erp", "k-upper"}
    index.prefetch([mine], "erpx1")
    assert index.exact_weak[("erpx1", "name#core", mine["name#core"])] == {"k-fx", "k-none", "k-erp", "k-upper"}
    index.prefetch([mine], "erp_1")
    assert index.exact_weak[("erp_1", "name#core", mine["name#core"])] == {"k-fx", "k-none", "k-upper"}
    # "fx zoho" is not listed as such, though " fx zoho " holds it: the column is not read for it.
    index.prefetch([mine], "fx zoho")
    assert index.exact_weak[("fx zoho", "name#core", mine["name#core"])] == {"k-fx", "k-none", "k-erp", "k-upper"}
