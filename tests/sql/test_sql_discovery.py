"""Discovery from SQLAlchemy inspection: objects, fields, labels, writability, lookups."""
from __future__ import annotations

import pytest

from connectors.errors import ConnectorConfigError


async def test_describe_marks_fields_writable_only_through_the_interface_table(connector, erp):
    fields = {f.name: f for f in await connector.describe("customer")}
    assert fields["name"].read_only is False  # the interface table has it
    assert fields["credit_limit"].read_only is True  # ERP-owned: only in the view
    assert fields["cust_no"].required is True
    assert "crm_id" in fields and fields["crm_id"].required is True  # the interface's natural key
    assert not {"sync_status", "crmsync_op_key", "batch_id"} & set(fields)  # control columns are not fields
    assert fields["payment_days"].type.startswith("int")
    if erp.dialect.name != "sqlite":  # SQLite keeps no column comments
        assert fields["payment_days"].label == "账期天数"


async def test_lines_and_lookups(make_connector, erp):
    connector = make_connector(objects={"customer": {"table": "erp_customer"}})
    fields = {f.name: f for f in await connector.describe("sales_order")}
    assert fields["lines"].type == "lines" and fields["lines"].read_only is False
    assert fields["cust_no"].lookup_object == "customer"  # foreign key to the customer object's table
    assert fields["total_amount"].read_only is True


async def test_list_objects(make_connector, erp):
    connector = make_connector()
    assert [(o.name, o.label) for o in await connector.list_objects()] == [
        ("customer", "客户 Customer"), ("dealer", "经销商 Dealer"), ("sales_order", "销售订单 Sales order"),
    ]
    with pytest.raises(ConnectorConfigError, match="unknown object"):
        await connector.describe("erp_customer")

    wide = make_connector(discover_unconfigured_tables=True)
    extra = {o.name for o in await wide.list_objects() if o.custom}
    assert {"erp_customer", "erp_sales_order_line"} <= extra
    assert "if_customer" not in extra and "v_crm_customer" not in extra
    raw = {f.name: f for f in await wide.describe("erp_customer")}
    assert raw["cust_no"].required and raw["name"].read_only
