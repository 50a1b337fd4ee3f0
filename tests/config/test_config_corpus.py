"""A corpus of broken configurations written against the real connectors (Zoho, Fxiaoke), each
answered by one precise ``FILE:LINE:COL: key.path: message`` and exit code 2 from
``crmsync validate``, never a traceback.

Each case is the good configuration below with one mistake; the expected line, column and key
path are those of the token to fix, checked by hand against the text.
"""
from __future__ import annotations

import sys

import pytest

from config.errors import ConfigError
from config.loader import parse_config
from connectors import registry


@pytest.fixture(autouse=True)
def fake_plugins():
    """Overrides tests/config/conftest.py: this corpus uses the real connector plugins."""
    return registry.plugins()


GOOD = """\
systems:
  zoho:
    type: zoho
    accounts_url: http://127.0.0.1:8555
    api_domain: http://127.0.0.1:8555
    client_id: 1000.CLIENTID
    client_secret: zoho-client-secret
    refresh_token: 1000.refresh.token
  fxiaoke:
    type: fxiaoke
    host: http://127.0.0.1:8556
    app_id: FSAID_131a6b2
    app_secret: fx-app-secret
    permanent_code: FX-PERMANENT-CODE
entities:
  account:
    model: Account
    systems:
      zoho:
        object: Accounts
        fields:
          name: Account_Name
          phone: Phone
          industry: Industry
      fxiaoke:
        object: AccountObj
        fields:
          name: name
          phone: tel
          industry: industry
flows:
  accounts:
    entity: account
    systems: [zoho, fxiaoke]
    schedule: {interval: 5m}
"""
END = GOOD.count("\n")  # text appended to GOOD starts on line END + 1


