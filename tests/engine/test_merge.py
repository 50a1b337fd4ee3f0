from datetime import UTC, datetime, timedelta

from config.schema import SourceOfTruth
from sync_engine.merge import Observation, Snapshot, merge

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ORDER = ["fx", "zoho", "erp"]


def run(base, snaps, obs, policy="latest_wins", frozen=frozenset()):
    return merge(base, snaps, obs, policy_for=lambda f: policy, system_order=ORDER, frozen=set(frozen))


def test_one_side_change_propagates():
    base = {"name": "华为", "phone": "1"}
    snaps = {"fx": Snapshot(dict(base), T0), "zoho": Snapshot(dict(base), T0)}
    result = run(base, snaps, [Observation("fx", {"name": "华为技术", "phone": "1"}, T0 + timedelta(minutes=1))])
    assert result.values == {"name": "华为技术", "phone": "1"}
    assert result.changed == {"name"}
    assert result.changed_by == {"name": ["fx"]}
    assert not result.conflicts


def test_echo_of_our_own_write_changes_nothing():
    base = {"name": "B"}
    snaps = {"fx": Snapshot({"name": "B"}, T0), "zoho": Snapshot({"name": "B"}, T0)}
    result = run(base, snaps, [Observation("zoho", {"name": "B"}, T0 + timedelta(hours=1))])
    assert result.changed == set()


def test_different_fields_changed_in_two_systems_both_survive():
    base = {"name": "A", "phone": "1"}
    snaps = {"fx": Snapshot(dict(base), T0), "zoho": Snapshot(dict(base), T0)}
    result = run(
        base,
        snaps,
        [Observation("fx", {"name": "A2", "phone": "1"}, T0), Observation("zoho", {"name": "A", "phone": "2"}, T0)],
    )
    assert result.values == {"name": "A2", "phone": "2"}
    assert not result.conflicts


def test_same_field_conflict_latest_wins():
    base = {"name": "A"}
    snaps = {"fx": Snapshot(dict(base), T0), "zoho": Snapshot(dict(base), T0)}
    obs = [Observation("fx", {"name": "FX"}, T0 + timedelta(seconds=5)), Observation("zoho", {"name": "ZO"}, T0 + timedelta(seconds=9))]
    result = run(base, snaps, obs)
    assert result.values["name"] == "ZO"
    (conflict,) = result.conflicts
    assert conflict.winner == "zoho" and conflict.values == {"fx": "FX", "zoho": "ZO"}
    # Arrival order does not matter.
    assert run(base, snaps, list(reversed(obs))).values["name"] == "ZO"


def test_latest_wins_tie_goes_to_first_listed_system():
    base = {"name": "A"}
    snaps = {"fx": Snapshot(dict(base), T0), "zoho": Snapshot(dict(base), T0)}
    obs = [Observation("zoho", {"name": "ZO"}, T0), Observation("fx", {"name": "FX"}, T0)]
    assert run(base, snaps, obs).values["name"] == "FX"


def test_source_of_truth_wins_even_when_older():
    base = {"credit_limit": "100"}
    snaps = {s: Snapshot(dict(base), T0) for s in ORDER}
    obs = [
        Observation("erp", {"credit_limit": "500"}, T0),
        Observation("zoho", {"credit_limit": "900"}, T0 + timedelta(hours=1)),
    ]
    result = run(base, snaps, obs, policy=SourceOfTruth(source_of_truth="erp"))
    assert result.values["credit_limit"] == "500"
    assert result.conflicts[0].winner == "erp"


def test_manual_holds_the_field_and_syncs_the_rest():
    base = {"name": "A", "phone": "1"}
    snaps = {"fx": Snapshot(dict(base), T0), "zoho": Snapshot(dict(base), T0)}
    obs = [Observation("fx", {"name": "FX", "phone": "9"}, T0), Observation("zoho", {"name": "ZO"}, T0)]
    result = run(base, snaps, obs, policy="manual")
    assert result.values == {"name": "A", "phone": "9"}
    assert [c.field for c in result.held] == ["name"]


def test_frozen_field_is_left_alone():
    base = {"name": "A"}
    snaps = {"fx": Snapshot(dict(base), T0)}
    result = run(base, snaps, [Observation("fx", {"name": "B"}, T0)], frozen={"name"})
    assert result.values == {"name": "A"} and not result.changed


def test_newly_linked_system_disagreeing_with_base_is_a_conflict():
    # zoho holds the base; fx was just matched to it and spells the phone differently.
    base = {"name": "华为", "phone": "0755-1"}
    snaps = {"zoho": Snapshot(dict(base), T0)}
    result = run(base, snaps, [Observation("fx", {"name": "华为", "phone": "0755-2"}, T0 + timedelta(days=1))])
    assert result.values["phone"] == "0755-2"
    assert result.conflicts[0].values == {"fx": "0755-2", "zoho": "0755-1"}
    assert "name" not in result.changed


def test_empty_and_null_are_the_same():
    base = {"fax": None}
    snaps = {"fx": Snapshot({"fax": None}, T0)}
    assert not run(base, snaps, [Observation("fx", {"fax": ""}, T0)]).changed


def test_new_field_from_first_system_is_taken():
    result = run({}, {}, [Observation("fx", {"name": "新公司"}, T0)])
    assert result.values == {"name": "新公司"} and result.changed == {"name"}
