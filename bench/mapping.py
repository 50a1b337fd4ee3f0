"""Mapping throughput: records/s for system → canonical → system, with the example config's mappings.

    .venv/bin/python bench/mapping.py [--records 100000]

Scenarios (each maps N records all the way through, references resolved through an
in-memory link table as the engine's would be):
  account  Fxiaoke AccountObj → canonical → Zoho Accounts  (value maps, owner list, lookup, transforms)
  deal     Fxiaoke NewOpportunityObj → canonical → Zoho Deals  (epoch-ms date, decimal text, stage map)
  order    Kingdee SAL_SaleOrder with 3 lines → canonical → Zoho Sales_Orders  (lines, refs by number)
The last line is key=value figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.emulation.fakedata import FakeData  # noqa: E402
from mapping.compiler import MappingSet  # noqa: E402
from mapping.references import StaticResolver  # noqa: E402
from mapping.testing import load_mapping_config  # noqa: E402

EXAMPLE = ROOT / "config" / "examples" / "channel-sales.yaml"
SYSTEMS = {"fxiaoke": "fxiaoke", "zoho": "zoho", "erp": "kingdee"}
INDUSTRIES = ["technology", "manufacturing", "retail", "healthcare", "logistics", "energy"]
OWNERS = ["1000", "1001", "1002", "1003", "1007"]  # 1007 is not in the users map: falls back to the default


def build_records(n: int):
    fake = FakeData(42)
    links: dict[str, dict[str, dict[str, str]]] = {"partner": {}, "account": {}, "deal": {}}
    for i in range(50):
        links["partner"][f"ptn-{i}"] = {"fxiaoke": f"65f0b2c3d4e5f607182{i:05d}", "zoho": f"57257670000004{i:05d}",
                                        "erp": str(100000 + i), "erp_partner_number": f"D{i:04d}"}
    accounts, deals, orders = [], [], []
    distinct = min(n, 5000)  # generating is not what we measure: cycle through a pool of varied records
    for i in range(distinct):
        company = fake.company()
        fx_id = f"65f0a1c2e4b0d3a1f{i:07d}"
        links["account"][f"acct-{i}"] = {"fxiaoke": fx_id, "zoho": f"572576700000{i:07d}", "erp": str(200000 + i),
                                         "erp_customer_number": f"C{i:05d}"}
        links["deal"][f"deal-{i}"] = {"fxiaoke": f"65f0d4e5f607182{i:09d}", "zoho": f"572576700008{i:07d}"}
        accounts.append({
            "_id": fx_id, "name": f" {company.name} ", "credit_code__c": company.tax_id, "url": f"https://www.{company.domain}/",
            "industry_level1": INDUSTRIES[i % len(INDUSTRIES)], "tel": company.phone, "address": f"{company.city} 科技园 {i} 号",
            "owner": [OWNERS[i % len(OWNERS)]], "partner_id": links["partner"][f"ptn-{i % 50}"]["fxiaoke"],
            "last_modified_time": 1710207000000 + i,
        })
        deals.append({
            "_id": f"65f0d4e5f607182{i:09d}", "name": fake.deal_name(company), "amount": fake.amount(),
            "sales_stage": str(1 + i % 6), "probability": str((i * 10) % 100), "close_date": 1719676800000 + 86_400_000 * (i % 90),
            "account_id": fx_id, "partner_id": links["partner"][f"ptn-{i % 50}"]["fxiaoke"], "owner": [OWNERS[i % 4]],
            "remark": "含三年维保",
        })
        orders.append({
            "FID": 300000 + i, "FBillNo": f"XSDD{i:06d}", "FDate": "2024-05-06T00:00:00", "FCustId.FNumber": f"C{i:05d}",
            "F_PAEZ_Dealer.FNumber": f"D{i % 50:04d}", "F_PAEZ_CrmOppId": f"65f0d4e5f607182{i:09d}",
            "FSalerId.FNumber": "0002", "FDocumentStatus": "C", "FSettleCurrId.FNumber": "PRE001",
            "FBillAmount": 1132743.36, "FBillTaxAmount": 147256.64, "FBillAllAmount": 1280000.0, "FNote": "合同号 HT",
            "FApproveDate": "2024-05-06 15:42:10",
            "FSaleOrderEntry": [
                {"FSaleOrderEntry_FEntryId": 1, "FMaterialId.FNumber": "SRV-2288H", "FMaterialId.FName": "服务器",
                 "FUnitID.FNumber": "Pcs", "FQty": 4, "FPrice": 176991.15, "FEntryTaxRate": 13, "FAllAmount": 800000.0,
                 "FDeliveryDate": "2024-05-20T00:00:00"},
                {"FSaleOrderEntry_FEntryId": 2, "FMaterialId.FNumber": "SW-ERP-STD", "FMaterialId.FName": "软件",
                 "FUnitID.FNumber": "Set", "FQty": 1, "FPrice": 353982.3, "FEntryTaxRate": 13, "FAllAmount": 400000.0},
                {"FSaleOrderEntry_FEntryId": 3, "FMaterialId.FNumber": "SVC-MAINT-1Y", "FMaterialId.FName": "维保",
                 "FUnitID.FNumber": "Year", "FQty": 1, "FPrice": 70796.46, "FEntryTaxRate": 13, "FAllAmount": 80000.0},
            ],
        })
    return accounts, deals, orders, StaticResolver(links)


def run(mappings: MappingSet, entity: str, source: str, target: str, pool: list[dict], n: int, resolver) -> float:
    read = mappings.mapper(entity, source).to_canonical
    write = mappings.mapper(entity, target).to_system
    size = len(pool)
    started = time.perf_counter()
    for i in range(n):
        write(read(pool[i % size], resolver), resolver)
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records per scenario (default 100000)")
    args = parser.parse_args()
    config = load_mapping_config(EXAMPLE, systems=SYSTEMS)
    mappings = MappingSet.from_config(config, base_dir=EXAMPLE.parent)
    accounts, deals, orders, resolver = build_records(args.records)
    figures = {}
    for name, entity, source, target, pool in (
        ("account", "account", "fxiaoke", "zoho", accounts),
        ("deal", "deal", "fxiaoke", "zoho", deals),
        ("order", "sales_order", "erp", "zoho", orders),
    ):
        rate = run(mappings, entity, source, target, pool, args.records, resolver)
        figures[name] = rate
        print(f"{name:8s} {source} → canonical → {target}: {args.records} records, {rate:,.0f} records/s")
    print(" ".join([f"records={args.records}"] + [f"{k}_records_per_s={v:.0f}" for k, v in figures.items()]))


if __name__ == "__main__":
    main()
