"""Mapper behaviour: directions, defaults, required, value maps, references, minimal writes, errors."""
from datetime import date
from decimal import Decimal

import pytest

from mapping import MappingError, NullResolver, StaticResolver, UnresolvedReference

from .conftest import compile_ok

CONFIG = """
value_maps:
  industry:
    unmapped: error
    values:
      technology: {zoho: Technology, erp: TECH}
      manufacturing: {zoho: [Manufacturing, Industrial], erp: MFG}
  loose:
    unmapped: pass_through
    values: {gold: {zoho: Gold}}
  tiers:
    unmapped: default
    default: registered
    values:
      registered: {zoho: Registered}
      gold: {zoho: Gold}
entities:
  partner:
    model: Partner
    systems:
      zoho: {object: Partners, fields: {name: Name, erp_partner_number: ERP_Code}}
      erp: {object: PAEZ_Dealer, fields: {name: FName, erp_partner_number: {field: FNumber, direction: read}}}
  account:
    model: Account
    systems:
      zoho:
        object: Accounts
        fields:
          name: {field: Account_Name, required: true, transform: {read: "trim(value)", write: "truncate(value, 5)"}}
          industry: {field: Industry, value_map: industry}
          status: {field: Account_Type, default: active}
          country: {default: CN}
          owner: {field: Owner.email, direction: read, type: text}
          partner: Partner
          credit_limit: {field: Credit_Limit, never_write: true}
          erp_customer_number: {field: ERP_Code, create_only: true}
          tax_id: {field: Details.Tax.Code}
      erp:
        object: BD_Customer
        constants: {FCreateOrgId.FNumber: "100"}
        fields:
          name: FName
          industry: {field: F_Industry, value_map: industry}
          partner: {field: F_Dealer.FNumber, reference: {entity: partner, key: erp_partner_number}}
          credit_limit: F_Credit
  so:
    model: SalesOrder
    systems:
      erp:
        object: SAL_SaleOrder
        fields:
          number: FBillNo
          account: {field: FCustId, type: kingdee_ref}
          lines:
            field: FSaleOrderEntry
            items:
              fields:
                quantity: FQty
                product_code: {field: FMaterialId.FNumber, required: true}
"""


@pytest.fixture(scope="module")
def maps():
    return compile_ok(CONFIG)


LINKS = StaticResolver({
    "partner": {"ptn-1": {"zoho": "Z-P1", "erp": "100231", "erp_partner_number": "D0007"}},
    "account": {"acct-1": {"zoho": "Z-A1", "erp": "100234"}},
})


def test_read_with_transforms_value_maps_defaults_and_references(maps):
    zoho = maps.mapper("account", "zoho")
    values = zoho.to_canonical({
        "Account_Name": "  华为  ", "Industry": "Industrial", "Owner": {"id": "1", "email": "w@x.cn"},
        "Partner": {"id": "Z-P1", "name": "恒通"}, "Credit_Limit": 500000.5, "Details": {"Tax": {"Code": "9144"}},
    }, LINKS)
    assert values == {
        "name": "华为", "industry": "manufacturing", "country": "CN", "owner": "w@x.cn",
        "partner": "ptn-1", "credit_limit": "500000.5", "tax_id": "9144",
    }


def test_absent_fields_stay_unknown_but_nulls_are_read(maps):
    zoho = maps.mapper("account", "zoho")
    values = zoho.to_canonical({"Account_Name": "华为", "Industry": None}, LINKS)
    assert values == {"name": "华为", "industry": None, "country": "CN"}  # status absent: unknown, not 'active'


def test_a_partial_record_maps_only_the_fields_it_supplies(maps):
    """A change notification's values (Zoho affected_values): mapped as a read, without the required name,
    without defaults for fields it does not name, and without a reference that is not linked."""
    zoho = maps.mapper("account", "zoho")
    assert zoho.to_canonical_partial({"Industry": "Industrial", "Partner": {"id": "Z-P1"}}, LINKS) == {
        "industry": "manufacturing", "partner": "ptn-1"}
    assert zoho.to_canonical_partial({"Account_Name": "  华为 ", "Details": {"Tax": {"Code": "9144"}}}, LINKS) == {
        "name": "华为", "tax_id": "9144"}
    assert zoho.to_canonical_partial({"Partner": {"id": "Z-UNKNOWN"}, "Industry": None}, LINKS) == {"industry": None}
    assert zoho.to_canonical_partial({"Industry": "Mining"}, LINKS) == {}  # unmapped value: left out


