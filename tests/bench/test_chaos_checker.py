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
