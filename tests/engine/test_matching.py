from hypothesis import given, settings
from hypothesis import strategies as st

from sync_engine.matching import Candidate, KeySpec, decide, default_keys, keys_of

SPECS = default_keys("account")


def cand(cid, systems=("zoho",), **values):
    return Candidate(cid, keys_of(SPECS, values), set(systems))


def test_same_company_different_spelling_links():
    mine = keys_of(SPECS, {"name": "深圳市华为技术有限公司"})
    decision = decide(SPECS, mine, [cand("c1", name="华为技术")], system="fxiaoke")
    assert decision.outcome == "link" and decision.canonical_id == "c1"


def test_tax_id_wins_over_different_names():
    mine = keys_of(SPECS, {"name": "华为", "tax_id": "914403007084223151"})
    decision = decide(SPECS, mine, [cand("c1", name="Huawei Technologies", tax_id="91440300 7084 2231 51")], system="fx")
    assert decision.outcome == "link"


def test_same_name_contradicting_tax_ids_goes_to_review():
    mine = keys_of(SPECS, {"name": "恒通科技有限公司", "tax_id": "91440300AAAAAAAAA1"})
    decision = decide(SPECS, mine, [cand("c1", name="恒通科技", tax_id="91310000BBBBBBBBB2")], system="fx")
    assert decision.outcome == "review"
    assert "different tax_id" in decision.reason


def test_two_equal_candidates_go_to_review():
    mine = keys_of(SPECS, {"name": "Acme Robotics Co., Ltd."})
    decision = decide(SPECS, mine, [cand("c1", name="ACME ROBOTICS"), cand("c2", name="Acme Robotics Inc")], system="fx")
    assert decision.outcome == "review" and len(decision.candidates) == 2


def test_similar_name_is_weak_and_goes_to_review():
    mine = keys_of(SPECS, {"name": "北京星河博电子股份有限公司"})
    decision = decide(SPECS, mine, [cand("c1", name="北京星河博电器股份有限公司")], system="fx")
    assert decision.outcome == "review"


def test_no_candidate_creates():
    mine = keys_of(SPECS, {"name": "Globex Energy"})
    assert decide(SPECS, mine, [cand("c1", name="Initech Logistics")], system="fx").outcome == "create"


def test_candidate_already_linked_in_same_system_is_skipped():
    mine = keys_of(SPECS, {"name": "Globex Energy"})
    decision = decide(SPECS, mine, [cand("c1", systems=("fx",), name="Globex Energy Ltd")], system="fx")
    assert decision.outcome == "create"


def test_full_width_and_case_variants_link():
    mine = keys_of(SPECS, {"name": "ＡＣＭＥ Ｒｏｂｏｔｉｃｓ Co Ltd"})
    assert decide(SPECS, mine, [cand("c1", name="Acme Robotics Co., Ltd.")], system="fx").outcome == "link"


def test_same_tax_id_as_a_record_already_in_this_system_is_a_possible_duplicate():
    mine = keys_of(SPECS, {"name": "恒通科技", "tax_id": "91440300MA5FA2XG7U"})
    decision = decide(SPECS, mine, [cand("c1", systems=("fx",), name="恒通科技有限公司", tax_id="91440300MA5FA2XG7U")], system="fx")
    assert decision.outcome == "review" and "possible duplicate" in decision.reason


# -- match.min_score ---------------------------------------------------------------------------
REGIONAL = [KeySpec("tax_id", "tax_id", True), KeySpec("name", "company_name", False)]  # `keys: [tax_id, name]`


def test_min_score_links_a_name_alike_enough_and_reviews_a_near_one_below_it():
    # company_name keeps the region: 深圳市华为技术 vs 深圳华为技术 are 92 % alike.
    mine = keys_of(REGIONAL, {"name": "深圳市华为技术有限公司"})
    theirs = [Candidate("c1", keys_of(REGIONAL, {"name": "深圳华为技术有限公司"}), {"zoho"})]
    assert decide(REGIONAL, mine, theirs, system="fx").outcome == "review"  # default: equal names only
    assert decide(REGIONAL, mine, theirs, system="fx", min_score=0.95).outcome == "review"
    linked = decide(REGIONAL, mine, theirs, system="fx", min_score=0.9)
    assert linked.outcome == "link" and linked.canonical_id == "c1" and "min_score" in linked.reason
    assert decide(REGIONAL, mine, theirs, system="fx", min_score=0.92).outcome == "link"  # at the score: links