def test_full_write_skips_nulls_honours_never_write_and_adds_defaults(maps):
    zoho = maps.mapper("account", "zoho")
    payload = zoho.to_system({"name": "深圳市华为技术", "industry": "technology", "partner": "ptn-1",
                              "credit_limit": "100", "owner": "w@x.cn", "erp_customer_number": "C0001",
                              "tax_id": None}, LINKS)
    assert payload == {"Account_Name": "深圳市华为", "Industry": "Technology", "Partner": {"id": "Z-P1"},
                       "Account_Type": "active", "ERP_Code": "C0001"}


def test_minimal_write_writes_exactly_the_given_fields(maps):
    zoho = maps.mapper("account", "zoho")
    payload = zoho.to_system({"name": "华为", "industry": None, "erp_customer_number": "C1", "tax_id": "9144"},
                             LINKS, fields={"industry", "erp_customer_number", "credit_limit", "tax_id"})
    # null clears the field; create_only and never_write fields are left alone; nested paths are built
    assert payload == {"Industry": None, "Details": {"Tax": {"Code": "9144"}}}


def test_kingdee_payloads_use_flat_keys_and_constants(maps):
    erp = maps.mapper("account", "erp")
    assert erp.flat_keys
    payload = erp.to_system({"name": "华为", "industry": "manufacturing", "partner": "ptn-1", "credit_limit": "2000000.50"}, LINKS)
    assert payload == {"FCreateOrgId.FNumber": "100", "FName": "华为", "F_Industry": "MFG",
                       "F_Dealer.FNumber": "D0007", "F_Credit": Decimal("2000000.50")}
    assert erp.to_canonical({"FName": "华为", "F_Dealer.FNumber": "D0007"}, LINKS)["partner"] == "ptn-1"


def test_unmapped_value_with_policy_error_is_a_mapping_error(maps):
    zoho = maps.mapper("account", "zoho")
    with pytest.raises(MappingError) as info:
        zoho.to_canonical({"Account_Name": "华为", "Industry": "Education"}, LINKS)
    error = info.value
    assert (error.entity, error.system, error.field, error.code) == ("account", "zoho", "industry", "unmapped_value")
    assert error.yaml_path == ("entities", "account", "systems", "zoho", "fields", "industry")
    assert "'Education' is not in value map 'industry'" in error.message
    with pytest.raises(MappingError, match="canonical value 'retail'"):
        zoho.to_system({"name": "x", "industry": "retail"}, LINKS)


def test_all_problems_of_a_record_are_reported(maps):
    zoho = maps.mapper("account", "zoho")
    with pytest.raises(MappingError) as info:
        zoho.to_canonical({"Account_Name": None, "Industry": "Education"}, LINKS)
    codes = [info.value.code] + [o.code for o in info.value.others]
    assert codes == ["required", "unmapped_value"]
    assert info.value.as_dict()["others"][0]["field"] == "industry"


def test_value_map_policies():
    maps = compile_ok(CONFIG.replace("industry: {field: Industry, value_map: industry}",
                                     "industry: {field: Industry, value_map: loose}\n          province: {field: Tier, value_map: tiers}"))
    zoho = maps.mapper("account", "zoho")
    values = zoho.to_canonical({"Account_Name": "x", "Industry": "Education", "Tier": "Diamond"}, LINKS)
    assert values["industry"] == "Education"  # pass_through
    assert values["province"] == "registered"   # default
    assert zoho.to_system({"name": "x", "province": "silver"}, LINKS)["Tier"] == "Registered"


