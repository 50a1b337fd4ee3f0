"""Every broken configuration gets a precise FILE:LINE:COL: key.path: message."""
from __future__ import annotations

import textwrap

import pytest

from config.errors import ConfigError
from config.loader import load_config, parse_config

GOOD = """\
systems:
  crm:
    type: alpha
    client_secret: s3cret-value
  erp:
    type: beta
    client_secret: other-secret
entities:
  account:
    model: Account
    systems:
      crm: {object: Accounts, fields: {name: Account_Name}}
      erp: {object: BD_Customer, fields: {name: FName}}
flows:
  accounts:
    entity: account
    systems: [crm, erp]
    schedule: {interval: 5m}
"""


def errors_of(text: str, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "c.yaml", environ=environ or {})
    return [issue.format() for issue in info.value.issues]


def test_good_config_loads():
    config = parse_config(GOOD, "c.yaml", environ={})
    assert set(config.systems) == {"crm", "erp"}
    assert config.systems["crm"].settings.client_secret.get_secret_value() == "s3cret-value"
    assert config.flows["accounts"].schedule.interval.total_seconds() == 300


CASES = [
    pytest.param(
        "systems:\n  crm:\n    type: alpha\n   client_secret: x\n",
        ["c.yaml:4:4: YAML syntax error"],
        id="yaml-bad-indent",
    ),
    pytest.param("systems: {crm: [unclosed\n", ["c.yaml:2:1: YAML syntax error"], id="yaml-unclosed-flow"),
    pytest.param("- a\n- b\n", ["c.yaml:1:1: expected a mapping of sections at the top level, found a list"], id="top-level-list"),
    pytest.param("", ["c.yaml:1:1: the file is empty"], id="empty-file"),
    pytest.param(
        "sytems:\n  crm: {type: alpha, client_secret: x}\n",
        ["c.yaml:1:1: sytems: unknown key 'sytems'; did you mean 'systems'?"],
        id="misspelt-section",
    ),
    pytest.param(
        GOOD + "server:\n  prot: 8080\n",
        ["c.yaml:20:3: server.prot: unknown key 'prot'; did you mean 'port'?"],
        id="misspelt-server-key",
    ),
    pytest.param(
        GOOD + "server:\n  port: eighty\n",
        ["c.yaml:20:9: server.port: input should be a valid integer"],
        id="port-not-a-number",
    ),
    pytest.param(
        GOOD + "server:\n  port: 70000\n",
        ["c.yaml:20:9: server.port: input should be less than or equal to 65535"],
        id="port-out-of-range",
    ),
    pytest.param(
        "systems:\n  crm:\n    client_secret: x\n",
        ["c.yaml:2:3: systems.crm: missing key 'type' (one of: alpha, beta)"],
        id="system-without-type",
    ),
    pytest.param(
        "systems:\n  crm:\n    type: alpah\n    client_secret: x\n",
        ["c.yaml:3:11: systems.crm.type: unknown system type 'alpah'; did you mean 'alpha'?"],
        id="unknown-system-type",
    ),
    pytest.param(
        "systems:\n  crm:\n    type: alpha\n    client_secret: x\n    api_ulr: http://127.0.0.1\n",
        ["c.yaml:5:5: systems.crm.api_ulr: unknown key 'api_ulr'; did you mean 'api_url'?"],
        id="misspelt-system-setting",
    ),
    pytest.param(
        "systems:\n  crm:\n    type: alpha\n",
        ["c.yaml:2:3: systems.crm.client_secret: required key 'client_secret' is missing"],
        id="missing-credential",
    ),
    pytest.param(
        "systems:\n  crm:\n    type: alpha\n    client_secret: x\n    page_size: 500\n",
        ["c.yaml:5:16: systems.crm.page_size: input should be less than or equal to 200"],
        id="limit-above-maximum",
    ),
    pytest.param(
        "systems:\n  crm:\n    type: alpha\n    client_secret: ${ALPHA_SECRET}\n",
        ["c.yaml:4:20: systems.crm.client_secret: environment variable ALPHA_SECRET is not set"],
        id="unset-env-var",
    ),
    pytest.param(
        "systems:\n  crm:\n    type: alpha\n    client_secret: ${1BAD}\n",
        ["c.yaml:4:20: systems.crm.client_secret: bad variable reference ${1BAD}"],
        id="bad-env-var-syntax",
    ),
    pytest.param(
        "systems:\n  crm:\n    type: alpha\n    client_secret: ${file:/nonexistent/secret.txt}\n",
        ["c.yaml:4:20: systems.crm.client_secret: cannot read secret file /nonexistent/secret.txt"],
        id="missing-secret-file",
    ),
    pytest.param(
        GOOD + "  accounts:\n    entity: account\n    systems: [crm, erp]\n",
        ["c.yaml:19:3: flows.accounts: duplicate key 'accounts' (first defined on line 15)"],
        id="duplicate-flow-name",
    ),
    pytest.param(
        GOOD.replace("systems: [crm, erp]", "systems: [crm, epr]"),
        ["c.yaml:17:20: flows.accounts.systems[1]: unknown system 'epr'; did you mean 'erp'?"],
        id="flow-unknown-system",
    ),
    pytest.param(
        GOOD.replace("entity: account", "entity: acount"),
        ["c.yaml:16:13: flows.accounts.entity: unknown entity 'acount'; did you mean 'account'?"],
        id="flow-unknown-entity",
    ),
    pytest.param(
        GOOD.replace("systems: [crm, erp]", "systems: [crm]"),
        ["c.yaml:17:5: flows.accounts.systems: list should have at least 2 items after validation, not 1"],
        id="flow-one-system",
    ),
    pytest.param(
        GOOD.replace("{interval: 5m}", "{cron: '61 * * * *'}"),
        ["c.yaml:18:22: flows.accounts.schedule.cron: bad cron expression '61 * * * *'"],
        id="bad-cron",
    ),
    pytest.param(
        GOOD.replace("{interval: 5m}", "{interval: 5m, cron: '*/5 * * * *'}"),
        ["c.yaml:18:5: flows.accounts.schedule: give exactly one of 'cron' or 'interval'"],
        id="cron-and-interval",
    ),
    pytest.param(
        GOOD.replace("{interval: 5m}", "{interval: 5 minutes}"),
        ["c.yaml:18:26: flows.accounts.schedule.interval: '5 minutes' is not a duration"],
        id="bad-interval",
    ),
    pytest.param(
        GOOD.replace("{interval: 5m}", "{cron: '0 2 * * *', timezone: Asia/Shenzhen}"),
        ["c.yaml:18:45: flows.accounts.schedule.timezone: unknown time zone 'Asia/Shenzhen'"],
        id="bad-timezone",
    ),
    pytest.param(
        GOOD + "    direction: one_way\n",
        ["c.yaml:15:3: flows.accounts: a one_way flow needs 'source'"],
        id="one-way-without-source",
    ),
    pytest.param(
        GOOD + "    direction: one_way\n    source: zoho\n",
        ["c.yaml:20:13: flows.accounts.source: unknown system of this flow 'zoho' (defined: crm, erp)"],
        id="source-outside-flow",
    ),
    pytest.param(
        GOOD + "conflicts:\n  acount:\n    default: manual\n",
        ["c.yaml:20:3: conflicts.acount: unknown entity 'acount'; did you mean 'account'?"],
        id="conflicts-unknown-entity",
    ),
    pytest.param(
        GOOD + "conflicts:\n  account:\n    default: {source_of_truth: erpp}\n",
        ["c.yaml:21:32: conflicts.account.default.source_of_truth: unknown system 'erpp'; did you mean 'erp'?"],
        id="source-of-truth-unknown-system",
    ),
    pytest.param(
        GOOD + "conflicts:\n  account:\n    default: lastest_wins\n",
        ["c.yaml:21:14: conflicts.account.default: 'lastest_wins' is not allowed: expected 'latest_wins' or 'manual'; did you mean 'latest_wins'?"],
        id="misspelt-policy",
    ),
    pytest.param(
        GOOD + "deletes:\n  account: {policy: deactivate}\n",
        ["c.yaml:20:3: deletes.account: policy deactivate needs 'field' and 'value'"],
        id="deactivate-without-field",
    ),
    pytest.param(
        GOOD.replace("      erp: {object", "      erpx: {object"),
        [
            "c.yaml:13:7: entities.account.systems.erpx: unknown system 'erpx'; did you mean 'erp'?",
            "c.yaml:17:20: flows.accounts.systems[1]: entity 'account' has no mapping for system 'erp'",
        ],
        id="entity-mapping-unknown-system",
    ),
    pytest.param(
        GOOD + "logging:\n  format: xml\n",
        ["c.yaml:20:11: logging.format: 'xml' is not allowed: expected 'human' or 'json'"],
        id="bad-log-format",
    ),
    pytest.param(
        GOOD + "state:\n  url: [sqlite]\n",
        ["c.yaml:20:3: state.url: input should be a valid string"],
        id="state-url-wrong-type",
    ),
    pytest.param(
        GOOD + "sync:\n  overlap: forever\n",
        ["c.yaml:20:12: sync.overlap: 'forever' is not a duration"],
        id="bad-overlap",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_broken_config(text, expected):
    got = errors_of(text)
    assert len(got) == len(expected), got
    for line, prefix in zip(got, expected, strict=True):
        assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"


def test_every_problem_is_reported_not_just_the_first():
    text = GOOD + "server:\n  prot: 1\nlogging:\n  level: loud\n"
    got = errors_of(text)
    assert [g.split(": ")[0] for g in got] == ["c.yaml:20:3", "c.yaml:22:10"]


def test_interpolation_defaults_and_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("from-a-file\n", encoding="utf-8")
    text = GOOD.replace("s3cret-value", "${file:secret.txt}").replace("other-secret", "${ERP_SECRET:-fallback}")
    text += "server:\n  port: ${PORT}\n  host: $${literal}\n"
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ={"PORT": "9000"})
    assert config.systems["crm"].settings.client_secret.get_secret_value() == "from-a-file"
    assert config.systems["erp"].settings.client_secret.get_secret_value() == "fallback"
    assert config.server.port == 9000
    assert config.server.host == "${literal}"


def test_secret_values_never_appear_in_errors():
    text = "systems:\n  crm:\n    type: alpha\n    client_secret: ${SECRET}\n    page_size: ${SECRET}\n"
    got = "\n".join(errors_of(text, environ={"SECRET": "hunter2-very-secret"}))
    assert "page_size" in got
    assert "hunter2" not in got


def test_chinese_text_survives(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + "# 深圳市华为技术有限公司\nserver:\n  public_url: https://同步.example.cn\n", encoding="utf-8")
    assert load_config(path).server.public_url == "https://同步.example.cn"


def test_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("systems: {}\n# 华为".encode("gbk"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not UTF-8" in info.value.issues[0].message
