"""Broken configurations of the ERP side — the Kingdee connector and the SQL interface-table connector —
each answered by one precise ``FILE:LINE:COL: key.path: message`` and exit code 2 from ``crmsync
validate``, never a traceback (test_config_corpus.py does the same for Zoho and Fxiaoke).

Positions are those of the token to fix, or of the system when a rule spans several keys.
"""
from __future__ import annotations

import sys

import pytest

from config.errors import ConfigError
from config.loader import parse_config
from connectors import registry

from .test_config_corpus import _split


@pytest.fixture(autouse=True)
def fake_plugins():
    """Overrides tests/config/conftest.py: this corpus uses the real connector plugins."""
    return registry.plugins()


GOOD = """\
systems:
  erp:
    type: kingdee
    server_url: http://127.0.0.1:8557/
    acct_id: "65f1c0de2a9b3e"
    username: crmsync
    auth: app_secret
    app_id: 300123_app
    app_secret: kd-app-secret
    timezone: Asia/Shanghai
    page_size: 500
  erp_db:
    type: sql
    url: "mysql+pymysql://crmsync:pw@127.0.0.1:3306/erp"
    webhook_secret: erp-webhook-secret-0123
    objects:
      customer:
        table: v_crm_customer
        key: [cust_no]
        modified_column: modified_at
        interface: {table: crm_customer_if, key: [crm_id]}
entities:
  account:
    model: Account
    systems:
      erp:
        object: BD_Customer
        fields: {name: FName, phone: FTEL}
      erp_db:
        object: customer
        fields: {name: cust_name, phone: phone}
flows:
  accounts:
    entity: account
    systems: [erp, erp_db]
    schedule: {interval: 5m}
"""
SQL_URL = '    url: "mysql+pymysql://crmsync:pw@127.0.0.1:3306/erp"\n'
KD_PAGE = "    page_size: 500\n"


