"""The mapping test runner and `crmsync mapping test|show`."""
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mapping.testing import compare_payload, load_mapping_config, load_tests_file, run_mapping_tests
from sync_engine.cli_mapping import app

from .conftest import EXAMPLE_SYSTEMS, EXAMPLES

SYSTEMS_BLOCK = "systems:\n" + "".join(f"  {name}: {{type: {t}}}\n" for name, t in EXAMPLE_SYSTEMS.items())


def example_copy(tmp_path: Path, name: str = "channel-sales.yaml") -> Path:
    """A copy of an example, with a `systems:` block of types when the file has none yet."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if "systems" not in data:
        text = SYSTEMS_BLOCK + text
    target = tmp_path / name
    target.write_text(text, encoding="utf-8")
    shutil.copytree(EXAMPLES / "mapping-tests", tmp_path / "mapping-tests", dirs_exist_ok=True)
    return target


def test_the_example_mappings_pass(example_config, example_path):
    report = run_mapping_tests(example_config, example_path)
    assert report.issues == []
    failures = "\n".join(f"{r.entity}/{r.system} {r.name}\n{r.diff_text()}" for r in report.failures())
    assert report.failed == 0, failures
    assert report.passed >= 15
    tested = {(r.entity, r.system) for r in report.results}
    for entity in ("partner", "account", "contact", "deal", "sales_order"):
        assert any(e == entity for e, _ in tested), f"{entity} has no mapping test"
    assert any(r.location.endswith(".yaml:5") and "sales-order-erp" in r.location for r in report.results)


def test_the_sql_variant_passes():
    path = EXAMPLES / "channel-sales-sql.yaml"
    config = load_mapping_config(path, systems=EXAMPLE_SYSTEMS)
    report = run_mapping_tests(config, path)
    assert report.issues == [] and report.failed == 0 and report.passed >= 4, [r.diff_text() for r in report.failures()]


def test_a_changed_expectation_fails_with_a_readable_diff(tmp_path):
    path = example_copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("                Industry: Technology\n", "                Industry: Manufacturing\n", 1)
    text = text.replace("              industry: technology\n              phone: \"0755-2878 0808\"\n",
                        "              industry: technology\n              phone: \"0755-2878 0809\"\n", 1)
    path.write_text(text, encoding="utf-8")
    config = load_mapping_config(path)
    report = run_mapping_tests(config, path, entity="account", system="fxiaoke")
    assert report.failed == 1
    [failure] = report.failures()
    assert failure.name == "华为 from Fxiaoke, sold through 恒通"
    assert failure.location.startswith(f"{path}:")
    diff = failure.diff_text()
    assert "  canonical values:\n    phone: expected '0755-2878 0809', got '0755-2878 0808'" in diff
    assert "  zoho payload:\n    Industry: expected 'Manufacturing', got 'Technology'" in diff
    assert "erp payload" not in diff


def test_payload_comparison_is_strict_about_text_versus_numbers():
    assert compare_payload({"amount": "1280000.00"}, {"amount": "1280000.00"}) == []
    [d] = compare_payload({"amount": 1280000.0}, {"amount": "1280000.00"})
    assert d.describe() == "amount: expected 1280000.0 (number), got '1280000.00'"
    assert compare_payload({"Amount": 1280000.0}, {"Amount": __import__("decimal").Decimal("1280000.00")}) == []
    diffs = compare_payload({"Owner": {"id": "1"}, "Stage": "Won"}, {"Owner": {"id": "2"}, "Extra": 1})
    assert [d.describe() for d in diffs] == [
        "Owner.id: expected '1', got '2'", "Stage: missing (expected 'Won')", "Extra: unexpected 1 (number) (not in the expected values)",
    ]
    assert compare_payload({"flag": True}, {"flag": 1}) != []


def test_expected_errors_that_do_not_happen_fail(tmp_path):
    path = example_copy(tmp_path)
    tests_file = tmp_path / "mapping-tests" / "sales-order-erp.yaml"
    text = tests_file.read_text(encoding="utf-8").replace("FSettleCurrId.FNumber: PRE009", "FSettleCurrId.FNumber: PRE001")
    tests_file.write_text(text, encoding="utf-8")
    report = run_mapping_tests(load_mapping_config(path), path, entity="sales_order")
    [failure] = report.failures()
    assert failure.error == "expected the mapping to fail with unmapped_value, but it succeeded"
    assert failure.location.startswith(str(tests_file))


def test_broken_tests_file_is_located(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tests:\n  - name: x\n    inptu: {}\n", encoding="utf-8")
    with pytest.raises(Exception) as info:
        load_tests_file(bad)
    assert f"{bad}:3:5: tests[0].inptu: Extra inputs are not permitted" in str(info.value)


runner = CliRunner()


def test_cli_mapping_test_passes_on_the_example(tmp_path):
    path = example_copy(tmp_path)
    result = runner.invoke(app, ["test", str(path), "--mapping-only", "-v"])
    assert result.exit_code == 0, result.output
    assert "PASS account / fxiaoke: 华为 from Fxiaoke, sold through 恒通" in result.output
    assert result.output.strip().splitlines()[-1].endswith("passed, 0 failed")


def test_cli_mapping_test_fails_with_a_diff(tmp_path):
    path = example_copy(tmp_path)
    text = path.read_text(encoding="utf-8").replace("                Stage: Proposal/Price Quote", "                Stage: Negotiation/Review")
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["test", str(path), "--mapping-only"])
    assert result.exit_code == 1
    assert "FAIL deal / fxiaoke: 商机 from Fxiaoke, registered by a partner" in result.output
    assert "Stage: expected 'Negotiation/Review', got 'Proposal/Price Quote'" in result.output
    assert "Traceback" not in result.output


def test_cli_reports_config_problems_with_exit_2(tmp_path):
    path = example_copy(tmp_path)
    text = path.read_text(encoding="utf-8").replace("industry: {field: industry_level1, value_map: industry}",
                                                    "industry: {field: industry_level1, value_map: industri}")
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["test", str(path), "--mapping-only"])
    assert result.exit_code == 2
    assert "entities.account.systems.fxiaoke.fields.industry.value_map: unknown value map 'industri'; did you mean 'industry'?" in result.output
    assert f"{path}:" in result.output  # FILE:LINE:COL


def test_cli_show_prints_the_resolved_mapping(tmp_path):
    path = example_copy(tmp_path)
    result = runner.invoke(app, ["show", str(path), "account", "erp", "--mapping-only"], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "account (Account) in erp (type kingdee, object BD_Customer)" in out
    assert "F_PAEZ_Dealer.FNumber" in out and "partner by erp_partner_number" in out
    assert "FCustTypeId.FNumber = 'KHLB001_SYS'" in out
    assert "Not mapped in erp:" in out
    result = runner.invoke(app, ["show", str(path), "acount", "erp", "--mapping-only"])
    assert result.exit_code == 2 and "did you mean 'account'?" in result.output
