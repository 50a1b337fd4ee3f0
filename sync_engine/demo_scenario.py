"""What the demo's users do after the first sync: edits in every system, through each emulator's
``/_admin`` API "as a user" — so the systems stamp their modified times and send their
notifications exactly as for a person's edit in the web UI."""
from __future__ import annotations

import time
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from .runtime import Runtime
from .state.models import Record

CHOICES_INDUSTRY = {"technology": ("Technology", "TECH"), "manufacturing": ("Manufacturing", "MFG"),
                    "retail": ("Retail", "RTL"), "healthcare": ("Healthcare", "MED"), "logistics": ("Logistics", "LOG"),
                    "energy": ("Energy", "NRG")}
TIER_OPTIONS = {"platinum": "Platinum", "gold": "Gold", "silver": "Silver", "registered": "Registered"}


def values_of(rt: Runtime, entity: str, cid: str) -> dict[str, Any]:
    with rt.store.read() as session:
        record = session.scalar(select(Record).where(Record.entity == entity, Record.canonical_id == cid))
        return dict(record.values) if record else {}


class Admin:
    """A person's hands on the three systems."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.http = httpx.Client(timeout=30)

    def get(self, system: str, object: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.urls[system]}/_admin/records/{object}")
        response.raise_for_status()
        return response.json()

    def one(self, system: str, object: str, key: str, value: Any) -> dict[str, Any] | None:
        return next((r for r in self.get(system, object) if str(r.get(key)) == str(value)), None)

    def patch(self, system: str, object: str, record_id: str, changes: dict[str, Any]) -> None:
        response = self.http.patch(f"{self.urls[system]}/_admin/records/{object}/{record_id}", json=changes)
        response.raise_for_status()

    def create(self, system: str, object: str, data: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"{self.urls[system]}/_admin/records/{object}", json=data)
        response.raise_for_status()
        return response.json()

    def delete(self, system: str, object: str, record_id: str) -> None:
        self.http.delete(f"{self.urls[system]}/_admin/records/{object}/{record_id}").raise_for_status()


def make_edits(rt: Runtime, emulators, console: Console):
    from .demo import Edits, linked_in_all

    admin = Admin(emulators.urls)
    edits = Edits()

    def say(system: str, text: str) -> None:
        console.print(f"  [cyan]{system:8}[/cyan] {escape(text)}", highlight=False)

    x, y, z = linked_in_all(rt, "account", ("fxiaoke", "zoho", "erp"), n=3)
    x_name, y_name, z_name = (values_of(rt, "account", r["cid"]).get("name") for r in (x, y, z))

    # Zoho: a rep corrects a customer's switchboard number.
    phone = "+86 755 8600 1234"
    admin.patch("zoho", "Accounts", x["zoho"], {"Phone": phone})
    edits.zoho_phone = {"ids": x, "name": x_name, "value": phone}
    say("zoho", f"客户 {x_name}: Phone → {phone}")

    # The same field in two systems: Fxiaoke first, Zoho a moment later (latest_wins: Zoho's stands).
    fx_phone, zoho_phone = "+86 755 1111 0000", "+86 755 2222 0000"
    admin.patch("fxiaoke", "AccountObj", y["fxiaoke"], {"tel": fx_phone})
    say("fxiaoke", f"客户 {y_name}: 电话 → {fx_phone}")
    time.sleep(1.1)  # Zoho stamps whole seconds: make the later edit visibly later
    admin.patch("zoho", "Accounts", y["zoho"], {"Phone": zoho_phone})
    say("zoho", f"客户 {y_name}: Phone → {zoho_phone}   (the same field, edited in two systems)")
    edits.conflict = {"ids": y, "name": y_name, "field": "phone", "fxiaoke": fx_phone, "zoho": zoho_phone}

    # A field whose conflicts wait for a person (industry: manual).
    current = values_of(rt, "account", z["cid"]).get("industry")
    fx_ind, zoho_ind = [k for k in CHOICES_INDUSTRY if k != current][:2]
    admin.patch("fxiaoke", "AccountObj", z["fxiaoke"], {"industry_level1": fx_ind})
    admin.patch("zoho", "Accounts", z["zoho"], {"Industry": CHOICES_INDUSTRY[zoho_ind][0]})
    say("both", f"客户 {z_name}: industry → {fx_ind} in Fxiaoke, {zoho_ind} in Zoho (policy: manual)")
    edits.manual = {"ids": z, "name": z_name, "fxiaoke": fx_ind, "zoho": zoho_ind, "erp_before": current}

    # Fxiaoke: a deal is won.
    [deal] = linked_in_all(rt, "deal", ("fxiaoke", "zoho"))
    deal_name = values_of(rt, "deal", deal["cid"]).get("name")
    admin.patch("fxiaoke", "NewOpportunityObj", deal["fxiaoke"], {"sales_stage": "5", "probability": "100"})
    edits.deal_won = {"ids": deal, "name": deal_name}
    say("fxiaoke", f"商机 {deal_name}: 销售阶段 → 赢单")

    # Fxiaoke: a new contact at customer X.
    created = admin.create("fxiaoke", "ContactObj", {
        "name": "林晓东", "account_id": x["fxiaoke"], "job_title": "IT总监", "mobile1": "13912345678",
        "email": "lin.xiaodong@example.cn", "owner": ["1002"]})
    edits.new_contact = {"fxiaoke": created["_id"], "name": "林晓东", "account": x}
    say("fxiaoke", f"new 联系人 林晓东 at {x_name}")

    # Zoho: a contact who left the company is deleted (contacts: propagate).
    [contact] = linked_in_all(rt, "contact", ("fxiaoke", "zoho"))
    contact_name = values_of(rt, "contact", contact["cid"]).get("name")
    admin.delete("zoho", "Contacts", contact["zoho"])
    edits.deleted_contact = {"ids": contact, "name": contact_name}
    say("zoho", f"contact {contact_name} deleted")

    # Zoho: the partner manager promotes a dealer.
    [partner] = linked_in_all(rt, "partner", ("fxiaoke", "zoho", "erp"))
    partner_values = values_of(rt, "partner", partner["cid"])
    tier = next(t for t in TIER_OPTIONS if t != partner_values.get("tier"))
    admin.patch("zoho", "Partners", partner["zoho"], {"Partner_Tier": TIER_OPTIONS[tier]})
    edits.partner_tier = {"ids": partner, "name": partner_values.get("name"), "tier": tier}
    say("zoho", f"partner {partner_values.get('name')}: Partner_Tier → {TIER_OPTIONS[tier]}")

    # ERP: finance raises X's credit limit and books an order (the ERP sends no notifications).
    admin.patch("erp", "BD_Customer", x["erp"], {"F_PAEZ_CreditLimit": 888888})
    edits.credit_limit = {"ids": x, "value": 888888}
    say("erp", f"客户 {x_name}: 信用额度 → 888,888.00")
    customer = admin.one("erp", "BD_Customer", "FCUSTID", x["erp"])
    order = admin.create("erp", "SAL_SaleOrder", {
        "FDate": time.strftime("%Y-%m-%d"), "FSaleOrgId.FNumber": "100", "FCustId.FNumber": customer["FNumber"],
        "FSalerId.FNumber": "0002", "FNote": "演示订单", "FDocumentStatus": "C",
        "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.001"}, "FQty": 2, "FTaxPrice": 68000, "FEntryTaxRate": 13}],
    })
    edits.new_order = {"erp": str(order["FID"]), "number": order["FBillNo"], "account": x}
    say("erp", f"销售订单 {order['FBillNo']} for {x_name} (audited)")
    return edits