def edit(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


ZOHO_PHONE = "          phone: Phone\n"
ZOHO_INDUSTRY = "          industry: Industry\n"
FX_SETTINGS_END = "    permanent_code: FX-PERMANENT-CODE\n"
FLOW_END = "    schedule: {interval: 5m}\n"

# (text, "LINE:COL", key path, phrase of the message)
CASES = [
    # -- field mappings ------------------------------------------------------------------------
    pytest.param(edit(ZOHO_PHONE, "          phnoe: Phone\n"), "23:11", "entities.account.systems.zoho.fields.phnoe",
                 "unknown canonical field of Account 'phnoe'; did you mean 'phone'?", id="field-unknown-canonical"),
    pytest.param(edit(ZOHO_PHONE, "          phone:\n"), "23:17", "entities.account.systems.zoho.fields.phone",
                 "expected a system field name or a mapping such as {field: …}, found nothing", id="field-empty"),
    pytest.param(edit(ZOHO_PHONE, "          phone: 42\n"), "23:18", "entities.account.systems.zoho.fields.phone",
                 "found a number", id="field-number"),
    pytest.param(edit(ZOHO_PHONE, "          phone: [Phone]\n"), "23:11", "entities.account.systems.zoho.fields.phone",
                 "found a list", id="field-list"),
    pytest.param(edit(ZOHO_PHONE, "          phone: {field: Phone, drection: read}\n"), "23:33",
                 "entities.account.systems.zoho.fields.phone.drection", "did you mean 'direction'?", id="field-misspelt-option"),
    pytest.param(edit(ZOHO_PHONE, "          phone: {field: Phone, direction: sideways}\n"), "23:44",
                 "entities.account.systems.zoho.fields.phone.direction", "'sideways' is not allowed: expected 'both', 'read' or 'write'",
                 id="field-bad-direction"),
    pytest.param(edit(ZOHO_PHONE, "          phone: {field: Phone, type: telephone}\n"), "23:39",
                 "entities.account.systems.zoho.fields.phone.type", "unknown converter 'telephone'", id="field-unknown-converter"),
    # -- transforms ----------------------------------------------------------------------------
    pytest.param(edit(ZOHO_PHONE, "          phone: {field: Phone, transform: 'trim(value'}\n"), "23:44",
                 "entities.account.systems.zoho.fields.phone.transform", "expected ')' or ','", id="transform-unclosed-call"),
    pytest.param(edit(ZOHO_PHONE, "          phone: {field: Phone, transform: 'trmi(value)'}\n"), "23:44",
                 "entities.account.systems.zoho.fields.phone.transform", "unknown function 'trmi'; did you mean 'trim'?",
                 id="transform-unknown-function"),
    pytest.param(edit(ZOHO_PHONE, "          phone: {field: Phone, transform: [trim, uper]}\n"), "23:33",
                 "entities.account.systems.zoho.fields.phone.transform", "step 2: unknown function 'uper'",
                 id="transform-pipeline-step"),
    pytest.param(edit(ZOHO_PHONE, "          phone: {field: Phone, transform: {read: 42}}\n"), "23:51",
                 "entities.account.systems.zoho.fields.phone.transform.read", "expected text or a list, found a number",
                 id="transform-wrong-type"),
    # -- value maps ----------------------------------------------------------------------------
    pytest.param(edit(ZOHO_INDUSTRY, "          industry: {field: Industry, value_map: industy}\n"), "24:50",
                 "entities.account.systems.zoho.fields.industry.value_map", "unknown value map 'industy'",
                 id="value-map-unknown"),
    pytest.param(edit(ZOHO_INDUSTRY, "          industry: {field: Industry, value_map: {unmapped: error}}\n"), "24:39",
                 "entities.account.systems.zoho.fields.industry.value_map.values", "required key 'values' is missing",
                 id="value-map-inline-without-values"),
    pytest.param(GOOD + "value_maps:\n  industry:\n    unmapped: ignore\n    values: {tech: {zoho: Technology}}\n",
                 f"{END + 3}:15", "value_maps.industry.unmapped", "'ignore' is not allowed", id="value-map-bad-policy"),
    pytest.param(GOOD + "value_maps:\n  industry:\n    unmapped: default\n    values: {tech: {zoho: Technology}}\n",
                 f"{END + 2}:3", "value_maps.industry", "unmapped: default needs a 'default'", id="value-map-default-missing"),
    pytest.param(GOOD + "value_maps:\n  industry:\n    values:\n      tech: {zoho: Technology, fxioke: '1'}\n",
                 f"{END + 4}:32", "value_maps.industry.values.tech.fxioke", "unknown system 'fxioke'; did you mean 'fxiaoke'?",
                 id="value-map-unknown-system"),
    pytest.param(GOOD + "value_maps:\n  industry:\n    values: [tech]\n", f"{END + 3}:5", "value_maps.industry.values",
                 "expected a mapping, found a list", id="value-map-values-list"),
    pytest.param(GOOD + "value_maps:\n  industry:\n    values:\n      tech: {zoho: {a: 1}}\n", f"{END + 4}:14",
                 "value_maps.industry.values.tech.zoho", "expected text, a whole number, true/false or a list, found a mapping",
                 id="value-map-value-wrong-type"),
    # -- references and entities ---------------------------------------------------------------
    pytest.param(edit(ZOHO_INDUSTRY, ZOHO_INDUSTRY + "          partner: {field: Parent_Account, reference: partnr}\n"),
                 "25:55", "entities.account.systems.zoho.fields.partner.reference", "unknown entity 'partnr'",
                 id="reference-unknown-entity"),
    pytest.param(edit(ZOHO_INDUSTRY, ZOHO_INDUSTRY + "          partner: {field: Parent_Account, reference: {entity: account}}\n"),
                 "25:64", "entities.account.systems.zoho.fields.partner.reference.entity",
                 "entity 'account' holds Account records, but partner points at Partner records", id="reference-wrong-model"),
    pytest.param(edit("    model: Account\n", "    model: Acount\n"), "17:12", "entities.account.model",
                 "unknown canonical model 'Acount'; did you mean 'Account'?", id="entity-unknown-model"),
    pytest.param(edit("    model: Account\n", "    description: 客户\n"), "16:3", "entities.account.model",
                 "required key 'model' is missing", id="entity-without-model"),
    pytest.param(edit("        object: Accounts\n", ""), "19:7", "entities.account.systems.zoho.object",
                 "required key 'object' is missing", id="mapping-without-object"),
    pytest.param(edit("    model: Account\n", "    model: Account\n    match: {keys: [tax_idd]}\n"), "18:20",
                 "entities.account.match.keys[0]", "did you mean 'tax_id'?", id="match-unknown-field"),
    pytest.param(edit("    model: Account\n", "    model: Account\n    match: {keys: [name], min_score: 1.5}\n"), "18:38",
                 "entities.account.match.min_score", "less than or equal to 1", id="match-score-above-one"),
    pytest.param(edit("    model: Account\n", "    model: Account\n    match: {keys: [{field: name, normalize: soundex}]}\n"),
                 "18:45", "entities.account.match.keys[0].normalize", "unknown normaliser 'soundex'", id="match-unknown-normaliser"),
    pytest.param(edit("        object: AccountObj\n", "        object: AccountObj\n        timezone: Mars/Olympus\n"), "27:19",
                 "entities.account.systems.fxiaoke.timezone", "unknown time zone 'Mars/Olympus'", id="mapping-unknown-timezone"),
    pytest.param(edit("          industry: industry\n", "          industry: industry\n        tests:\n          - name: 空的\n"
                      "            input: {name: 华为}\n"), "32:13", "entities.account.systems.fxiaoke.tests[0]",
                 "a mapping test needs 'canonical', 'expect' or 'error'", id="mapping-test-without-expectation"),
    # -- flows and schedules -------------------------------------------------------------------
    pytest.param(edit("flows:\n  accounts:\n    entity: account\n    systems: [zoho, fxiaoke]\n" + FLOW_END, "flows:\n  - accounts\n"),
                 "31:1", "flows", "expected a mapping, found a list", id="flows-as-list"),
    pytest.param(edit("    systems: [zoho, fxiaoke]\n", "    systems: [zoho, fxiaoke, zoho]\n"), "34:30",
                 "flows.accounts.systems[2]", "system 'zoho' is listed twice", id="flow-system-twice"),
    pytest.param(edit("    systems: [zoho, fxiaoke]\n", "    systems: [zoho, kingdee]\n"), "34:21",
                 "flows.accounts.systems[1]", "unknown system 'kingdee' (defined: fxiaoke, zoho)", id="flow-unknown-system"),
    pytest.param(edit(FLOW_END, FLOW_END + "    shedule: {interval: 1m}\n"), "36:5", "flows.accounts.shedule",
                 "did you mean 'schedule'?", id="flow-misspelt-key"),
    pytest.param(edit(FLOW_END, FLOW_END + "    direction: both_ways\n"), "36:16", "flows.accounts.direction",
                 "'both_ways' is not allowed: expected 'both' or 'one_way'", id="flow-bad-direction"),
    pytest.param(edit(FLOW_END, FLOW_END + "    source: zoho\n"), "32:3", "flows.accounts",
                 "'source' only applies to direction: one_way", id="flow-source-without-one-way"),
    pytest.param(edit(FLOW_END, FLOW_END + "    create_in: [fxiaoke, erp]\n"), "36:26", "flows.accounts.create_in[1]",
                 "unknown system of this flow 'erp'", id="flow-create-in-outside"),
    pytest.param(edit(FLOW_END, FLOW_END + "    webhooks: sometimes\n"), "36:15", "flows.accounts.webhooks",
                 "valid boolean", id="flow-webhooks-not-boolean"),
    pytest.param(edit("{interval: 5m}", "{}"), "35:5", "flows.accounts.schedule",
                 "give exactly one of 'cron' or 'interval'", id="schedule-empty"),
    pytest.param(edit("{interval: 5m}", "every 5 minutes"), "35:15", "flows.accounts.schedule",
                 "expected a mapping, found text", id="schedule-as-text"),
    pytest.param(edit("{interval: 5m}", "{interval: 0s}"), "35:26", "flows.accounts.schedule.interval",
                 "interval must be at least 1 second", id="schedule-zero-interval"),
    pytest.param(edit("{interval: 5m}", "{interval: -5m}"), "35:26", "flows.accounts.schedule.interval",
                 "'-5m' is not a duration", id="schedule-negative-interval"),
    pytest.param(edit("{interval: 5m}", "{cron: '0 2 * *'}"), "35:22", "flows.accounts.schedule.cron",
                 "bad cron expression '0 2 * *': Wrong number of fields", id="cron-four-fields"),
    pytest.param(edit("{interval: 5m}", "{cron: '0 25 * * *'}"), "35:22", "flows.accounts.schedule.cron",
                 "bad cron expression '0 25 * * *'", id="cron-hour-25"),
    pytest.param(edit("{interval: 5m}", "{cron: 5}"), "35:22", "flows.accounts.schedule.cron",
                 "valid string", id="cron-number"),
    pytest.param(edit(FLOW_END, FLOW_END + "    reconcile: {cron: '30 2 * * *', timezone: China/Beijing}\n"), "36:47",
                 "flows.accounts.reconcile.timezone", "unknown time zone 'China/Beijing'", id="reconcile-unknown-timezone"),
    # -- credentials and environment -----------------------------------------------------------
    pytest.param(edit("    client_secret: zoho-client-secret\n", ""), "2:3", "systems.zoho.client_secret",
                 "required key 'client_secret' is missing", id="zoho-without-client-secret"),
    pytest.param(edit("    client_id: 1000.CLIENTID\n", "    client_id: 1000.CLIENTID\n    data_center: mars\n"), "7:18",
                 "systems.zoho.data_center", "'mars' is not allowed", id="zoho-unknown-data-center"),
    pytest.param(edit("    client_id: 1000.CLIENTID\n", "    client_id: 1000.CLIENTID\n    concurrency: many\n"), "7:18",
                 "systems.zoho.concurrency", "valid integer", id="zoho-concurrency-text"),
    pytest.param(edit("    app_id: FSAID_131a6b2\n", ""), "9:3", "systems.fxiaoke.app_id",
                 "required key 'app_id' is missing", id="fxiaoke-without-app-id"),
    pytest.param(edit(FX_SETTINGS_END, FX_SETTINGS_END + "    notifications: {style: carrier_pigeon}\n"), "15:28",
                 "systems.fxiaoke.notifications.style", "'carrier_pigeon' is not allowed", id="fxiaoke-unknown-push-style"),
    pytest.param(edit(FX_SETTINGS_END, FX_SETTINGS_END + "    notifications: {style: apl_function, apl_secret: short}\n"),
                 "15:54", "systems.fxiaoke.notifications.apl_secret", "≥ 16 characters", id="fxiaoke-apl-secret-short"),
    pytest.param(edit(FX_SETTINGS_END, FX_SETTINGS_END + "    notifications: {style: open_platform, token: t, encoding_aes_key: short}\n"),
                 "15:71", "systems.fxiaoke.notifications.encoding_aes_key", "43-character encodingAesKey",
                 id="fxiaoke-aes-key-short"),
    pytest.param(edit("zoho-client-secret", "${CRMSYNC_CORPUS_UNSET}"), "7:20", "systems.zoho.client_secret",
                 "environment variable CRMSYNC_CORPUS_UNSET is not set", id="env-unset"),
    pytest.param(edit("zoho-client-secret", "${CRMSYNC_CORPUS_UNSET"), "7:20", "systems.zoho.client_secret",
                 "unclosed variable reference", id="env-unclosed"),
    pytest.param(edit("zoho-client-secret", "${CRMSYNC_CORPUS_UNSET:-}"), "7:20", "systems.zoho.client_secret",
                 "client_secret is empty", id="env-empty-default-for-a-credential"),
    pytest.param(GOOD + "server:\n  port: ${CRMSYNC_CORPUS_UNSET:-eighty}\n", f"{END + 2}:9", "server.port",
                 "valid integer", id="env-default-wrong-type"),
    pytest.param(edit("    type: fxiaoke\n", "    type: [fxiaoke]\n"), "10:5", "systems.fxiaoke.type",
                 "expected a system type name", id="system-type-list"),
    pytest.param(edit("  fxiaoke:\n    type: fxiaoke\n", "  fxiaoke:\n    type: fxaioke\n"), "10:11", "systems.fxiaoke.type",
                 "did you mean 'fxiaoke'?", id="system-type-misspelt"),
    # -- conflicts and deletes -----------------------------------------------------------------
    pytest.param(GOOD + "conflicts:\n  account:\n    fields:\n      phnoe: manual\n", f"{END + 4}:7",
                 "conflicts.account.fields.phnoe", "did you mean 'phone'?", id="conflicts-unknown-field"),
    pytest.param(GOOD + "conflicts:\n  account:\n    fields:\n      phone: newest\n", f"{END + 4}:14",
                 "conflicts.account.fields.phone", "'newest' is not allowed", id="conflicts-unknown-policy"),
    pytest.param(GOOD + "conflicts:\n  account:\n    default: {source_of_truth: zoho, weight: 2}\n", f"{END + 3}:38",
                 "conflicts.account.default.weight", "unknown key 'weight'", id="conflicts-extra-key"),
    pytest.param(GOOD + "conflicts:\n  account: [manual]\n", f"{END + 2}:3", "conflicts.account",
                 "expected a mapping, found a list", id="conflicts-as-list"),
    pytest.param(GOOD + "deletes:\n  account: purge\n", f"{END + 2}:12", "deletes.account", "'purge' is not allowed",
                 id="deletes-unknown-policy"),
    pytest.param(GOOD + "deletes:\n  account: {policy: deactivate, field: statuss, value: inactive}\n", f"{END + 2}:40",
                 "deletes.account.field", "did you mean 'status'?", id="deletes-deactivate-unknown-field"),
    # -- server, sync, logging -----------------------------------------------------------------
    pytest.param(GOOD + "server: localhost\n", f"{END + 1}:9", "server", "expected a mapping, found text", id="server-as-text"),
    pytest.param(GOOD + "server:\n  port: true\n", f"{END + 2}:9", "server.port", "found true/false", id="server-port-boolean"),
    pytest.param(GOOD + "server:\n  port: 80.5\n", f"{END + 2}:9", "server.port", "fractional part", id="server-port-fraction"),
    pytest.param(GOOD + "server:\n  max_body_bytes: 10\n", f"{END + 2}:19", "server.max_body_bytes",
                 "greater than or equal to 1024", id="server-body-limit-tiny"),
    pytest.param(GOOD + "server:\n  ops_token: {a: 1}\n", f"{END + 2}:3", "server.ops_token", "valid string",
                 id="server-token-mapping"),
    pytest.param(GOOD + "sync:\n  max_attempts: 0\n", f"{END + 2}:17", "sync.max_attempts", "greater than or equal to 1",
                 id="sync-zero-attempts"),
    pytest.param(GOOD + "sync:\n  lease: soon\n", f"{END + 2}:10", "sync.lease", "'soon' is not a duration", id="sync-bad-lease"),
    pytest.param(GOOD + "logging:\n  level: verbose\n", f"{END + 2}:10", "logging.level", "'verbose' is not allowed",
                 id="logging-unknown-level"),
    # -- YAML structure: duplicates, keys, aliases -----------------------------------------------
    pytest.param(edit("    client_id: 1000.CLIENTID\n", "    client_id: 1000.CLIENTID\n    client_id: 1000.OTHER\n"), "7:5",
                 "systems.zoho.client_id", "duplicate key 'client_id' (first defined on line 6)", id="duplicate-setting"),
    pytest.param(edit("          phone: tel\n", "          phone: tel\n          phone: mobile\n"), "30:11",
                 "entities.account.systems.fxiaoke.fields.phone", "duplicate key 'phone' (first defined on line 29)",
                 id="duplicate-field"),
    pytest.param(GOOD + "flows:\n  x: {entity: account, systems: [zoho, fxiaoke]}\n", f"{END + 1}:1", "flows",
                 "duplicate key 'flows' (first defined on line 31)", id="duplicate-section"),
    pytest.param(edit("{interval: 5m}", "{interval: 5m, interval: 10m}"), "35:30", "flows.accounts.schedule.interval",
                 "duplicate key 'interval'", id="duplicate-key-in-flow-mapping"),
    pytest.param(GOOD + "value_maps:\n  ~: {values: {x: {zoho: X}}}\n", f"{END + 2}:3", "value_maps",
                 "a key must be a name, found nothing", id="null-key"),
    pytest.param(GOOD + "value_maps:\n  ? [a, b]\n  : {values: {x: {zoho: X}}}\n", f"{END + 2}:5", "value_maps",
                 "a key must be a name, found a list", id="list-key"),
    pytest.param(GOOD + "value_maps:\n  a: &loop\n    values: {b: *loop}\n", f"{END + 3}:14", "value_maps.a.values.b",
                 "circular alias: this value contains itself", id="circular-alias"),
    pytest.param(GOOD + "server: &srv\n  host: *srv\n", f"{END + 2}:3", "server.host", "circular alias", id="circular-alias-scalar-key"),
    pytest.param(GOOD + "value_maps:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                 + "".join(f"  {n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)),
                 f"{END + 2}", "", "more than 200000 values once aliases are expanded", id="alias-bomb"),
    pytest.param(GOOD + "server:\n  port: !!python/object:os.system ls\n", f"{END + 2}:9", "", "could not determine a constructor",
                 id="python-tag"),
    pytest.param(GOOD + "server:\n\tport: 1\n", f"{END + 2}:1", "", "found character '\\t'", id="tab-indent"),
]


