"""Realistic seed records for the emulated org (``--seed N`` and ``POST /_admin/seed``).

Chinese and English companies with valid unified social credit codes, contacts
with Chinese and English names, channel partners in tiers, deals spread over the
pipeline stages. Deterministic for a given random seed.
"""
from __future__ import annotations

import random
from typing import Any

from connectors.emulation.fakedata import FakeData

from .emulator_schema import DEAL_STAGES, PARTNER_TIERS, USERS
from .emulator_store import ZohoStore, norm

ORDER = ["Partners", "Accounts", "Vendors", "Contacts", "Deals"]
_INDUSTRY = {"technology": "Technology", "manufacturing": "Manufacturing", "healthcare": "Healthcare",
             "logistics": "Logistics", "energy": "Energy", "retail": "Retail"}


class Seeder:
    def __init__(self, store: ZohoStore, random_seed: int | None = 0) -> None:
        self.store = store
        self.fake = FakeData(random_seed)
        self.rng = random.Random(random_seed)
        # Names handed out in the batch being built (not yet in the store's unique index).
        self._pending: dict[tuple[str, str], set[str]] = {}

    def seed(self, count: int, modules: list[str] | None = None) -> dict[str, int]:
        wanted = [m for m in ORDER if modules is None or m in modules]
        wanted += [m for m in (modules or []) if m not in ORDER and m in self.store.modules]
        created: dict[str, int] = {}
        for module in wanted:
            self._pending = {}
            rows = [self._row(module, i) for i in range(count)]
            self.store.add_seeded(module, [r for r in rows if r is not None])
            created[module] = count
        return created

    # -- helpers ---------------------------------------------------------
    def _times(self) -> tuple[int, int]:
        now = self.store.now()
        created = now - self.rng.randint(3600, 180 * 86400)
        modified = self.rng.randint(created, now - 60)
        return created, modified

    def _owner(self) -> str:
        return self.rng.choice(USERS).id

    def _unique(self, module: str, field: str, name: str) -> str:
        taken = self.store.modules[module].unique.get(field, {})
        candidate, n = name, 1
        while norm(candidate) in taken or norm(candidate) in self._pending.setdefault((module, field), set()):
            n += 1
            candidate = f"{name}（{n}）" if not name.isascii() else f"{name} ({n})"
        self._pending[(module, field)].add(norm(candidate))
        return candidate

    def _pick(self, module: str) -> str | None:
        keys = self.store.modules[module].by_id.keys
        return str(self.rng.choice(keys)[1]) if keys else None

    def _row(self, module: str, i: int) -> tuple[dict[str, Any], int, int, str] | None:
        created, modified = self._times()
        owner = self._owner()
        builder = getattr(self, f"_{module.lower()}", None)
        if builder is None:
            values = {self.store.modules[module].mdef.primary: self._unique(module, "Name", self.fake.company().name)}
        else:
            values = builder(module)
        return values, created, modified, owner

    def _partners(self, module: str) -> dict[str, Any]:
        c = self.fake.company()
        return {
            "Name": self._unique(module, "Name", c.name),
            "Email": f"channel@{c.domain}",
            "Phone": c.phone,
            "Website": f"https://www.{c.domain}",
            "Partner_Tier": self.rng.choice(PARTNER_TIERS),
            "Region": c.region if c.chinese else "Overseas",
            "Unified_Social_Credit_Code": c.tax_id if c.chinese else None,
            "Partner_Since": f"{self.rng.randint(2012, 2024)}-{self.rng.randint(1, 12):02d}-01",
            "Active": self.rng.random() < 0.9,
            "Annual_Target": float(self.rng.randint(50, 5000) * 10000),
        }

    def _accounts(self, module: str) -> dict[str, Any]:
        c = self.fake.company()
        partner = self._pick("Partners") if self.rng.random() < 0.4 else None
        return {
            "Account_Name": self._unique(module, "Account_Name", c.name),
            "Account_Name_EN": c.name_en,
            "Account_Type": self.rng.choice(["Customer", "Customer", "Prospect", "Reseller", "Distributor"]),
            "Industry": _INDUSTRY.get(c.industry, "Technology"),
            "Phone": c.phone,
            "Website": f"https://www.{c.domain}",
            "Billing_City": c.city,
            "Billing_Country": "China" if c.chinese else self.rng.choice(["United States", "Singapore", "Germany"]),
            "Region": c.region if c.chinese else "Overseas",
            "Unified_Social_Credit_Code": c.tax_id if c.chinese else None,
            "Employees": self.rng.choice([12, 45, 120, 380, 1500, 12000]),
            "Annual_Revenue": float(self.rng.randint(1, 900) * 100000),
            "Customer_Level": self.rng.choice("ABCD"),
            "Partner": partner,
            "Payment_Terms": self.rng.choice(["Prepaid", "Net 30", "月结30天", "月结60天"]),
            "Tag": ["渠道客户"] if partner else [],
        }

    def _vendors(self, module: str) -> dict[str, Any]:
        c = self.fake.company()
        return {
            "Vendor_Name": self._unique(module, "Vendor_Name", c.name),
            "Email": f"sales@{c.domain}",
            "Phone": c.phone,
            "Website": f"https://www.{c.domain}",
            "Category": self.rng.choice(["Hardware", "Software", "Logistics", "Services"]),
            "City": c.city,
            "Country": "China" if c.chinese else "United States",
            "Unified_Social_Credit_Code": c.tax_id if c.chinese else None,
        }

    def _contacts(self, module: str) -> dict[str, Any]:
        account = self._pick("Accounts")
        domain = "example.cn"
        p = self.fake.person(domain)
        if " " in p.name:
            first, last = p.name.split(" ", 1)
        else:
            last, first = p.name[0], p.name[1:]
        return {
            "First_Name": first,
            "Last_Name": last,
            "Email": p.email,
            "Mobile": p.mobile,
            "Title": p.title,
            "Account_Name": account,
            "Lead_Source": self.rng.choice(["Partner", "Trade Show", "WeChat", "Web Research"]),
        }

    def _deals(self, module: str) -> dict[str, Any]:
        account = self._pick("Accounts")
        company = self.fake.company()
        name = self.fake.deal_name(company)
        if account:
            label = self.store.display_name("Accounts", int(account)) or company.name
            name = f"{label[:12]} - {name.split(' - ', 1)[-1]}"
        stage, probability = self.rng.choice(DEAL_STAGES)
        return {
            "Deal_Name": self._unique(module, "Deal_Name", name),
            "Account_Name": account,
            "Contact_Name": self._pick("Contacts") if self.rng.random() < 0.7 else None,
            "Amount": float(self.fake.amount()),
            "Stage": stage,
            "Probability": probability,
            "Closing_Date": f"{self.rng.randint(2024, 2026)}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}",
            "Type": self.rng.choice(["New Business", "Existing Business"]),
            "Partner": self._pick("Partners") if self.rng.random() < 0.5 else None,
            "Pipeline": "Channel Sales" if self.rng.random() < 0.5 else "Standard (Standard)",
        }
