"""Dead-letter replay, reviews and history — through the operations API and the CLI."""
from __future__ import annotations

import json
import textwrap

from sqlalchemy import select
from typer.testing import CliRunner

from sync_engine.cli import app
from sync_engine.operations import history, list_dead_letters, list_reviews, replay_dead_letters, resolve_review
from sync_engine.state.models import DeadLetter, Link

from .conftest import THREE_SYSTEMS


async def test_dead_letter_replayed_after_the_cause_is_fixed(engine, systems):
    fx, erp = systems["fx"], systems["erp"]
    erp.settings.required = ["FTaxRegisterCode"]
    fx.user_create("AccountObj", {"name": "缺税号有限公司"})
    await engine.run_all()
    (letter,) = list_dead_letters(engine)
    assert letter.code == "MANDATORY_NOT_FOUND" and erp.records("BD_Customer") == {}
    erp.settings.required = []  # the admin fixed the ERP's rule
    await replay_dead_letters(engine, [letter.id])
    assert len(erp.records("BD_Customer")) == 1
    with engine.rt.store.read() as s:
        assert s.get(DeadLetter, letter.id).status == "replayed"
    assert list_dead_letters(engine) == []


async def test_ambiguous_match_accepted_links_and_syncs(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    fx.user_create("AccountObj", {"name": "Zenith Robotics Co., Ltd."})
    fx.user_create("AccountObj", {"name": "ZENITH ROBOTICS INC"})
    zid = zoho.user_create("Accounts", {"Account_Name": "Zenith Robotics", "Phone": "021-1"})
    await engine.run_all()
    (review,) = list_reviews(engine, kind="match")
    choice = review.details["candidates"][0]["canonical_id"]
    await resolve_review(engine, review.id, accept=True, choice=choice)
    with engine.rt.store.read() as s:
        link = s.scalar(select(Link).where(Link.system == "zoho", Link.external_id == zid))
    assert link is not None and link.canonical_id == choice
    await engine.run_all()
    assert len(zoho.records("Accounts")) == 2  # the other Zenith was created; this one was not duplicated
    assert list_reviews(engine) == []


async def test_ambiguous_match_rejected_becomes_its_own_record(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    fx.user_create("AccountObj", {"name": "Zenith Robotics Co., Ltd."})
    fx.user_create("AccountObj", {"name": "ZENITH ROBOTICS INC"})
    zoho.user_create("Accounts", {"Account_Name": "Zenith Robotics"})
    await engine.run_all()
    (review,) = list_reviews(engine, kind="match")
    await resolve_review(engine, review.id, accept=False)
    await engine.run_all()
    assert len(fx.records("AccountObj")) == 3  # the Zoho one is a third company, now in Fxiaoke too


async def test_manual_conflict_settled_by_a_person(engine, systems):
    fx, zoho = systems["fx"], systems["zoho"]
    rid = fx.user_create("AccountObj", {"name": "Globex", "industry": "retail"})
    await engine.run_all()
    (zid,) = zoho.records("Accounts")
    fx.user_update("AccountObj", rid, {"industry": "energy"})
    zoho.user_update("Accounts", zid, {"Industry": "healthcare"})
    await engine.run_all()
    (review,) = list_reviews(engine, kind="conflict")
    await resolve_review(engine, review.id, accept=True, choice="zoho")
    assert fx.records("AccountObj")[rid]["industry"] == "healthcare"
    cid, record, links, events = history(engine, "account", rid)
    assert record.values["industry"] == "healthcare"
    assert {e.kind for e in events} >= {"read", "write", "conflict", "review"}
    assert {l.system for l in links} == {"fx", "zoho", "erp"}


def test_cli_dry_run_json_and_listings(memory_plugin, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(textwrap.dedent(THREE_SYSTEMS) + f"\nstate: {{url: 'sqlite:///{tmp_path / 's.db'}'}}\n", encoding="utf-8")
    from .memory import MemorySystem

    MemorySystem.instances.clear()
    runner = CliRunner()
    result = runner.invoke(app, ["sync", str(config), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    fx = MemorySystem.instances["fx"]
    fx.user_create("AccountObj", {"name": "深圳市华为技术有限公司"})
    result = runner.invoke(app, ["sync", str(config), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    accounts = next(p for p in plan if p["flow"] == "accounts")
    assert {(p["system"], p["action"]) for p in accounts["planned"]} == {("zoho", "create"), ("erp", "create")}
    assert MemorySystem.instances["zoho"].records("Accounts") == {}
    result = runner.invoke(app, ["sync", str(config)])
    assert result.exit_code == 0, result.output
    assert len(MemorySystem.instances["zoho"].records("Accounts")) == 1
    for command in (["dlq", "list", str(config)], ["review", "list", str(config)], ["status", str(config)]):
        outcome = runner.invoke(app, command)
        assert outcome.exit_code == 0, (command, outcome.output)
    outcome = runner.invoke(app, ["history", str(config), "account", next(iter(fx.records("AccountObj")))])
    assert outcome.exit_code == 0 and "write" in outcome.output