def test_unresolved_references_on_read_and_write(maps):
    zoho = maps.mapper("account", "zoho")
    with pytest.raises(UnresolvedReference) as info:
        zoho.to_canonical({"Account_Name": "x", "Partner": {"id": "Z-UNKNOWN"}}, LINKS)
    assert (info.value.entity, info.value.system, info.value.id) == ("partner", "zoho", "Z-UNKNOWN")
    assert info.value.missing[0].field == "partner" and info.value.missing[0].direction == "read"
    with pytest.raises(UnresolvedReference) as info:
        zoho.to_system({"name": "x", "partner": "ptn-2"}, LINKS)
    assert (info.value.entity, info.value.system, info.value.id) == ("partner", "zoho", "ptn-2")
    assert "no zoho id yet" in str(info.value)
    erp = maps.mapper("account", "erp")
    with pytest.raises(UnresolvedReference, match="erp_partner_number 'D9999'"):
        erp.to_canonical({"FName": "x", "F_Dealer.FNumber": "D9999"}, LINKS)
    # a mapping error wins over a missing link: the record cannot be synced either way
    with pytest.raises(MappingError):
        zoho.to_canonical({"Account_Name": "x", "Industry": "Bogus", "Partner": {"id": "Z-UNKNOWN"}}, NullResolver())


def test_lines_map_item_by_item_with_nested_errors(maps):
    erp = maps.mapper("so", "erp")
    links = StaticResolver({"account": {"acct-1": {"erp": "C0001"}}})
    record = {"FBillNo": "XSDD1", "FCustId": {"FNumber": "C0001"},
              "FSaleOrderEntry": [{"FQty": 4, "FMaterialId.FNumber": "SRV"}, {"FQty": "1.5", "FMaterialId": {"FNumber": "SW"}}]}
    values = erp.to_canonical(record, links)
    assert values == {"number": "XSDD1", "account": "acct-1",
                      "lines": [{"quantity": "4", "product_code": "SRV"}, {"quantity": "1.5", "product_code": "SW"}]}
    payload = erp.to_system(values, links)
    assert payload["FSaleOrderEntry"] == [{"FQty": Decimal(4), "FMaterialId.FNumber": "SRV"},
                                          {"FQty": Decimal("1.5"), "FMaterialId.FNumber": "SW"}]
    assert payload["FCustId"] == {"FNumber": "C0001"}  # a kingdee_ref value under a flat key
    with pytest.raises(MappingError) as info:
        erp.to_canonical({"FBillNo": "X", "FSaleOrderEntry": [{"FQty": "abc", "FMaterialId.FNumber": "A"}]}, NullResolver())
    assert info.value.field == "lines[0].quantity" and info.value.code == "conversion"


def test_invalid_canonical_values_are_reported_not_raised_raw(maps):
    erp = maps.mapper("account", "erp")
    with pytest.raises(MappingError) as info:
        erp.to_system({"name": "x", "credit_limit": "lots"}, LINKS, fields={"credit_limit"})
    assert (info.value.code, info.value.field) == ("invalid_value", "credit_limit")


def test_introspection(maps):
    zoho = maps.mapper("account", "zoho")
    assert "credit_limit" in zoho.read_fields and "credit_limit" not in zoho.write_fields
    assert zoho.system_fields()[:2] == ["Account_Name", "Industry"] and "Details" in zoho.system_fields()
    assert maps.dependency_order() == ["partner", "account", "so"]
    rows = {r["canonical"].split(" ")[0]: r for r in zoho.describe()}
    assert rows["partner"]["reference"] == "partner" and rows["partner"]["converter"] == "zoho_lookup"
    assert rows["name"]["transform"] == "read: trim(value); write: truncate(value, 5)"
    assert rows["credit_limit"]["direction"] == "read"
    assert rows["erp_customer_number"]["direction"] == "both (create)"
    with pytest.raises(KeyError, match="did you mean 'zoho'"):
        maps.mapper("account", "zohoo")


def test_date_canonical_form():
    maps = compile_ok("""
    entities:
      deal:
        model: Deal
        systems:
          fxiaoke: {object: NewOpportunityObj, fields: {expected_close_date: close_date, amount: amount, probability: probability}}
    """)
    fx = maps.mapper("deal", "fxiaoke")
    values = fx.to_canonical({"close_date": 1719676800000, "amount": "1280000.00", "probability": "50"}, NullResolver())
    assert values == {"expected_close_date": "2024-06-30", "amount": "1280000.00", "probability": 50}
    assert fx.to_system({"expected_close_date": date(2024, 6, 30), "amount": Decimal("1.5"), "probability": 50}, NullResolver()) == {
        "close_date": 1719676800000, "amount": "1.5", "probability": "50"}
