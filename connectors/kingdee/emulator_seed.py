"""Realistic seed data for the Kingdee emulator: customers, dealers and sales orders.

Modified dates spread over the last 90 days in ascending order, with bursts of
records sharing one second (bulk imports do that on real servers, and it is
what breaks naive paging). Most records are audited, some still in creation or
under review, as in a live data centre.
"""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..emulation.fakedata import CITIES, CITY_EN, FakeData
from .emulator_forms import DEALER_LEVELS, FORMS, REFERENCE_DATA

if TYPE_CHECKING:
    from .emulator_store import KingdeeStore

_DISTRICTS = ["南山区", "浦东新区", "海淀区", "天河区", "西湖区", "高新区", "江宁区", "工业园区", "东湖高新区", "雁塔区"]
_ROADS = ["科技园路", "张江路", "中关村大街", "珠江新城大道", "文三路", "天府大道", "软件大道", "星湖街", "光谷大道", "丈八一路"]


class _Clock:
    """Ascending timestamps from ``start`` to ``end`` with occasional same-second bursts."""

    def __init__(self, rng: random.Random, start: datetime, end: datetime, count: int) -> None:
        self.rng = rng
        self.current = start
        self.step = (end - start) / max(count, 1)
        self.burst = 0

    def tick(self) -> datetime:
        if self.burst:
            self.burst -= 1
            return self.current
        if self.rng.random() < 0.05:
            self.burst = self.rng.randint(2, 40)
        jitter = self.step * self.rng.uniform(0.2, 1.8)
        self.current = self.current + jitter
        return self.current.replace(microsecond=self.rng.randrange(0, 1000) * 1000)


def _status(rng: random.Random, audited_share: float) -> str:
    roll = rng.random()
    return "C" if roll < audited_share else "B" if roll < audited_share + (1 - audited_share) / 2 else "A"


def seed_store(store: KingdeeStore, count: int, objects: list[str] | None, *, seed: int | None) -> dict[str, int]:
    """``objects`` None: ``count`` customers, a tenth as many dealers, half as many orders; else ``count`` of each."""
    if objects is None:
        plan = {"BD_Customer": count, "PAEZ_BD_Dealer": max(1, count // 10) if count else 0,
                "SAL_SaleOrder": count // 2}
    else:
        plan = {name: count for name in objects}
    rng = random.Random(seed)
    fake = FakeData(seed)
    end = store.now() - timedelta(minutes=1)
    start = end - timedelta(days=90)
    makers = {"BD_Customer": _customers, "PAEZ_BD_Dealer": _dealers, "SAL_SaleOrder": _orders}
    unknown = set(plan) - set(makers)
    if unknown:
        raise ValueError(f"cannot seed {sorted(unknown)}: reference data is fixed")
    created: dict[str, int] = {}
    with store.lock:
        for form_id in ("BD_Customer", "PAEZ_BD_Dealer", "SAL_SaleOrder"):
            if form_id in plan:
                created[form_id] = makers[form_id](store, fake, rng, plan[form_id], start, end)
    return created


def _address(fake: FakeData, rng: random.Random, city_en: str) -> str:
    index = CITY_EN.index(city_en) if city_en in CITY_EN else 0
    return f"{CITIES[index]}{_DISTRICTS[index]}{_ROADS[index]}{rng.randint(1, 999)}号"


def _customers(store: KingdeeStore, fake: FakeData, rng: random.Random, count: int, start: datetime,
               end: datetime) -> int:
    form = FORMS["BD_Customer"]
    clock = _Clock(rng, start, end, count)
    for _ in range(count):
        company = fake.company()
        model = {
            "FName": company.name,
            "FShortName": company.name[:8] if company.chinese else company.name.split(" ")[0],
            "FTAXREGISTERCODE": company.tax_id,
            "FTEL": company.phone,
            "FADDRESS": _address(fake, rng, company.city),
            "FWEBSITE": f"https://www.{company.domain}",
            "FCreateOrgId": {"FNumber": "100"},
            "FUseOrgId": {"FNumber": rng.choice(["100", "100", "100", "101", "102"])},
            "FGroup": {"FNumber": "03" if rng.random() < 0.1 else "01"},
            "FCustTypeId": {"FNumber": "KHLB001_SYS"},
            "F_PAEZ_CreditLimit": rng.choice([50000, 100000, 200000, 500000, 1000000, 3000000]),
            "FDescription": f"{company.region}区域客户",
        }
        store.apply_model(form, model, status=_status(rng, 0.9), stamp=clock.tick())
    return count


def _dealers(store: KingdeeStore, fake: FakeData, rng: random.Random, count: int, start: datetime,
             end: datetime) -> int:
    form = FORMS["PAEZ_BD_Dealer"]
    customers = [r["FNumber"] for r in store.records["BD_Customer"].values() if r.get("FDocumentStatus") == "C"]
    clock = _Clock(rng, start, end, count)
    for _ in range(count):
        company = fake.company()
        person = fake.person(company.domain)
        model = {
            "FName": company.name,
            "FCreateOrgId": {"FNumber": "100"},
            "FUseOrgId": {"FNumber": "100"},
            "F_PAEZ_Level": rng.choice(list(DEALER_LEVELS)),
            "F_PAEZ_Region": company.region,
            "F_PAEZ_Contact": person.name,
            "F_PAEZ_Phone": person.mobile,
            "F_PAEZ_CustId": {"FNumber": rng.choice(customers)} if customers and rng.random() < 0.6 else None,
            "FDescription": f"{company.region}渠道伙伴",
        }
        store.apply_model(form, model, status=_status(rng, 0.85), stamp=clock.tick())
    return count


def _orders(store: KingdeeStore, fake: FakeData, rng: random.Random, count: int, start: datetime,
            end: datetime) -> int:
    customers = [r for r in store.records["BD_Customer"].values() if r.get("FDocumentStatus") == "C"]
    if count and not customers:
        _customers(store, fake, rng, max(1, count // 5), start, start + (end - start) / 10)
        customers = [r for r in store.records["BD_Customer"].values() if r.get("FDocumentStatus") == "C"]
    form = FORMS["SAL_SaleOrder"]
    materials = REFERENCE_DATA["BD_MATERIAL"]
    clock = _Clock(rng, start, end, count)
    for _ in range(count):
        customer = rng.choice(customers)
        stamp = clock.tick()
        lines = []
        for number, _name, extra in rng.sample(materials, rng.randint(1, min(5, len(materials)))):
            discount = rng.choice([1, 0.95, 0.9, 0.85])
            lines.append({
                "FMaterialId": {"FNumber": number},
                "FQty": rng.choice([1, 1, 2, 3, 5, 10, 20]),
                "FTaxPrice": round(float(extra["F_PAEZ_ListPrice"]) * discount, 2),
                "FEntryTaxRate": 13,
                "FDeliveryDate": (stamp + timedelta(days=rng.randint(7, 45))).strftime("%Y-%m-%d"),
            })
        model = {
            "FDate": stamp.strftime("%Y-%m-%d"),
            "FSaleOrgId": {"FNumber": "100"},
            "FCustId": {"FNumber": customer["FNumber"]},
            "FNote": fake.deal_name(replace(fake.company(), name=customer["FName"])),
            "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}, "FIsIncludedTax": True},
            "FSaleOrderEntry": lines,
        }
        store.apply_model(form, model, status=_status(rng, 0.6), stamp=stamp)
    return count
