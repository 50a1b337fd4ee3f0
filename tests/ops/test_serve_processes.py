"""Real `crmsync serve` and `crmsync worker` processes sharing one PostgreSQL state database.

* Two `serve` processes, each with its own scheduler, run every slot of a flow's
  2-second schedule exactly once.
* Four `worker` processes drain webhook-triggered work (posted to a real receiver), each
  job executed once; a worker killed with SIGKILL in the middle of a job loses it to
  another worker after the lease, and the job completes exactly once.
"""
from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from collections import Counter
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from sqlalchemy import create_engine, text

from connectors.emulation.crmsync_process import CLI, CrmsyncProcess
from connectors.emulation.server import free_port, serve_in_thread
from connectors.emulation.systems import emulator_systems_yaml
from connectors.fxiaoke.emulator import create_app as fxiaoke_app
from connectors.fxiaoke.push_apl import build_push
from connectors.zoho.emulator import create_app as zoho_app

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

SECRET = "processes-apl-secret-0123456789"
SLOT = 2  # seconds between scheduled passes


def config_text(zoho: str, fx: str, state: str, *, schedule: bool) -> str:
    systems = emulator_systems_yaml(zoho=zoho, fxiaoke=fx, names={"fxiaoke": "fx"}, settings={
        "fx": {"notifications": {"style": "apl_function", "apl_secret": SECRET}}})
    return systems + textwrap.dedent(f"""
        state: {{url: "{state}"}}
        server: {{host: 127.0.0.1, port: {free_port()}}}
        sync: {{lease: 2s, max_attempts: 3}}
        entities:
          account:
            model: Account
            match: {{keys: [name]}}
            systems:
              fx: {{object: AccountObj, fields: {{name: name, phone: tel}}}}
              zoho: {{object: Accounts, fields: {{name: Account_Name, phone: Phone}}}}
        flows:
          accounts:
            entity: account
            systems: [fx, zoho]
            webhooks: true
        """) + (f"    schedule: {{interval: {SLOT}s}}\n" if schedule else "")


@pytest.fixture
def emulators():
    with serve_in_thread(zoho_app()) as zoho, serve_in_thread(fxiaoke_app()) as fx:
        yield zoho, fx


@contextmanager
def process(args: list[str], log_path):
    """A crmsync process; on leaving, SIGTERM and a clean exit (status 0, no traceback) are required."""
    with CrmsyncProcess(args, log=log_path) as child:
        yield child
    output = child.output
    if child.returncode != -signal.SIGKILL:
        assert child.returncode == 0, output
        assert "Traceback" not in output, output


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def rows(db, sql: str, **params):
    with db.connect() as connection:
        return connection.execute(text(sql), params).all()


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_serve_processes_run_each_scheduled_slot_once(emulators, pg_databases, tmp_path):
    zoho, fx = emulators
    admin = httpx.Client(timeout=10)
    for i in range(3):
        admin.post(f"{fx.url}/_admin/records/AccountObj", json={"name": f"调度测试公司{i}", "tel": f"0755-{i:04d}"})
    url = pg_databases()
    config = tmp_path / "scheduled.yaml"
    config.write_text(config_text(zoho.url, fx.url, url, schedule=True), encoding="utf-8")
    ports = [free_port(), free_port()]
    db = create_engine(url)
    try:
        with ExitStack() as stack:
            for n, port in enumerate(ports):
                stack.enter_context(process(["serve", str(config), "--workers", "1", "--port", str(port)],
                                            tmp_path / f"serve{n}.log"))
            wait_for(lambda: all(healthy(p) for p in ports), 60, "both serve processes")
            # Both schedulers are up from here: count the slots that fire from now on.
            since = rows(db, "SELECT now()")[0][0]
            wait_for(lambda: len(rows(db, "SELECT id FROM jobs WHERE kind = 'flow_pass' AND created_at > :t",
                                      t=since)) >= 4, 40, "four scheduled slots")
            time.sleep(1.0)
        jobs = rows(db, "SELECT id, unique_key, status, attempts FROM jobs WHERE kind = 'flow_pass'")
        runs = Counter(r.job_id for r in rows(db, "SELECT job_id FROM runs WHERE flow = 'accounts'"))
        zoho_names = {r["Account_Name"] for r in admin.get(f"{zoho.url}/_admin/records/Accounts").json()}
    finally:
        db.dispose()
    slots = [j.unique_key for j in jobs]
    assert len(slots) >= 4, slots
    assert len(slots) == len(set(slots)), f"a slot was enqueued twice: {sorted(slots)}"
    done = [j for j in jobs if j.status == "done"]
    assert len(done) >= 3 and all(j.attempts == 1 for j in done), jobs
    # A slot that fired as the processes were stopping may still wait, unrun (or given back unrun).
    assert all(j.status == "queued" and j.attempts == 0 for j in jobs if j.status != "done"), jobs
    assert {j.id: runs[j.id] for j in done} == {j.id: 1 for j in done}, f"each slot's pass runs exactly once: {runs}"
    assert {f"调度测试公司{i}" for i in range(3)} <= zoho_names  # the passes did real work


