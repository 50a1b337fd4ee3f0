"""Broken mappings give precise ConfigIssues (key path + message); the loader turns them into FILE:LINE:COL."""
import textwrap

import pytest
from pydantic import ValidationError

from config.mapping_schema import EntitySpec, FieldSpec, ValueMapSpec, check_entities

from .conftest import issues_of, make_config

BASE = """
value_maps:
  industry:
    values:
      technology: {fxiaoke: technology, zoho: Technology}
entities:
  partner:
    model: Partner
    systems:
      zoho: {object: Partners, fields: {name: Name}}
  account:
    model: Account
    systems:
      zoho:
        object: Accounts
        fields:
          %s
"""


def account_issues(fields: str, extra: str = "") -> list[tuple[tuple, str]]:
    return issues_of(BASE % fields + extra)


P = ("entities", "account", "systems", "zoho", "fields")


def test_a_correct_mapping_has_no_issues():
    assert account_issues("name: Account_Name") == []


def test_unknown_canonical_field():
    assert account_issues("nmae: Account_Name") == [
        ((*P, "nmae"), "unknown canonical field of Account 'nmae'; did you mean 'name'?")
    ]


def test_unknown_transform_function():
    [(path, message)] = account_issues("name: {field: Account_Name, transform: 'strip_suffix(value)'}")
    assert path == (*P, "name", "transform")
    assert message.startswith("transform does not parse: unknown function 'strip_suffix'")
    assert "(at character 1" in message


def test_transform_that_does_not_parse_per_direction():
    [(path, message)] = account_issues("name: {field: Account_Name, transform: {write: 'trim(value'}}")
    assert path == (*P, "name", "transform", "write")
    assert "expected ')' or ','" in message


def test_value_map_not_defined():
    assert account_issues("industry: {field: Industry, value_map: industries}") == [
        ((*P, "industry", "value_map"), "unknown value map 'industries'; did you mean 'industry'?")
    ]


def test_value_map_without_values_for_the_system():
    text = BASE.replace("zoho: Technology", "erp: TECH") % "industry: {field: Industry, value_map: industry}"
    assert issues_of(text) == [((*P, "industry", "value_map"), "value map 'industry' has no values for system 'zoho'")]


def test_value_map_naming_an_undefined_system():
    text = BASE.replace("zoho: Technology}", "zoho: Technology, zohoo: X}") % "name: Account_Name"
    assert issues_of(text) == [
        (("value_maps", "industry", "values", "technology", "zohoo"), "unknown system 'zohoo'; did you mean 'zoho'?")
    ]


def test_reference_to_an_entity_that_is_not_configured():
    assert account_issues("partner: {field: Partner, reference: partnr}") == [
        ((*P, "partner", "reference"),
         "unknown entity 'partnr'; did you mean 'partner'? (referenced entities must be configured)")
    ]
    # inferred from the model: Account.partner points at Partner records
    text = (BASE % "partner: Partner").replace("  partner:\n    model: Partner\n    systems:\n      zoho: {object: Partners, fields: {name: Name}}\n", "")
    assert issues_of(text) == [
        ((*P, "partner"), "partner refers to Partner records, but no entity with model Partner is configured "
                          "(add it to entities, or remove this field)")
    ]


def test_reference_to_an_entity_without_a_mapping_in_that_system():
    text = BASE.replace("zoho: {object: Partners, fields: {name: Name}}", "fxiaoke: {object: PartnerObj, fields: {name: name}}")
    assert issues_of(text % "partner: Partner") == [
        ((*P, "partner"), "entity 'partner' has no mapping for system 'zoho', so its ids cannot be translated "
                          "(add entities.partner.systems.zoho)")
    ]