def test_min_score_is_the_similarity_of_the_normalised_names():
    # Regions stripped (the account default): 深圳市华为技术有限公司 and 华为技术有限公司 are the same name,
    # whatever the threshold; 华为技术服务有限公司 is 80 % alike: a link at 0.8, a review at 0.9.
    mine = keys_of(SPECS, {"name": "深圳市华为技术有限公司"})
    assert decide(SPECS, mine, [cand("c1", name="华为技术有限公司")], system="fx", min_score=1.0).outcome == "link"
    service = [cand("c2", name="华为技术服务有限公司")]
    assert decide(SPECS, mine, service, system="fx", min_score=0.8).outcome == "link"
    assert decide(SPECS, mine, service, system="fx", min_score=0.9).outcome == "review"
    assert decide(SPECS, mine, service, system="fx").outcome == "review"
    # Not alike (华为技术 vs 华为科技: 75 %) and below the threshold: a new record, not a review.
    assert decide(SPECS, mine, [cand("c3", name="华为科技有限公司")], system="fx", min_score=0.9).outcome == "create"
    assert decide(SPECS, mine, [cand("c3", name="华为科技有限公司")], system="fx", min_score=0.7).outcome == "link"


def test_min_score_never_overrides_a_contradicting_tax_id_or_an_ambiguity():
    mine = keys_of(SPECS, {"name": "华为技术有限公司", "tax_id": "914403007084223151"})
    other_tax = [cand("c1", name="华为技术有限公司", tax_id="91310000BBBBBBBBB2")]
    assert decide(SPECS, mine, other_tax, system="fx", min_score=0.5).outcome == "review"
    two = [cand("c1", name="华为技术服务有限公司"), cand("c2", name="华为技术发展有限公司")]
    decision = decide(SPECS, keys_of(SPECS, {"name": "华为技术有限公司"}), two, system="fx", min_score=0.8)
    assert decision.outcome == "review" and "2 records" in decision.reason


# -- core keys: names whose first characters differ ---------------------------------------------------
def test_company_names_get_a_core_key_without_region_legal_form_or_group():
    from sync_engine.matching import core_name

    named = [KeySpec("name", "company_name", False)]  # `keys: [name]`: the name key keeps the region
    cores = {n: keys_of(named, {"name": n})["name#core"] for n in (
        "深圳市华为技术有限公司", "华为技术有限公司", "广东省深圳市华为技术股份有限公司", "北京市华为技术(中国)有限公司",
        "美的集团股份有限公司", "广东美的集团", "Shenzhen Huawei Technologies Co., Ltd.", "Huawei Technologies GmbH",
        "HUAWEI TECHNOLOGIES INC.")}
    assert cores["深圳市华为技术有限公司"] == cores["华为技术有限公司"] == cores["广东省深圳市华为技术股份有限公司"] == "华为技术"
    assert cores["北京市华为技术(中国)有限公司"] == "华为技术"
    assert cores["美的集团股份有限公司"] == cores["广东美的集团"] == "美的"
    assert cores["Shenzhen Huawei Technologies Co., Ltd."] == cores["Huawei Technologies GmbH"] == "huaweitechnologies"
    assert cores["HUAWEI TECHNOLOGIES INC."] == "huaweitechnologies"
    # The name key itself is unchanged (scores compare it), and a core never shrinks below two characters.
    assert keys_of(named, {"name": "深圳市华为技术有限公司"})["name"] == "深圳市华为技术"
    assert core_name("上海") == "上海" and core_name("集团") == "集团" and core_name("beijingab") == "beijingab"
    # Strong keys and person names have no core.
    assert keys_of(default_keys("contact"), {"name": "深圳市张伟", "email": "a@b.cn"}).keys() == {"name", "email"}
    assert "tax_id#core" not in keys_of(SPECS, {"tax_id": "914403007084223151", "name": "华为"})