def test_four_worker_processes_drain_webhooks_once_and_rescue_a_killed_one(emulators, pg_databases, tmp_path):
    zoho, fx = emulators
    admin = httpx.Client(timeout=30)
    ids = [admin.post(f"{fx.url}/_admin/records/AccountObj", json={"name": f"深圳测试公司{i:02d}", "tel": "0"}).json()["_id"]
           for i in range(41)]
    url = pg_databases()
    config = tmp_path / "workers.yaml"
    config.write_text(config_text(zoho.url, fx.url, url, schedule=False), encoding="utf-8")
    first = subprocess.run([*CLI, "sync", str(config)], capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    port = free_port()
    hook = f"http://127.0.0.1:{port}/webhooks/fx"

    def deliver(n: int, record_id: str, phone: str) -> None:
        admin.patch(f"{fx.url}/_admin/records/AccountObj/{record_id}", json={"tel": phone})  # a user's edit
        headers, body = build_push(SECRET, object_api_name="AccountObj", ids=[record_id], event="update",
                                   timestamp_ms=int(time.time() * 1000), event_id=f"delivery-{n}")
        assert admin.post(hook, content=body, headers=headers).status_code == 200

    def zoho_phones() -> dict[str, str]:
        return {r["Account_Name"]: r.get("Phone") for r in admin.get(f"{zoho.url}/_admin/records/Accounts").json()}

    db = create_engine(url)
    try:
        with ExitStack() as stack:
            stack.enter_context(process(["serve", str(config), "--workers", "0", "--port", str(port)], tmp_path / "serve.log"))
            wait_for(lambda: healthy(port), 60, "serve")
            workers = [stack.enter_context(process(["worker", str(config), "--workers", "2"], tmp_path / f"worker{n}.log"))
                       for n in range(4)]
            wait_for(lambda: all("worker running" in (tmp_path / f"worker{n}.log").read_text() for n in range(4)), 60,
                     "the four worker processes")
            # Zoho answers in 0.2 s, so a job lasts long enough for the next deliveries to go to other processes.
            admin.patch(f"{zoho.url}/_admin/switches", json={"latency_ms": 200})
            for n, record_id in enumerate(ids[:40]):
                deliver(n, record_id, f"0755-1{n:03d}")
            wait_for(lambda: rows(db, "SELECT count(*) FROM jobs WHERE kind = 'webhook' AND status = 'done'")[0][0] == 40,
                     60, "the 40 webhook jobs to finish")
            drained = rows(db, "SELECT id, attempts, claimed_by, last_error FROM jobs WHERE kind = 'webhook'")
            phones = zoho_phones()

            # A worker dies (SIGKILL) while it holds a job: Zoho answers slowly, so the job is mid-way.
            admin.patch(f"{zoho.url}/_admin/switches", json={"latency_ms": 4000})
            deliver(99, ids[40], "0755-9999")
            job_id, owner = wait_for(lambda: rows(db, "SELECT id, claimed_by FROM jobs WHERE kind = 'webhook' "
                                                      "AND status = 'running'"), 30, "the job to be claimed")[0]
            victim = next(w for w in workers if f":{w.pid}:" in owner)
            time.sleep(1.0)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            admin.patch(f"{zoho.url}/_admin/switches", json={"latency_ms": 0})
            wait_for(lambda: rows(db, "SELECT status FROM jobs WHERE id = :j", j=job_id)[0][0] == "done", 40,
                     "the rescued job to finish")
            rescued = rows(db, "SELECT attempts, claimed_by, last_error FROM jobs WHERE id = :j", j=job_id)[0]
            runs = rows(db, "SELECT status FROM runs WHERE job_id = :j", j=job_id)
            wait_for(lambda: zoho_phones().get("深圳测试公司40") == "0755-9999", 20, "the rescued change in Zoho")
    finally:
        db.dispose()

    # Each delivery's job ran once, the work spread over the processes, and every change arrived.
    assert len(drained) == 40
    assert [j for j in drained if j.attempts != 1] == []
    processes = {j.claimed_by.split(":")[1] for j in drained}
    assert len(processes) >= 2, f"one process did all the work: {processes}"
    assert all(phones[f"深圳测试公司{n:02d}"] == f"0755-1{n:03d}" for n in range(40)), phones
    # The killed worker's job: taken over after its lease by another process and completed once.
    assert rescued.attempts == 2, rescued
    assert f":{victim.pid}:" not in rescued.claimed_by, rescued
    assert "lease expired" in (rescued.last_error or ""), rescued
    # One run finished the job; the killed attempt's run record (if it got that far) was closed, not left running.
    assert sorted(r.status for r in runs) in (["succeeded"], ["failed", "succeeded"]), runs
