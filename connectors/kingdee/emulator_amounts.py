"""Sales order amounts as the emulator computes them on save (the ERP owns these; clients never send them).

With ``FIsIncludedTax`` (the default) the tax-inclusive price ``FTaxPrice`` leads
and the net price follows; a line that only gives ``FPrice`` is priced net.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .emulator_query import LINES

ENTRY = "FSaleOrderEntry"


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def compute_amounts(record: dict[str, Any]) -> None:
    """Fill line amounts, line numbers and header totals of a record with sales order lines."""
    lines = record[LINES].get(ENTRY) if LINES in record else None
    if lines is None:
        return
    included = record.get("FIsIncludedTax") is not False
    total_all, total_net = Decimal(0), Decimal(0)
    for seq, line in enumerate(lines, start=1):
        given = line.pop("__given__", set())
        rate = (line.get("FEntryTaxRate") or Decimal(0)) / 100
        price, tax_price = line.get("FPrice"), line.get("FTaxPrice")
        net_given = "fprice" in given and "ftaxprice" not in given
        if (included and not net_given and tax_price is not None) or price is None:
            tax_price = tax_price or Decimal(0)
            price = tax_price / (1 + rate)
        else:
            tax_price = price * (1 + rate)
        qty = line.get("FQty") or Decimal(0)
        line["FPrice"], line["FTaxPrice"] = price.quantize(Decimal("0.000001")), _money(tax_price)
        line["FAllAmount"] = _money(qty * tax_price)
        line["FAmount"] = _money(qty * price)
        line["FTaxAmount"] = line["FAllAmount"] - line["FAmount"]
        line["FSeq"] = seq
        total_all += line["FAllAmount"]
        total_net += line["FAmount"]
    record["FBillAllAmount"] = total_all
    record["FBillAmount"] = total_net
    record["FBillTaxAmount"] = total_all - total_net
