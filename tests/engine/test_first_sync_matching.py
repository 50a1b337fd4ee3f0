"""First sync: 200 companies already in two systems, typed by different people —
linked, not duplicated; the ambiguous ones wait in review."""
from __future__ import annotations

from sqlalchemy import select

from connectors.emulation.fakedata import FakeData
from mapping.normalize import company_name
from sync_engine.state.models import Link, Review

from .memory import MemorySystem


async def test_two_hundred_companies_link_and_ambiguous_ones_wait(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    fake = FakeData(seed=7)
    names, keys = [], set()
    while len(names) < 200:
        name = fake.company().name
        key = company_name(name, strip_region=True)
        if key not in keys:  # 200 different companies (two "Globex Energy" would be ambiguous for anyone)
            names.append(name)
            keys.add(key)
    pairs = []
    for name in names:
        fx_id = fx.user_create("AccountObj", {"name": name, "tel": fake.phone()})
        pairs.append((fx_id, zoho.user_create("Accounts", {"Account_Name": fake.variant(name)})))
    # Two different companies in Fxiaoke that read the same after normalising, one in Zoho: which one?
    fx.user_create("AccountObj", {"name": "Zenith Robotics Co., Ltd."})
    fx.user_create("AccountObj", {"name": "ZENITH ROBOTICS INC"})
    zoho.user_create("Accounts", {"Account_Name": "Zenith Robotics"})
    # Similar but not equal: a person decides.
    fx.user_create("AccountObj", {"name": "北京云麓星辰电子科技股份有限公司"})
    zoho.user_create("Accounts", {"Account_Name": "北京云麓星辰电器科技股份有限公司"})

    await engine.run_all()

    with engine.rt.store.read() as s:
        cid_of = {(system, ext): cid for cid, system, ext in s.execute(select(Link.canonical_id, Link.system, Link.external_id))}
        both = sum(1 for fx_id, zoho_id in pairs if cid_of.get(("fx", fx_id)) == cid_of.get(("zoho", zoho_id)) is not None)
        reviews = list(s.scalars(select(Review).where(Review.kind == "match", Review.status == "open")))
    unlinked = [(fx.records("AccountObj")[f]["name"], zoho.records("Accounts")[z]["Account_Name"]) for f, z in pairs
                if cid_of.get(("fx", f)) != cid_of.get(("zoho", z))]
    assert both == 200, f"only {both} of the 200 companies were linked to their twin: {unlinked}"
    # Nothing was duplicated into Zoho for the 200; the waiting ones were not created there either.
    # Nothing was added to Zoho: the 200 matched, and the candidates of the open questions wait for the answer.
    assert len(zoho.records("Accounts")) == 202
    assert {r.system for r in reviews} == {"zoho"}
    assert len(reviews) == 2
    waiting = {r.details["values"]["name"] for r in reviews}
    assert waiting == {"Zenith Robotics", "北京云麓星辰电器科技股份有限公司"}


async def _first_sync(state_url, match: str) -> tuple[dict, list, dict]:
    """Companies already in Fxiaoke and Zoho, typed differently; one first sync with ``match``."""
    from sync_engine.engine import SyncEngine
    from sync_engine.runtime import Runtime
    from sync_engine.state.db import StateStore

    from .conftest import THREE_SYSTEMS, make_config

    MemorySystem.instances.clear()
    config = make_config(THREE_SYSTEMS.replace("    model: Account\n", f"    model: Account\n    match: {match}\n", 1))
    config.state.url = state_url
    runtime = Runtime(config, store=StateStore.open(state_url))
    async with runtime:
        fx, zoho = MemorySystem.instances["fx"], MemorySystem.instances["zoho"]
        fx_ids = {n: fx.user_create("AccountObj", {"name": n}) for n in ("深圳华为技术有限公司", "华为技术有限公司")}
        zoho_ids = {n: zoho.user_create("Accounts", {"Account_Name": n}) for n in ("深圳市华为技术有限公司", "华为技术服务有限公司")}
        await SyncEngine(runtime).run_flow("accounts")
        with runtime.store.read() as s:
            cid = {(sy, ext): c for c, sy, ext in s.execute(select(Link.canonical_id, Link.system, Link.external_id))}
            reviews = sorted(r.details["values"]["name"] for r in s.scalars(select(Review).where(Review.kind == "match")))
        pairs = {
            "regional": cid.get(("fx", fx_ids["深圳华为技术有限公司"])) == cid.get(("zoho", zoho_ids["深圳市华为技术有限公司"])) is not None,
            "service": cid.get(("fx", fx_ids["华为技术有限公司"])) == cid.get(("zoho", zoho_ids["华为技术服务有限公司"])) is not None,
        }
        counts = {"fx": len(fx.records("AccountObj")), "zoho": len(zoho.records("Accounts"))}
    runtime.store.dispose()
    return pairs, reviews, counts


async def test_match_min_score_decides_which_near_names_link_in_the_engine(memory_plugin, tmp_path):
    """match.min_score through the engine's batched matching (MatchIndex): 深圳华为技术 vs 深圳市华为技术
    (92 % alike with the region kept) and 华为技术 vs 华为技术服务 (80 %)."""
    keys = "keys: [tax_id, {field: name, normalize: company_name}]"
    # Default: only equal names link; both near matches wait for a person, nothing is duplicated.
    pairs, reviews, counts = await _first_sync(f"sqlite:///{tmp_path / 'default.db'}", f"{{{keys}}}")
    assert pairs == {"regional": False, "service": False}
    assert len(reviews) == 2 and counts == {"fx": 2, "zoho": 2}
    # 0.9: the regional spelling links; the 80 % one still waits in review.
    pairs, reviews, counts = await _first_sync(f"sqlite:///{tmp_path / 'p90.db'}", f"{{{keys}, min_score: 0.9}}")
    assert pairs == {"regional": True, "service": False}
    assert len(reviews) == 1 and counts == {"fx": 2, "zoho": 2}
    # 0.8: both link.
    pairs, reviews, counts = await _first_sync(f"sqlite:///{tmp_path / 'p80.db'}", f"{{{keys}, min_score: 0.8}}")
    assert pairs == {"regional": True, "service": True} and reviews == [] and counts == {"fx": 2, "zoho": 2}


async def _first_sync_pairs(state_url, match: str, pairs: list[tuple[str, str]]) -> tuple[list[bool], list[str], dict]:
    """One first sync with ``match`` over (Fxiaoke name, Zoho name) pairs already in both systems:
    which pairs were linked, the names waiting in review, and how many records each system holds."""
    from sync_engine.engine import SyncEngine
    from sync_engine.runtime import Runtime
    from sync_engine.state.db import StateStore

    from .conftest import THREE_SYSTEMS, make_config

    MemorySystem.instances.clear()
    config = make_config(THREE_SYSTEMS.replace("    model: Account\n", f"    model: Account\n    match: {match}\n", 1))
    config.state.url = state_url
    runtime = Runtime(config, store=StateStore.open(state_url))
    async with runtime:
        fx, zoho = MemorySystem.instances["fx"], MemorySystem.instances["zoho"]
        ids = [(fx.user_create("AccountObj", {"name": a}), zoho.user_create("Accounts", {"Account_Name": b})) for a, b in pairs]
        await SyncEngine(runtime).run_flow("accounts")
        with runtime.store.read() as s:
            cid = {(sy, ext): c for c, sy, ext in s.execute(select(Link.canonical_id, Link.system, Link.external_id))}
            reviews = sorted(r.details["values"]["name"] for r in s.scalars(select(Review).where(Review.kind == "match")))
        linked = [cid.get(("fx", f)) == cid.get(("zoho", z)) is not None for f, z in ids]
        counts = {"fx": len(fx.records("AccountObj")), "zoho": len(zoho.records("Accounts"))}
    runtime.store.dispose()
    return linked, reviews, counts


#: Names whose first two characters differ: a leading province/city, or a romanised city, on one side only.
#: Alike (difflib ratio of the name keys, region kept): 73 %, 70 %, 82 %, 86 %.
REGION_PAIRS = [
    ("华为技术有限公司", "深圳市华为技术有限公司"),
    ("广东省深圳市腾讯计算机系统有限公司", "腾讯计算机系统有限公司"),
    ("Huawei Technologies GmbH", "Shenzhen Huawei Technologies Co., Ltd."),
    ("北京字节跳动科技有限公司", "字节跳动科技股份有限公司"),
]


async def test_min_score_links_names_that_differ_in_a_leading_region(memory_plugin, tmp_path):
    """``keys: [name]`` keeps the region in the name key (company_name), so these pairs share no name
    block: they must still be candidates of each other (their core keys are equal), and then
    ``match.min_score`` decides — as it does for names that share their first characters."""
    keys = "keys: [tax_id, name]"
    linked, reviews, counts = await _first_sync_pairs(f"sqlite:///{tmp_path / 'p70.db'}", f"{{{keys}, min_score: 0.7}}",
                                                      REGION_PAIRS)
    assert linked == [True, True, True, True] and reviews == []
    assert counts == {"fx": 4, "zoho": 4}  # nothing created twice
    # 0.8: the two pairs alike by 80 % or more link; the others are below it and not alike enough for a
    # review (under 80 %): each becomes a record of its own, in both systems.
    linked, reviews, counts = await _first_sync_pairs(f"sqlite:///{tmp_path / 'p80.db'}", f"{{{keys}, min_score: 0.8}}",
                                                      REGION_PAIRS)
    assert linked == [False, False, True, True] and reviews == []
    assert counts == {"fx": 6, "zoho": 6}
    # Default (equal names only): the 82 % and 86 % pairs are near matches, so a person decides; nothing links.
    linked, reviews, counts = await _first_sync_pairs(f"sqlite:///{tmp_path / 'default.db'}", f"{{{keys}}}", REGION_PAIRS)
    assert linked == [False, False, False, False]
    assert len(reviews) == 2 and all(any(name in pair for pair in REGION_PAIRS[2:]) for name in reviews), reviews


async def test_match_keys_name_the_systems_their_record_is_linked_in(engine, systems):
    """The keys a sync writes say where their record has links (match_keys.linked): a later record of
    one of those systems skips them on a name without checking the record's links one by one."""
    from sync_engine.state.models.pipeline import MatchKey

    fx, zoho = systems["fx"], systems["zoho"]
    only_fx = fx.user_create("AccountObj", {"name": "深圳市华为技术有限公司"})
    fx.user_create("AccountObj", {"name": "星河电子有限公司"})
    zoho.user_create("Accounts", {"Account_Name": "星河电子"})
    await engine.run_all()

    with engine.rt.store.read() as s:
        cid_of = {(system, ext): cid for cid, system, ext in s.execute(select(Link.canonical_id, Link.system, Link.external_id))}
        linked = {(cid, field): value for cid, field, value in s.execute(select(MatchKey.canonical_id, MatchKey.field, MatchKey.linked))}
        links = {(cid, system) for cid, system in s.execute(select(Link.canonical_id, Link.system))}
    huawei = cid_of[("fx", only_fx)]
    # Keyed when the first pass created it from Fxiaoke: the Zoho copy was made after (push), so its
    # keys may not name Zoho yet; they never name a system it has no link in.
    assert " fx " in linked[(huawei, "name")] and " fx " in linked[(huawei, "name#core")]
    for (cid, _), text in linked.items():
        assert {(cid, system) for system in text.split()} <= links
    xinghe = {cid for (system, _), cid in cid_of.items()} - {huawei}
    assert len(xinghe) == 1, "星河电子 matched across the two systems"
    assert set(linked[(xinghe.pop(), "name")].split()) == {"fx", "zoho"}
