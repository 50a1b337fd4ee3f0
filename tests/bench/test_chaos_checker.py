"""bench/chaos.py's checker: an edit overwritten between our check's read and our write is told apart
from a loss only when the audit trail proves that timing; everything else stays a loss."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import chaos

EDIT = chaos.Edit(seq=641, system="fx", value="d641.example.cn", at=100.0, started=99.9)


def writes(answered: float, checked: float | None, value: str = "d557.example.cn") -> dict:
    return {("cid", "fx", "domain"): [(answered, checked, value)]}


def test_a_write_checked_before_the_edit_was_sent_and_answered_after_it_is_the_window():
    assert chaos._overwritten_after_check(writes(100.3, 99.8), {"cid"}, "domain", EDIT, "d557.example.cn")


@pytest.mark.parametrize("case, found, final", [
    ("the check came back after the edit was sent: it could have seen it", writes(100.3, 99.95), "d557.example.cn"),
    ("our write was answered before the edit was: not ours that landed last", writes(99.95, 99.8), "d557.example.cn"),
    ("the update had no check", writes(100.3, None), "d557.example.cn"),
    ("our write carried another value than the final one", writes(100.3, 99.8, "d1.example.cn"), "d557.example.cn"),
    ("no write of ours to that system", {("cid", "zoho", "domain"): [(100.3, 99.8, "d557.example.cn")]}, "d557.example.cn"),
])
def test_anything_else_stays_a_loss(case, found, final):
    assert not chaos._overwritten_after_check(found, {"cid"}, "domain", EDIT, final), case


def test_only_our_last_write_of_the_field_counts():
    """An early write checked before the edit proves nothing if a later write (checked after the edit was
    sent, so it should have seen it) wrote the final value again."""
    found = {("cid", "fx", "domain"): [(100.3, 99.8, "d557.example.cn"), (101.0, 100.5, "d557.example.cn")]}
    assert not chaos._overwritten_after_check(found, {"cid"}, "domain", EDIT, "d557.example.cn")


def test_an_edit_from_before_the_start_time_was_kept_is_never_excused():
    old = chaos.Edit(seq=1, system="fx", value="x", at=100.0)  # a kept run's driver.json from before `started`
    assert not chaos._overwritten_after_check(writes(100.3, 99.8), {"cid"}, "domain", old, "d557.example.cn")


# -- a change read after a conflict was decided, from a record modified after the loser's edit -----------
LAST = chaos.Edit(seq=596, system="fx", value="596号", at=43.805, started=43.7)
LOST_TO_ERP = {("cid", "address"): [(743, {
    "field": "address", "policy": "source_of_truth:erp", "winner": "erp",
    "values": {"fx": "596号", "erp": "560号"},
    "times": {"fx": "2026-11-28T10:20:43.801000+00:00", "erp": "2026-11-28T10:20:38.757000+00:00"},
})]}


def read_of(event_id: int, value: str, modified_at: str) -> dict:
    return {("cid", "address"): [(event_id, "zoho", value, modified_at)]}


def test_a_newer_record_read_after_the_last_edit_lost_its_conflict_is_the_record_time_rule():
    """Chaos seed 7 (session 11): ERP 560 beat Fxiaoke 596 by source of truth; Zoho's 588, made from 560
    before 596 but in a record modified at 46 s (a phone edit), was read afterwards and won as the only change."""
    assert chaos._newer_record_after_a_lost_conflict(
        LOST_TO_ERP, read_of(800, "588号", "2026-11-28T10:20:46+00:00"), {"cid"}, "address", "588号", LAST)


@pytest.mark.parametrize("case, reads, final", [
    ("the record is older than the loser's edit", read_of(800, "588号", "2026-11-28T10:20:42+00:00"), "588号"),
    ("read before the conflict was decided", read_of(700, "588号", "2026-11-28T10:20:46+00:00"), "588号"),
    ("the read carried another value", read_of(800, "577号", "2026-11-28T10:20:46+00:00"), "588号"),
    ("no read of the final value at all", {}, "588号"),
])
def test_otherwise_the_last_edit_stays_lost(case, reads, final):
    assert not chaos._newer_record_after_a_lost_conflict(LOST_TO_ERP, reads, {"cid"}, "address", final, LAST), case


def test_a_conflict_the_last_edit_did_not_take_part_in_proves_nothing():
    other = chaos.Edit(seq=597, system="fx", value="597号", at=44.0, started=43.9)
    assert not chaos._newer_record_after_a_lost_conflict(
        LOST_TO_ERP, read_of(800, "588号", "2026-11-28T10:20:46+00:00"), {"cid"}, "address", "588号", other)


# -- the ERP's edit, concurrent with the last edit, read only after the last edit lost to the ERP ---------
ZOHO_LAST = chaos.Edit(seq=402, system="zoho", value="402号", at=13.844, started=13.7)
ZOHO_LOST_TO_ERP = {("cid", "address"): [(361, {
    "field": "address", "policy": "source_of_truth:erp", "winner": "erp",
    "values": {"erp": "278号", "zoho": "402号"},
    "times": {"erp": "2026-11-28T10:29:59.511000+00:00", "zoho": "2026-11-28T10:30:13+00:00"},
})]}


def erp_read(event_id: int, value: str = "390号") -> dict:
    return {("cid", "address"): [(event_id, "erp", value, "2026-11-28T10:30:12.631000+00:00")]}


def test_an_erp_edit_first_read_after_the_last_edit_lost_to_the_erp_wins_by_policy():
    """Chaos seed 10 (session 11): ERP 390, then Zoho 402 made from the older 278; 402 lost to the ERP's 278,
    then 390 was read and set everywhere. The two edits were concurrent: the ERP's wins."""
    assert chaos._erp_edit_unseen_when_the_last_lost(ZOHO_LOST_TO_ERP, erp_read(433), {"cid"}, "address", "390号", ZOHO_LAST)


@pytest.mark.parametrize("case, conflicts, reads", [
    ("crmsync had read the ERP's value before the conflict (and may have written it)", ZOHO_LOST_TO_ERP, erp_read(300)),
    ("no read of the ERP's value", ZOHO_LOST_TO_ERP, {}),
    ("a read of another ERP value", ZOHO_LOST_TO_ERP, erp_read(433, "391号")),
    ("the last edit never lost to the ERP", {("cid", "address"): [(361, {
        **ZOHO_LOST_TO_ERP[("cid", "address")][0][1], "winner": "zoho"})]}, erp_read(433)),
    ("not a source-of-truth conflict", {("cid", "address"): [(361, {
        **ZOHO_LOST_TO_ERP[("cid", "address")][0][1], "policy": "latest_wins"})]}, erp_read(433)),
])
def test_otherwise_the_erp_value_is_no_excuse(case, conflicts, reads):
    assert not chaos._erp_edit_unseen_when_the_last_lost(conflicts, reads, {"cid"}, "address", "390号", ZOHO_LAST), case
