from sync_engine.matching import Candidate, decide, default_keys, keys_of

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
