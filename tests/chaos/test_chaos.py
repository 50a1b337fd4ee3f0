"""Chaos convergence, the CI-sized run of bench/chaos.py: 500 user operations in three emulated
systems failing 20 % of their API calls, webhooks duplicated, delayed, dropped and reordered, and the
worker process of a running `crmsync serve` on PostgreSQL killed with SIGKILL five times. After
quiescence and one reconciliation pass the three systems must agree as the policies say.

One run (about 3 minutes on 2 cores) feeds all the tests below."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,  # a skip fails in CI
    pytest.mark.slow,
    pytest.mark.timeout(600),  # the one bench run feeding the module takes about 3 minutes on 2 cores
    pytest.mark.skipif(not os.environ.get("CRMSYNC_TEST_DATABASE_URL"), reason="needs CRMSYNC_TEST_DATABASE_URL"),
]


@pytest.fixture(scope="module")
def chaos():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--ops", "500", "--kills", "5", "--seed", "7", "--json"],
        check=False, capture_output=True, text=True, timeout=480, cwd=ROOT,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout)
    result["summary"] = json.dumps(
        {k: result[k] for k in ("lost", "overwritten_between_check_and_write", "duplicates",
                                "unresolved_conflicts_not_in_review", "echo_writes",
                                "dead_letters", "driver", "webhooks", "seconds", "kills", "serve_log_first_traceback")},
        ensure_ascii=False, indent=1)
    return result


def test_the_run_had_its_chaos(chaos):
    assert chaos["kills"] == 5, chaos["summary"]
    assert chaos["driver"].get("driver failures", 0) == 0, chaos["summary"]
    assert chaos["companies"] > 50 and chaos["deleted"] > 5, chaos["summary"]
    assert chaos["driver"].get("conflicting edit pairs", 0) > 5, chaos["summary"]
    assert chaos["webhooks"].get("duplicated", 0) > 10 and chaos["webhooks"].get("dropped", 0) > 0, chaos["summary"]


def test_no_duplicates(chaos):
    assert chaos["duplicates"] == [], chaos["summary"]


def test_conflicts_settled_or_in_review_and_no_echo_writes(chaos):
    assert chaos["unresolved_conflicts_not_in_review"] == [], chaos["summary"]
    assert sum(chaos["echo_writes"].values()) == 0, chaos["summary"]
    assert chaos["serve_exit_code"] == 0, chaos["summary"]
    assert chaos["serve_log_tracebacks"] == 0, chaos["summary"]


def test_no_lost_updates_creates_or_deletes(chaos):
    assert chaos["lost"] == [], chaos["summary"]


def test_edits_overwritten_between_check_and_write_are_rare(chaos):
    """No API here offers a conditional write, so an edit a user makes after our check's read and before
    our update lands is overwritten (bench/README.md, "Edit overwritten between the last read and our
    write"). The checker counts such an edit as lost unless the audit trail proves the timing (the check's
    read came back before the edit was sent; our update was answered after it); proven ones are listed
    apart. They must stay rare: a slow check (the event loop held up, a read seconds old) widens the window."""
    assert len(chaos["overwritten_between_check_and_write"]) <= 2, chaos["summary"]
