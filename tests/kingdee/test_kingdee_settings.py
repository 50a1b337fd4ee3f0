"""Settings validation, plugin registration and discovery."""
from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from connectors.kingdee.connector import KingdeeConnector
from connectors.kingdee.settings import KingdeeSettings
from connectors.registry import get

MINIMAL = {"server_url": "https://erp.example.com", "acct_id": "a", "username": "u", "app_id": "i",
           "app_secret": "s3cret-value"}


def test_plugin_is_registered():
    plugin = get("kingdee")
    assert plugin.settings_model is KingdeeSettings
    assert plugin.webhook_verifier is None  # Kingdee pushes nothing; the engine polls
    assert plugin.emulator_main is not None
    connector = plugin.create("erp", MINIMAL)
    assert isinstance(connector, KingdeeConnector) and connector.name == "erp"


def test_defaults():
    settings = KingdeeSettings.model_validate(MINIMAL)
    assert settings.site_url == "https://erp.example.com/K3Cloud/"
    assert settings.timezone == "Asia/Shanghai" and settings.page_size == 2000 and settings.lcid == 2052
    customer, order = settings.objects["customer"], settings.objects["sales_order"]
    assert (customer.form_id, customer.id_field, customer.number_field) == ("BD_Customer", "FCUSTID", "FNumber")
    assert "FName" in customer.fields and customer.org_fields == {"FCreateOrgId": "create_org", "FUseOrgId": "use_org"}
    assert (order.id_field, order.number_field) == ("FID", "FBillNo")
    assert order.org_fields == {"FSaleOrgId": "sale_org"}
    assert order.watermark_fields == ["FModifyDate", "FApproveDate"]
    assert "FQty" in order.entries["FSaleOrderEntry"].fields and "FBillAllAmount" in order.read_only_fields
    custom = KingdeeSettings.model_validate({**MINIMAL, "objects": {"dealer": {"form_id": "PAEZ_BD_Dealer",
                                                                              "audit": True}}})
    dealer = custom.objects["dealer"]
    assert (dealer.id_field, dealer.number_field, dealer.submit) == ("FID", "FNumber", True)


@pytest.mark.parametrize(("server_url", "site"), [
    ("https://x.ik3cloud.com/k3cloud/", "https://x.ik3cloud.com/k3cloud/"),
    ("http://10.0.0.5:8080/K3Cloud", "http://10.0.0.5:8080/K3Cloud/"),
    ("https://erp.example.com/", "https://erp.example.com/K3Cloud/"),
])
def test_site_url(server_url, site):
    assert KingdeeSettings.model_validate({**MINIMAL, "server_url": server_url}).site_url == site


@pytest.mark.parametrize(("change", "message"), [
    ({"app_secret": None}, "needs app_id and app_secret"),
    ({"auth": "password"}, "needs password"),
    ({"timezone": "China/Beijing"}, "unknown time zone"),
    ({"lcid": 1234}, "lcid must be one of"),
    ({"page_size": 20000}, "less than or equal to 10000"),
    ({"server_url": "erp.example.com"}, "must start with http"),
    ({"sessionid": "x"}, "Extra inputs are not permitted"),
    ({"objects": {}}, "at least one form"),
    ({"objects": {"c": {"form_id": "BD_Customer", "watermark_fields": []}}}, "at least one date field"),
    ({"objects": {"c": {"form_id": "BD_Customer", "fileds": []}}}, "Extra inputs are not permitted"),
])
def test_bad_settings_are_clear(change, message):
    with pytest.raises(ValidationError, match=message):
        KingdeeSettings.model_validate({**MINIMAL, **change})


def test_every_setting_is_described_and_secrets_stay_secret():
    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            annotation = field.annotation
            for candidate in getattr(annotation, "__args__", ()) + (annotation,):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    walk(candidate)

    walk(KingdeeSettings)
    schema = KingdeeSettings.model_json_schema()
    assert schema["properties"]["app_secret"]["anyOf"][0]["writeOnly"] is True
    settings = KingdeeSettings.model_validate(MINIMAL)
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings.model_dump())


async def test_status_never_shows_secrets(emu, make_connector):
    connector = make_connector()
    await connector.check()
    status = connector.status()
    assert status["authenticated"] is True and status["logins"] == 1 and status["calls_total"] >= 1
    text = repr(status)
    assert connector.settings.app_secret.get_secret_value() not in text
    ticket = await connector.client.session.current()
    assert ticket.cookie_header.split("=")[1].split(";")[0] not in text


async def test_list_objects_and_describe(emu, make_connector):
    connector = make_connector(objects={
        "customer": {"form_id": "BD_Customer", "fields": ["FName", "FGroup.FNumber", "FGroup.FName",
                                                          "F_PAEZ_CreditLimit", "FDocumentStatus"]},
        "sales_order": {"form_id": "SAL_SaleOrder"},
        "dealer": {"form_id": "PAEZ_BD_Dealer", "fields": ["FName", "F_PAEZ_Level"],
                   "labels": {"FName": "Dealer name"}},
    })
    objects = {o.name: o for o in await connector.list_objects()}
    assert objects["customer"].label == "客户" and not objects["customer"].custom
    assert objects["dealer"].custom
    fields = {f.name: f for f in await connector.describe("customer")}
    assert fields["FCUSTID"].read_only and fields["FCUSTID"].type == "id"
    assert fields["FName"].label == "客户名称" and fields["FName"].required
    assert fields["FGroup.FNumber"].type == "lookup" and fields["FGroup.FNumber"].lookup_object == "BD_CustomerGroup"
    assert fields["FGroup.FName"].read_only
    assert fields["FModifyDate"].read_only and fields["FModifyDate"].type == "datetime"
    assert ("C", "已审核") in fields["FDocumentStatus"].picklist
    dealer = {f.name: f for f in await connector.describe("dealer")}
    assert dealer["FName"].label == "Dealer name"
    assert ("1", "白金") in dealer["F_PAEZ_Level"].picklist
    order = {f.name: f for f in await connector.describe("sales_order")}
    assert order["FSaleOrderEntry"].type == "entry"
    assert order["FSaleOrderEntry.FQty"].required and order["FSaleOrderEntry.FAllAmount"].read_only


async def test_describe_without_business_info_uses_configured_keys(emu, make_connector, recorder_type):
    recorder = recorder_type()
    connector = make_connector(transport=recorder, describe_from_business_info=False)
    fields = {f.name: f for f in await connector.describe("customer")}
    assert fields["FName"].label == "FName" and fields["FGroup.FNumber"].type == "lookup"
    assert recorder.bodies("QueryBusinessInfo") == []
    # A form the server cannot describe still gets a description from the config.
    other = make_connector(objects={"thing": {"form_id": "PAEZ_Unknown", "fields": ["FName"]}})
    assert [f.name for f in await other.describe("thing")] == ["FID", "FNumber", "FModifyDate", "FName"]