def _split(line: str) -> tuple[str, str, str]:
    """``c.yaml:12:5: a.b: message`` → ("12:5", "a.b", "message"); the key path is empty for file-level errors."""
    _, row, col, rest = line.split(":", 3)
    rest = rest.strip()
    head, sep, tail = rest.partition(": ")
    if sep and " " not in head and not head.startswith("YAML"):
        return f"{row}:{col}", head, tail
    return f"{row}:{col}", "", rest


@pytest.mark.parametrize(("text", "where", "key_path", "phrase"), CASES)
def test_broken_config_is_located(text, where, key_path, phrase):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", environ={"HOME": "/nonexistent"})
    lines = [issue.format() for issue in info.value.issues]
    assert len(lines) == 1, lines  # one mistake, one message: no echoes of it elsewhere
    position, path, message = _split(lines[0])
    assert position == where or (":" not in where and position.split(":")[0] == where), lines[0]
    assert path == key_path, lines[0]
    assert phrase in message, lines[0]


def test_the_corpus_is_large_and_its_base_is_good():
    assert len(CASES) >= 70
    config = parse_config(GOOD, "c.yaml", environ={})
    assert set(config.systems) == {"zoho", "fxiaoke"}


@pytest.mark.parametrize(("text", "where", "key_path", "phrase"), CASES)
def test_crmsync_validate_exits_2_without_a_traceback(text, where, key_path, phrase, tmp_path, monkeypatch, capsys):
    from sync_engine.cli import main

    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.delenv("CRMSYNC_CORPUS_UNSET", raising=False)
    monkeypatch.setattr(sys, "argv", ["crmsync", "validate", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured
    assert "Traceback" not in captured.out + captured.err
    assert f"{path}:{where}" in captured.err
    assert phrase in captured.err.replace("\n", "")