def test_equal_cores_do_not_link_on_their_own():
    """The core only makes records candidates; the name keys decide (equal, or match.min_score)."""
    named = [KeySpec("name", "company_name", False)]
    mine = keys_of(named, {"name": "深圳市华为技术有限公司"})
    theirs = [Candidate("c1", keys_of(named, {"name": "华为技术有限公司"}), {"zoho"})]  # 73 % alike
    assert decide(named, mine, theirs, system="fx").outcome == "create"
    assert decide(named, mine, theirs, system="fx", min_score=0.8).outcome == "create"
    assert decide(named, mine, theirs, system="fx", min_score=0.7).outcome == "link"


def test_region_stripped_name_keys_get_the_same_cores():
    """The account default (company_name_no_region): the core trims what that key keeps."""
    cores = {n: keys_of(SPECS, {"name": n})["name#core"] for n in (
        "Shenzhen Huawei Technologies Co., Ltd.", "Huawei Technologies GmbH", "广东美的集团", "美的集团股份有限公司",
        "深圳市华为技术有限公司")}
    assert cores["Shenzhen Huawei Technologies Co., Ltd."] == cores["Huawei Technologies GmbH"] == "huaweitechnologies"
    assert cores["广东美的集团"] == cores["美的集团股份有限公司"] == "美的"
    assert cores["深圳市华为技术有限公司"] == "华为技术"


# --- the ratio's shortcut: an upper bound where it is below what a decision counts -------------------------

_NAME_CHARS = "华为技术有限公司深圳星河电子器ABab "


def _exact_ratio(a: str, b: str, floor: float) -> float:
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio()


@settings(max_examples=300, deadline=None)
@given(
    mine=st.text(_NAME_CHARS, min_size=1, max_size=12),
    theirs=st.lists(st.text(_NAME_CHARS, min_size=1, max_size=12), min_size=1, max_size=6),
    taxes=st.lists(st.sampled_from([None, "91440300A", "91440300B"]), min_size=7, max_size=7),
    domains=st.lists(st.sampled_from([None, "huawei.com", "vivo.com"]), min_size=7, max_size=7),
    min_score=st.sampled_from([None, 0.5, 0.8, 0.95]),
)
def test_the_ratio_shortcut_decides_as_the_exact_ratio_does(mine, theirs, taxes, domains, min_score):
    """Candidates whose names have too few characters in common are not compared in full (difflib's
    quick_ratio bounds the ratio): the decision — outcome, candidates kept, their scores and reasons — is
    the one the exact ratio gives, with strong keys equal, contradicting or missing."""
    from unittest import mock

    from sync_engine import matching as m

    specs = [m.KeySpec("tax_id", "tax_id", True), m.KeySpec("domain", "domain", True), m.KeySpec("name", "company_name", False)]

    def keys(name, tax, domain):
        return {k: v for k, v in {"name": name, "tax_id": tax, "domain": domain}.items() if v}

    me = keys(mine, taxes[0], domains[0])
    candidates = [m.Candidate(f"c{i}", keys(name, taxes[i + 1], domains[i + 1])) for i, name in enumerate(theirs)]
    fast = m.decide(specs, me, candidates, system="fx", min_score=min_score)
    with mock.patch.object(m, "_ratio", _exact_ratio):
        exact = m.decide(specs, me, candidates, system="fx", min_score=min_score)
    assert fast == exact


def test_the_ratio_shortcut_skips_the_full_comparison_of_unlike_names():
    from unittest import mock

    from sync_engine import matching as m

    with mock.patch("difflib.SequenceMatcher.get_matching_blocks", side_effect=AssertionError("compared in full")):
        assert m._ratio("华为技术", "星河电子", 0.8) == 0.0
        assert 0 < m._ratio("华为技术", "华信电子", 0.8) < 0.8
    assert m._ratio("华为技术", "华为技术服务", 0.8) == 0.8  # 8 / 10: compared in full