def test_reference_to_an_entity_not_synced_by_any_flow():
    from types import SimpleNamespace

    config = make_config(BASE % "partner: Partner")
    flows = {"accounts": SimpleNamespace(entity="account", systems=["zoho", "fxiaoke"], enabled=True)}
    config_with_flows = SimpleNamespace(value_maps=config.value_maps, entities=config.entities,
                                        systems=config.systems, flows=flows)
    [issue] = check_entities(config_with_flows)
    assert issue.path == (*P, "partner")
    assert issue.message == ("entity 'partner' is not synced with system 'zoho' by any flow, so this reference "
                             "would never resolve (add a flow, or drop the field)")
    flows["partners"] = SimpleNamespace(entity="partner", systems=["zoho", "fxiaoke"], enabled=True)
    assert check_entities(config_with_flows) == []


def test_reference_on_a_field_that_holds_no_id():
    assert account_issues("name: {field: Account_Name, reference: partner}") == [
        ((*P, "name", "reference"), "name is not a reference field of its model (its value is not a record id)")
    ]


def test_reference_key_must_be_a_field_of_the_referenced_model():
    [(path, message)] = account_issues("partner: {field: Partner, reference: {entity: partner, key: erp_no}}")
    assert path == (*P, "partner", "reference", "key")
    assert message.startswith("unknown canonical field of Partner 'erp_no' (defined: erp_partner_number, name, owner,")


def test_unknown_converter_and_bad_options():
    assert account_issues("name: {field: Account_Name, type: txt}") == [
        ((*P, "name", "type"), "unknown converter 'txt'; did you mean 'text'?")
    ]
    [(path, message)] = account_issues("credit_limit: {field: Credit_Limit, options: {placs: 2}}")
    assert path == (*P, "credit_limit", "options")
    assert message.startswith("bad options for converter 'decimal': placs: unknown option (allowed: timezone, places, output)")


def test_direction_rules():
    assert account_issues("name: {field: Account_Name, direction: write, never_write: true}") == [
        ((*P, "name", "never_write"), "a field with direction: write cannot be never_write")
    ]
    assert account_issues("name: {transform: {write: 'value'}}") == [
        ((*P, "name"), "needs a system 'field', a read transform or a default")
    ]
    assert account_issues("name: Account_Name\n          phone: {field: Account_Name}") == [
        ((*P, "phone", "field"), "system field 'Account_Name' is also written by 'name'; make one of them direction: read")
    ]


def test_fxiaoke_derived_fields_cannot_be_written():
    text = """
    entities:
      account:
        model: Account
        systems:
          fxiaoke: {object: AccountObj, fields: {name: account_id__r.name}}
    """
    assert issues_of(textwrap.dedent(text)) == [
        (("entities", "account", "systems", "fxiaoke", "fields", "name", "field"),
         "'account_id__r.name' is a read-only derived Fxiaoke field (__r/__l/__o…); add direction: read, or map the base field")
    ]


def test_unknown_model_and_items():
    text = """
    entities:
      order:
        model: SalesOrdr
        systems: {}
      so:
        model: SalesOrder
        systems:
          erp: {object: SAL_SaleOrder, fields: {lines: FSaleOrderEntry}}
    """
    assert issues_of(textwrap.dedent(text)) == [
        (("entities", "order", "model"), "unknown canonical model 'SalesOrdr'; did you mean 'SalesOrder'?"),
        (("entities", "so", "systems", "erp", "fields", "lines"),
         "lines is a list of records: describe each item with 'items: {fields: …}'"),
    ]


def test_item_fields_are_checked_too():
    text = """
    entities:
      so:
        model: SalesOrder
        systems:
          erp:
            object: SAL_SaleOrder
            fields:
              lines: {field: FSaleOrderEntry, items: {fields: {qty: FQty}}}
    """
    assert issues_of(textwrap.dedent(text)) == [
        (("entities", "so", "systems", "erp", "fields", "lines", "items", "fields", "qty"),
         "unknown canonical field of SalesOrderLine 'qty' (defined: amount, delivery_date, external_line_id, "
         "line_number, product_code, product_name, quantity, tax_rate, unit, unit_price)")
    ]


