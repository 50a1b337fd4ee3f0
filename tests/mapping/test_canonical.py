from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from mapping.canonical import (
    ENTITIES,
    Account,
    Deal,
    Provenance,
    SalesOrder,
    canonical_equal,
    canonical_hash,
    dependency_order,
    diff_values,
    entity_info,
    fields_of,
    from_jsonable,
    to_jsonable,
    to_model,
)


def test_registry_lists_every_entity_with_typed_fields():
    assert list(ENTITIES) == ["partner", "account", "contact", "deal", "sales_order", "sales_order_line"]
    deal = ENTITIES["deal"].fields
    assert deal["amount"].type == "decimal" and deal["amount"].kind == "money"
    assert deal["expected_close_date"].type == "date"
    assert deal["registered_at"].type == "datetime"
    assert deal["probability"].type == "integer"
    assert ENTITIES["sales_order"].fields["lines"].type == "records"
    assert ENTITIES["sales_order"].fields["lines"].item_entity == "sales_order_line"
    assert ENTITIES["account"].fields["credit_limit"].owner == "erp"


def test_every_field_is_documented():
    for info in ENTITIES.values():
        for spec in info.fields.values():
            assert spec.description, f"{info.name}.{spec.name} has no description"


def test_reference_map_declares_dependency_targets():
    assert ENTITIES["account"].references == {"partner": "partner"}
    assert ENTITIES["contact"].references == {"account": "account"}
    assert ENTITIES["deal"].references == {"account": "account", "partner": "partner", "contact": "contact"}
    assert ENTITIES["sales_order"].references == {"account": "account", "partner": "partner", "deal": "deal"}


def test_lookup_by_entity_or_model_name():
    assert entity_info("Account") is entity_info("account")
    assert "tax_id" in fields_of("Account")
    with pytest.raises(KeyError):
        fields_of("Acount")


def test_dependency_order_puts_referenced_entities_first():
    assert dependency_order(["sales_order", "deal", "contact", "account", "partner"]) == [
        "partner", "account", "contact", "deal", "sales_order"
    ]
    assert dependency_order(["deal", "account"]) == ["account", "deal"]
    # custom names and references (config-level entities)
    assert dependency_order(["orders", "customers"], {"orders": {"customers"}, "customers": set()}) == ["customers", "orders"]
    with pytest.raises(ValueError, match="cycle"):
        dependency_order(["a", "b"], {"a": {"b"}, "b": {"a"}})


def test_datetimes_are_aware_utc_and_money_is_decimal():
    deal = Deal(amount="1280000.00", registered_at=datetime(2024, 3, 12, 9, 30, tzinfo=timezone(timedelta(hours=8))))
    assert deal.amount == Decimal("1280000.00")
    assert deal.registered_at == datetime(2024, 3, 12, 1, 30, tzinfo=UTC) and deal.registered_at.tzinfo is UTC
    with pytest.raises(ValidationError):
        Deal(registered_at=datetime(2024, 3, 12, 9, 30))  # naive
    with pytest.raises(ValidationError):
        Deal(probability=120)


def test_provenance_is_part_of_every_record():
    record = Account(name="深圳市华为技术有限公司", provenance=Provenance(
        system="fxiaoke", object="AccountObj", external_id="65f0", modified_at="2024-03-12T09:30:00+08:00"))
    assert record.provenance.modified_at == datetime(2024, 3, 12, 1, 30, tzinfo=UTC)
    with pytest.raises(ValidationError):
        Account(nmae="x")  # extra fields are refused


def test_jsonable_round_trip():
    values = {
        "number": "XSDD000123",
        "order_date": date(2024, 5, 6),
        "total_amount": Decimal("1280000.00"),
        "approved_at": datetime(2024, 5, 6, 15, 42, 10, tzinfo=timezone(timedelta(hours=8))),
        "lines": [{"quantity": Decimal("4"), "delivery_date": date(2024, 5, 20)}],
    }
    jsonable = to_jsonable(values)
    assert jsonable == {
        "number": "XSDD000123",
        "order_date": "2024-05-06",
        "total_amount": "1280000.00",
        "approved_at": "2024-05-06T07:42:10Z",
        "lines": [{"quantity": "4", "delivery_date": "2024-05-20"}],
    }
    back = from_jsonable("sales_order", jsonable)
    assert back["total_amount"] == Decimal("1280000.00") and back["order_date"] == date(2024, 5, 6)
    assert back["approved_at"] == datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)
    assert back["lines"][0]["quantity"] == Decimal(4)
    assert isinstance(to_model("sales_order", jsonable), SalesOrder)
    with pytest.raises(ValueError, match="naive"):
        to_jsonable({"at": datetime(2024, 1, 1)})


def test_hash_and_equality_ignore_decimal_scale_key_order_and_nulls():
    a = {"amount": "1.0", "name": "华为", "stage": None}
    b = {"name": "华为", "amount": "1.00"}
    assert canonical_equal(a, b, "deal") and canonical_equal(a, b)
    assert canonical_hash(a, "deal") == canonical_hash(b, "deal") == canonical_hash(b)
    assert canonical_hash({"amount": "1.01"}, "deal") != canonical_hash({"amount": "1.0"}, "deal")
    # with the entity known, a code that looks like a number stays a code
    assert not canonical_equal({"number": "1.10"}, {"number": "1.1"}, "sales_order")
    assert canonical_equal({"approved_at": "2024-05-06T15:42:10+08:00"}, {"approved_at": "2024-05-06T07:42:10Z"}, "sales_order")
    assert diff_values({"amount": "1.0", "stage": "won"}, {"amount": "1.00", "stage": "lost"}, "deal") == {"stage": ("won", "lost")}