def edit(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


# (text, "LINE:COL", key path, phrase of the message)
CASES = [
    # -- Kingdee: credentials, endpoint, settings ----------------------------------------------------
    pytest.param(edit("    app_secret: kd-app-secret\n", ""), "2:3", "systems.erp",
                 "auth 'app_secret' needs app_id and app_secret", id="kingdee-app-secret-missing"),
    pytest.param(edit("    auth: app_secret\n", "    auth: password\n"), "2:3", "systems.erp",
                 "auth 'password' needs password", id="kingdee-password-auth-without-password"),
    pytest.param(edit("    auth: app_secret\n", "    auth: oauth\n"), "7:11", "systems.erp.auth",
                 "'oauth' is not allowed: expected 'password' or 'app_secret'", id="kingdee-unknown-auth"),
    pytest.param(edit('    acct_id: "65f1c0de2a9b3e"\n', ""), "2:3", "systems.erp.acct_id",
                 "required key 'acct_id' is missing", id="kingdee-without-acct-id"),
    pytest.param(edit("    server_url: http://127.0.0.1:8557/\n", "    server_url: erp.example.com/k3cloud\n"), "4:17",
                 "systems.erp.server_url", "must start with http:// or https://", id="kingdee-url-without-scheme"),
    pytest.param(edit("    timezone: Asia/Shanghai\n", "    timezone: Asia/Shanghia\n"), "10:15", "systems.erp.timezone",
                 "unknown time zone 'Asia/Shanghia'", id="kingdee-unknown-timezone"),
    pytest.param(edit(KD_PAGE, "    page_size: 0\n"), "11:16", "systems.erp.page_size",
                 "greater than or equal to 1", id="kingdee-page-size-zero"),
    pytest.param(edit(KD_PAGE, "    page_sise: 500\n"), "11:5", "systems.erp.page_sise",
                 "did you mean 'page_size'?", id="kingdee-misspelt-setting"),
    pytest.param(edit(KD_PAGE, KD_PAGE + "    objects:\n      customer: {label: 客户}\n"), "13:7",
                 "systems.erp.objects.customer.form_id", "required key 'form_id' is missing", id="kingdee-object-without-form"),
    # -- SQL: the database, its objects, the webhook secret ------------------------------------------
    pytest.param(edit(SQL_URL, ""), "12:3", "systems.erp_db.url", "required key 'url' is missing", id="sql-without-url"),
    pytest.param(edit(SQL_URL, '    url: "not a url"\n'), "12:3", "systems.erp_db",
                 "url is not a valid SQLAlchemy URL", id="sql-url-not-a-url"),
    pytest.param(edit(SQL_URL, '    url: "oracle+nosuch://u:p@h/db"\n'), "14:10", "systems.erp_db.url",
                 "unknown database dialect or driver 'oracle+nosuch'", id="sql-unknown-driver"),
    pytest.param(edit("        key: [cust_no]\n", ""), "17:7", "systems.erp_db.objects.customer.key",
                 "required key 'key' is missing", id="sql-object-without-key"),
    pytest.param(edit("        key: [cust_no]\n", "        key: []\n"), "19:9", "systems.erp_db.objects.customer.key",
                 "key needs at least one column", id="sql-empty-key"),
    pytest.param(edit("        table: v_crm_customer\n", ""), "17:7", "systems.erp_db.objects.customer",
                 "set `table` too", id="sql-object-without-table"),
    pytest.param(edit("        interface: {table: crm_customer_if, key: [crm_id]}\n", "        interface: {key: [crm_id]}\n"),
                 "21:9", "systems.erp_db.objects.customer.interface.table", "required key 'table' is missing",
                 id="sql-interface-without-table"),
    pytest.param(edit("        modified_column: modified_at\n", "        modifed_column: modified_at\n"), "20:9",
                 "systems.erp_db.objects.customer.modifed_column", "did you mean 'modified_column'?", id="sql-misspelt-option"),
    pytest.param(edit("    webhook_secret: erp-webhook-secret-0123\n", "    webhook_secret: abc\n"), "15:21",
                 "systems.erp_db.webhook_secret", "at least 16 characters", id="sql-webhook-secret-short"),
    pytest.param(edit("        object: customer\n", "        object: customers\n"), "30:17",
                 "entities.account.systems.erp_db.object", "unknown object of erp_db 'customers'; did you mean 'customer'?",
                 id="sql-mapping-unknown-object"),
    # -- environment variables: the unset one is the message, not what it breaks further on -----------
    pytest.param(edit("    auth: app_secret\n", "    auth: password\n    password: ${CRMSYNC_CORPUS_UNSET}\n"), "8:15",
                 "systems.erp.password", "environment variable CRMSYNC_CORPUS_UNSET is not set", id="env-kingdee-password-unset"),
    pytest.param(edit(SQL_URL, "    url: ${CRMSYNC_CORPUS_UNSET}\n"), "14:10", "systems.erp_db.url",
                 "environment variable CRMSYNC_CORPUS_UNSET is not set", id="env-sql-url-unset"),
    pytest.param(edit(KD_PAGE, "    page_size: ${CRMSYNC_CORPUS_UNSET:-many}\n"), "11:16", "systems.erp.page_size",
                 "input should be a valid integer", id="env-default-not-a-number"),
]


def test_the_base_is_good():
    config = parse_config(GOOD, "c.yaml", environ={})
    assert {n: s.type for n, s in config.systems.items()} == {"erp": "kingdee", "erp_db": "sql"}


@pytest.mark.parametrize(("text", "where", "key_path", "phrase"), CASES)
def test_broken_erp_config_is_located(text, where, key_path, phrase):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", environ={})
    lines = [issue.format() for issue in info.value.issues]
    assert len(lines) == 1, lines  # one mistake, one message
    position, path, message = _split(lines[0])
    assert (position, path) == (where, key_path), lines[0]
    assert phrase in message, lines[0]


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
