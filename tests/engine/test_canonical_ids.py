"""Canonical ids are UUID version 7: unique, unguessable, and in creation order across milliseconds,
so a batch's new records land together at the end of every index keyed by them."""
from __future__ import annotations

import time
import uuid

from sync_engine.records import new_canonical_id


def test_ids_are_version_7_uuids_in_hex():
    cid = new_canonical_id()
    assert len(cid) == 32 and cid == cid.lower()
    parsed = uuid.UUID(cid)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    # The first 48 bits are the creation time in milliseconds.
    assert abs(int(cid[:12], 16) - time.time_ns() // 1_000_000) < 5_000


def test_ids_sort_in_creation_order_and_do_not_repeat():
    earlier = [new_canonical_id() for _ in range(2_000)]
    time.sleep(0.002)
    later = [new_canonical_id() for _ in range(2_000)]
    assert max(earlier) < min(later)
    assert len(set(earlier + later)) == 4_000
    # Random within one millisecond: not guessable from the one before it.
    assert len({cid[12:] for cid in earlier}) == 2_000
