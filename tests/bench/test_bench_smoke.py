"""The benchmark scripts run end to end at a tiny size and end with a parseable key=value line.

Sizes are tiny so the whole file stays within a minute: these prove the scripts work (emulators
start, the engine syncs every record, the figures add up), not how fast anything is.
vs_airbyte runs its crmsync side only (the Airbyte side needs PyPI); memory runs one small size.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

from harness import parse_key_values


def run(script: str, *args: str, timeout: float = 120) -> tuple[dict[str, str], str]:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=timeout)
    assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    figures = parse_key_values(lines[-1])
    assert figures, f"{script}: no key=value line at the end:\n{done.stdout[-2000:]}"
    return figures, done.stdout


def test_initial_sync_moves_every_record_and_counts_calls():
    figures, out = run("initial_sync.py", "--records", "30", "--latency-ms", "5")
    # 3 partners + 30 accounts + 30 contacts + 15 deals, all in Zoho, partners and accounts in the ERP
    assert figures["records"] == "78" and figures["written_zoho"] == "78" and figures["written_erp"] == "33"
    assert figures["complete"] == "1" and figures["dead_letters"] == "0"
    # Every system is read and written at least once per entity: never fewer calls than the minimum.
    assert float(figures["calls_ratio"]) >= 1.0 and int(figures["calls"]) >= int(figures["calls_min"])
    assert float(figures["wall_ratio"]) >= 1.0 and float(figures["peak_rss_mb"]) > 0
    assert "BatchSave" in out  # the ERP was written through BatchSave, under the emulator's cap


def test_incremental_noop_pass_writes_nothing_and_changes_are_written_once():
    figures, out = run("incremental.py", "--sizes", "20,40", "--changes", "5", "--latency-ms", "0", "--overlap", "2",
                       "--settle", "3", "--profile", "--top", "5")
    assert figures["complete"] == "1"
    for size in ("20", "40"):
        assert figures[f"noop_writes_{size}"] == "0"
        assert figures[f"change_writes_{size}"] == "10"  # 5 changed accounts, each to Zoho and the ERP
        # CPU per process over the pass: crmsync's own and each emulator's
        assert float(figures[f"change_cpu_crmsync_{size}"]) > 0
        assert all(f"noop_cpu_{who}_{size}" in figures for who in ("crmsync", "fxiaoke", "zoho", "kingdee"))
        assert f"profile of crmsync's process, size {size}, noop pass" in out
    assert float(figures["noop_t_ratio"]) > 0 and int(figures["noop_max_calls_per_system"]) >= 1


def test_engine_syncs_every_record_and_times_sqlite():
    figures, out = run("engine.py", "--records", "300", "--sql-time")
    # engine.py itself checks every account reached the other system and the no-op pass wrote nothing.
    assert int(figures["sqlite_initial_records_per_s"]) > 0
    assert 0 < float(figures["sqlite_initial_sql_s"]) < float(figures["sqlite_initial_s"])
    assert int(figures["sqlite_initial_sql_ceiling_records_per_s"]) > int(figures["sqlite_initial_records_per_s"])
    assert "inside SQLite" in out and "rows written" in out


def test_memory_reports_peak_rss_per_size():
    figures, out = run("memory.py", "--sizes", "25", "--no-erp")
    assert figures["complete"] == "1" and float(figures["rss_mb_25"]) > 20
    assert "MB per 10,000 accounts" in out


@pytest.mark.postgres
def test_workers_drain_the_queue_with_two_processes():
    url = os.environ.get("CRMSYNC_TEST_DATABASE_URL")
    if not url:
        pytest.skip("CRMSYNC_TEST_DATABASE_URL is not set")
    figures, out = run("workers.py", "--jobs", "20", "--processes", "2", "--latency-ms", "0", "--url", url)
    # every job done and every edit found in Zoho (complete=1 checks both)
    assert figures["complete"] == "1" and float(figures["jobs_per_s_2"]) > 0 and figures["speedup_2"] == "1.0"
    assert "first sync of 20 accounts" in out


def test_vs_airbyte_crmsync_side_delivers_every_record():
    figures, _ = run("vs_airbyte.py", "--sides", "crmsync", "--sizes", "2100", "--latency-ms", "0")
    # past 2,000 records: crmsync switches to page_token and delivers them all, each once
    assert figures["crmsync_delivered_2100"] == "2100" and figures["crmsync_complete"] == "1"
    assert int(figures["crmsync_calls_2100"]) >= 11  # 200 a page at most


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_bench_leaves_no_emulator_running():
    """SIGKILL runs no `finally`: the emulators die with the bench process anyway (harness.die_with_parent)."""
    import signal
    import time

    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); import harness\n"
        "with harness.emulators(harness.Limits(), ('zoho',)) as emus:\n"
        "    print(emus['zoho'].process.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    bench = subprocess.Popen([sys.executable, "-c", script, str(BENCH)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        emulator = int(bench.stdout.readline())
        os.kill(bench.pid, signal.SIGKILL)
        bench.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(emulator, 0)
            except ProcessLookupError:
                return
            with open(f"/proc/{emulator}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    return  # exited; only its (dead) parent could reap it
            time.sleep(0.1)
        os.kill(emulator, signal.SIGKILL)
        pytest.fail("the emulator outlived the killed bench")
    finally:
        if bench.poll() is None:
            bench.kill()