def test_tests_are_checked_against_the_mapping():
    extra = """
    tests:
          - name: t
            input: {Account_Name: x}
            canonical: {nmae: x}
            expect: {fxiaoke: {}}
            fields: [nam]
            error: {code: boom}
    """
    issues = account_issues("name: Account_Name", textwrap.indent(textwrap.dedent(extra), "        "))
    t = ("entities", "account", "systems", "zoho", "tests", 0)
    assert [p for p, _ in issues] == [(*t, "expect", "fxiaoke"), (*t, "fields"), (*t, "canonical", "nmae"), (*t, "error", "code")]


def test_match_keys():
    text = BASE % "name: Account_Name"
    text = text.replace("  account:\n    model: Account\n", "  account:\n    model: Account\n    match: {keys: [tax_id, domian, {field: name, normalize: fuzzy}]}\n")
    assert issues_of(text) == [
        (("entities", "account", "match", "keys", 1), "unknown field of Account 'domian'; did you mean 'domain'?"),
        (("entities", "account", "match", "keys", 2, "normalize"),
         "unknown normaliser 'fuzzy' (defined: company_name, company_name_no_region, domain, email, person_name, phone, tax_id)"),
    ]


def test_pydantic_layer_forbids_unknown_keys_and_bad_shapes():
    with pytest.raises(ValidationError) as info:
        FieldSpec.model_validate({"field": "x", "directon": "read"})
    assert info.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError):
        FieldSpec.model_validate({"field": "x", "direction": "sideways"})
    with pytest.raises(ValidationError, match="unmapped: default needs a 'default'"):
        ValueMapSpec.model_validate({"values": {}, "unmapped": "default"})
    spec = EntitySpec.model_validate({"model": "Account", "systems": {"zoho": {"object": "Accounts", "fields": {"name": "Account_Name"}}}})
    assert spec.systems["zoho"].fields["name"].field == "Account_Name"  # the short form
    assert FieldSpec.model_validate({"transform": "trim(value)"}).transform.read == "trim(value)"


def test_json_schema_has_descriptions():
    schema = EntitySpec.model_json_schema()
    assert schema["properties"]["model"]["description"]
    field_schema = schema["$defs"]["FieldSpec"]["properties"]
    assert all(prop.get("description") for prop in field_schema.values())
    assert "converter" in field_schema["type"]["description"].lower()


def test_loader_reports_mapping_issues_with_file_line_and_column(tmp_path):
    """Through the config owner's loader: FILE:LINE:COL for each mapping problem."""
    loader = pytest.importorskip("config.loader")
    from config.errors import ConfigError

    text = textwrap.dedent("""\
        systems:
          zoho: {type: zoho, client_id: a, client_secret: b, refresh_token: c}
        value_maps:
          industry:
            values:
              technology: {zoho: Technology}
        entities:
          account:
            model: Account
            systems:
              zoho:
                object: Accounts
                fields:
                  nmae: Account_Name
                  industry: {field: Industry, value_map: industries}
                  phone: {field: Phone, transform: "uper(value)"}
                  partner: {field: Partner, reference: partner}
        """)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        loader.load_config(path)
    mine = [i for i in info.value.issues if i.path[:1] == ("entities",)]
    formatted = [i.format().replace(str(path), "FILE") for i in mine]
    assert "FILE:14:11: entities.account.systems.zoho.fields.nmae: unknown canonical field of Account 'nmae'; did you mean 'name'?" in formatted
    assert "FILE:15:50: entities.account.systems.zoho.fields.industry.value_map: unknown value map 'industries'; did you mean 'industry'?" in formatted
    assert any(f.startswith("FILE:16:44: entities.account.systems.zoho.fields.phone.transform: transform does not parse: unknown function 'uper'") for f in formatted)
    assert any(f.startswith("FILE:17:48: entities.account.systems.zoho.fields.partner.reference: unknown entity 'partner'") for f in formatted)
