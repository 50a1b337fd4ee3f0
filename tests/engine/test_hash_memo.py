"""records.hash_memo: a hash reused only for the very same immutable values, else computed afresh."""
from __future__ import annotations

from decimal import Decimal

from mapping.canonical import canonical_hash
from sync_engine import records as rec


def test_the_same_values_in_another_dict_reuse_the_hash_and_equal_canonical_hash(monkeypatch):
    calls = []
    real = rec.canonical_hash
    monkeypatch.setattr(rec, "canonical_hash", lambda values, model: calls.append(1) or real(values, model))
    hash_of = rec.hash_memo("Account")
    values = {"name": "华信科技", "employees": 12, "revenue": Decimal("1.50")}
    first = hash_of(values)
    assert hash_of(dict(values)) == first == canonical_hash(values, "Account")
    assert len(calls) == 1
    # Another value, a key more or less: computed, and different.
    assert hash_of({**values, "name": "华信电子"}) != first
    assert hash_of({**values, "city": "深圳"}) != first
    assert hash_of({"name": "华信科技", "employees": 12}) == canonical_hash({"name": "华信科技", "employees": 12}, "Account")
    assert len(calls) == 4


def test_mutable_values_are_never_reused():
    hash_of = rec.hash_memo("Account")
    lines = [{"sku": "a"}]
    values = {"name": "x", "lines": lines}
    first = hash_of(values)
    lines.append({"sku": "b"})  # the same list object, changed in place
    assert hash_of(dict(values)) == canonical_hash(values, "Account") != first


def test_equal_strings_and_integers_reuse_the_hash_but_not_equal_numbers_of_other_types(monkeypatch):
    calls = []
    real = rec.canonical_hash
    monkeypatch.setattr(rec, "canonical_hash", lambda values, model: calls.append(1) or real(values, model))
    hash_of = rec.hash_memo("Account")
    first = hash_of({"name": "华信科技"[:2] + "科技", "employees": 10**20})
    assert hash_of({"name": "华信科技", "employees": 10**20 + 0}) == first
    assert len(calls) == 1
    # 1 == 1.0 == True, 0.0 == -0.0: equal in Python, not the same value to store or hash.
    for other in ({"name": "华信科技", "employees": float(10**20)}, {"name": "华信科技", "employees": True}):
        assert hash_of(other) == canonical_hash(other, "Account")
    assert len(calls) == 3
    zero, minus_zero = hash_of({"x": 0.0}), hash_of({"x": -0.0})
    assert (zero, minus_zero) == (canonical_hash({"x": 0.0}, "Account"), canonical_hash({"x": -0.0}, "Account"))
    assert len(calls) == 5
