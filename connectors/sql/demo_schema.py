"""An example ERP database for tests, the demo and benchmarks — plus a simulated ERP import job.

The tables imitate what an integrator finds on site (K3 WISE / U8 style):

* ``erp_customer`` (customer master, base table) and the view ``v_crm_customer`` over audited customers;
* ``erp_dealer`` (dealers, *no* modified column: change detection by hash);
* ``erp_sales_order`` + ``erp_sales_order_line`` (orders with lines);
* interface tables ``if_customer``, ``if_dealer``, ``if_sales_order`` + ``if_sales_order_line``
  with crmsync's control columns — the only tables crmsync writes.

:func:`run_erp_import_job` plays the customer's ERP-side job: it locks pending
interface rows, validates them the way an ERP would (with Chinese/English
messages), imports the good ones into the base tables and marks each row DONE
or ERROR. It is ERP code, so it *does* write base tables; crmsync never does.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine

from connectors.emulation.fakedata import PARTNER_TIERS, FakeData, is_valid_uscc

TZ = "Asia/Shanghai"
PENDING, DONE, ERROR = "PENDING", "DONE", "ERROR"
MT = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}

metadata = MetaData()


def _controls(prefix: str) -> list[Any]:
    """crmsync's control columns of an interface table (names = the connector's defaults)."""
    return [
        Column("sync_action", String(10), comment="create/update/upsert/delete (crmsync)"),
        Column("sync_status", String(20), nullable=False, server_default=PENDING, comment="PENDING/DONE/ERROR"),
        Column("sync_message", String(1000), comment="ERP import job message"),
        Column("processed_at", DateTime, comment="processed by the ERP import job (local time)"),
        Column("batch_id", String(64), comment="crmsync batch"),
        Column("crmsync_op_key", String(200), comment="crmsync op key"),
        Column("staged_at", DateTime, comment="staged by crmsync (local time)"),
        Column("crmsync_read_at", DateTime, comment="outcome read by crmsync"),
        Column("erp_id", String(30), comment="ERP record id filled by the import job"),
        Index(f"ix_{prefix}_outcome", "sync_status", "crmsync_read_at"),
        Index(f"ix_{prefix}_op_key", "crmsync_op_key"),
    ]


erp_customer = Table(
    "erp_customer", metadata,
    Column("cust_no", String(30), primary_key=True, comment="客户编码"),
    Column("crm_id", String(64), unique=True, comment="CRM 客户ID"),
    Column("name", String(200), nullable=False, comment="客户名称"),
    Column("short_name", String(100), comment="简称"),
    Column("tax_no", String(30), comment="统一社会信用代码"),
    Column("city", String(50), comment="城市"),
    Column("address", String(300), comment="地址"),
    Column("phone", String(50), comment="电话"),
    Column("contact", String(100), comment="联系人"),
    Column("salesperson", String(50), comment="销售员"),
    Column("credit_limit", Numeric(18, 2), comment="信用额度"),
    Column("currency", String(3), nullable=False, server_default="CNY", comment="币别"),
    Column("payment_days", Integer, comment="账期天数"),
    Column("doc_status", String(1), nullable=False, server_default="C", comment="数据状态 A创建 B审核中 C已审核"),
    Column("forbid_status", String(1), nullable=False, server_default="A", comment="禁用状态 A正常 B禁用"),
    Column("created_at", DateTime, nullable=False, comment="创建日期"),
    Column("modified_at", DateTime, nullable=False, comment="修改日期"),
    Index("ix_erp_customer_modified", "modified_at", "cust_no"),
    comment="客户 customer master (ERP base table)", **MT,
)

erp_dealer = Table(
    "erp_dealer", metadata,
    Column("dealer_code", String(30), primary_key=True, comment="经销商编码"),
    Column("name", String(200), nullable=False, comment="经销商名称"),
    Column("tier", String(20), nullable=False, comment="等级"),
    Column("region", String(20), comment="大区"),
    Column("city", String(50), comment="城市"),
    Column("contact", String(100), comment="联系人"),
    Column("phone", String(50), comment="电话"),
    Column("rebate_rate", Numeric(5, 4), comment="返利比例"),
    comment="经销商 dealers (ERP base table, no modified column)", **MT,
)

erp_sales_order = Table(
    "erp_sales_order", metadata,
    Column("order_no", String(30), primary_key=True, comment="单据编号"),
    Column("crm_order_no", String(64), unique=True, comment="CRM 商机/订单号"),
    Column("cust_no", String(30), ForeignKey("erp_customer.cust_no"), nullable=False, comment="客户编码"),
    Column("order_date", Date, nullable=False, comment="日期"),
    Column("status", String(20), nullable=False, comment="状态 audited/closed"),
    Column("currency", String(3), nullable=False, server_default="CNY", comment="币别"),
    Column("total_amount", Numeric(18, 2), nullable=False, comment="价税合计"),
    Column("note", String(500), comment="备注"),
    Column("modified_at", DateTime, nullable=False, comment="修改日期"),
    Index("ix_erp_sales_order_modified", "modified_at", "order_no"),
    comment="销售订单 sales orders (ERP base table)", **MT,
)

erp_sales_order_line = Table(
    "erp_sales_order_line", metadata,
    Column("order_no", String(30), ForeignKey("erp_sales_order.order_no"), primary_key=True),
    Column("line_no", Integer, primary_key=True, comment="行号"),
    Column("material_no", String(30), nullable=False, comment="物料编码"),
    Column("material_name", String(200), comment="物料名称"),
    Column("qty", Numeric(18, 4), nullable=False, comment="数量"),
    Column("price", Numeric(18, 4), nullable=False, comment="含税单价"),
    Column("amount", Numeric(18, 2), nullable=False, comment="价税合计"),
    comment="销售订单明细 sales order lines", **MT,
)

if_customer = Table(
    "if_customer", metadata,
    Column("crm_id", String(64), primary_key=True, comment="CRM 客户ID"),
    Column("cust_no", String(30), comment="客户编码 (existing customer)"),
    Column("name", String(200), comment="客户名称"),
    Column("short_name", String(100), comment="简称"),
    Column("tax_no", String(30), comment="统一社会信用代码"),
    Column("city", String(50), comment="城市"),
    Column("address", String(300), comment="地址"),
    Column("phone", String(50), comment="电话"),
    Column("contact", String(100), comment="联系人"),
    Column("salesperson", String(50), comment="销售员"),
    Column("payment_days", Integer, comment="账期天数"),
    *_controls("if_customer"),
    CheckConstraint("payment_days IS NULL OR payment_days >= 0", name="ck_if_customer_payment_days"),
    comment="客户接口表 customer interface table (crmsync → ERP)", **MT,
)

if_dealer = Table(
    "if_dealer", metadata,
    Column("dealer_code", String(30), primary_key=True, comment="经销商编码"),
    Column("name", String(200), comment="经销商名称"),
    Column("tier", String(20), comment="等级"),
    Column("region", String(20), comment="大区"),
    Column("city", String(50), comment="城市"),
    Column("contact", String(100), comment="联系人"),
    Column("phone", String(50), comment="电话"),
    *_controls("if_dealer"),
    comment="经销商接口表 dealer interface table", **MT,
)

if_sales_order = Table(
    "if_sales_order", metadata,
    Column("crm_order_no", String(64), primary_key=True, comment="CRM 订单号"),
    Column("cust_no", String(30), comment="客户编码"),
    Column("order_date", Date, comment="日期"),
    Column("currency", String(3), comment="币别"),
    Column("note", String(500), comment="备注"),
    *_controls("if_sales_order"),
    comment="销售订单接口表 sales order interface table", **MT,
)

if_sales_order_line = Table(
    "if_sales_order_line", metadata,
    Column("crm_order_no", String(64), primary_key=True),
    Column("line_no", Integer, primary_key=True, comment="行号"),
    Column("material_no", String(30), comment="物料编码"),
    Column("qty", Numeric(18, 4), comment="数量"),
    Column("price", Numeric(18, 4), comment="含税单价"),
    Column("crmsync_op_key", String(200), nullable=False),
    Column("batch_id", String(64)),
    CheckConstraint("qty > 0", name="ck_if_sales_order_line_qty"),
    comment="销售订单明细接口表", **MT,
)

VIEW_SQL = (
    "CREATE VIEW v_crm_customer AS SELECT cust_no, crm_id, name, short_name, tax_no, city, address, phone, contact, "
    "salesperson, credit_limit, currency, payment_days, forbid_status, modified_at FROM erp_customer WHERE doc_status = 'C'"
)


def create_demo_schema(engine: Engine) -> None:
    """(Re)create the example ERP tables, view and interface tables (drops them first)."""
    drop_demo_schema(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text(VIEW_SQL))


def drop_demo_schema(engine: Engine, *, hash_table: str | None = "crmsync_row_hash") -> None:
    """Drop the demo tables and, by default, the connector's hash table (so a new demo starts clean)."""
    with engine.begin() as conn:
        conn.execute(text("DROP VIEW IF EXISTS v_crm_customer"))
    metadata.drop_all(engine)
    if hash_table:
        Table(hash_table, MetaData()).drop(engine, checkfirst=True)


def clear_demo_data(engine: Engine, *, hash_table: str | None = "crmsync_row_hash") -> None:
    """Empty every demo table (and the hash table) but keep the schema: a fast reset between tests."""
    from sqlalchemy import delete, inspect

    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
        if hash_table and inspect(conn).has_table(hash_table):
            conn.execute(delete(Table(hash_table, MetaData())))


def demo_settings(url: str, **overrides: Any) -> dict[str, Any]:
    """A ``systems.<name>`` block (without ``type``) for the demo schema."""
    settings: dict[str, Any] = {
        "url": url,
        "timezone": TZ,
        "objects": {
            "customer": {
                "label": "客户 Customer",
                "table": "v_crm_customer",
                "key": "cust_no",
                "modified_column": "modified_at",
                "interface": {"table": "if_customer", "key": "crm_id"},
            },
            "dealer": {
                "label": "经销商 Dealer",
                "table": "erp_dealer",
                "key": "dealer_code",
                "interface": {"table": "if_dealer"},
            },
            "sales_order": {
                "label": "销售订单 Sales order",
                "table": "erp_sales_order",
                "key": "order_no",
                "modified_column": "modified_at",
                "details": {"lines": {"table": "erp_sales_order_line", "parent_key": "order_no", "key": "line_no"}},
                "interface": {
                    "table": "if_sales_order",
                    "key": "crm_order_no",
                    "details": {"lines": {"table": "if_sales_order_line", "parent_key": "crm_order_no"}},
                },
            },
        },
    }
    settings.update(overrides)
    return settings


def local_now(tz: str = TZ) -> datetime:
    """ERP wall-clock time: naive, second precision (what DATETIME columns hold)."""
    return datetime.now(UTC).astimezone(ZoneInfo(tz)).replace(tzinfo=None, microsecond=0)


# -- seed data -----------------------------------------------------------------
@dataclass(slots=True)
class SeedSummary:
    customers: int
    dealers: int
    orders: int


def seed_demo(
    engine: Engine,
    *,
    customers: int = 200,
    dealers: int = 50,
    orders: int = 100,
    seed: int = 0,
    start: datetime | None = None,
    ties: int = 3,
) -> SeedSummary:
    """Deterministic Chinese/English ERP data. Every ``ties`` customers share one modified time."""
    fake = FakeData(seed)
    rng = random.Random(seed)
    start = start or local_now() - timedelta(days=30)
    rows = []
    for i in range(customers):
        company = fake.company()
        moment = start + timedelta(seconds=i // max(ties, 1))
        rows.append({
            "cust_no": f"C{i + 1:06d}", "crm_id": None, "name": company.name, "short_name": company.name[:10],
            "tax_no": company.tax_id, "city": company.city, "address": f"{company.city} {rng.randint(1, 999)}号",
            "phone": company.phone, "contact": fake.person(company.domain).name, "salesperson": rng.choice(["张伟", "李娜", "Tom"]),
            "credit_limit": Decimal(rng.randint(1, 500) * 10000), "currency": "CNY", "payment_days": rng.choice([30, 60, 90]),
            "doc_status": "C", "forbid_status": "A", "created_at": moment, "modified_at": moment,
        })
    _bulk(engine, erp_customer, rows)
    dealer_rows = []
    for i in range(dealers):
        company = fake.company()
        dealer_rows.append({
            "dealer_code": f"D{i + 1:05d}", "name": company.name, "tier": rng.choice(PARTNER_TIERS), "region": company.region,
            "city": company.city, "contact": fake.person(company.domain).name, "phone": company.phone,
            "rebate_rate": Decimal(rng.randint(1, 80)) / 1000,
        })
    _bulk(engine, erp_dealer, dealer_rows)
    order_rows, line_rows = [], []
    for i in range(orders if customers else 0):
        order_no = f"SO{i + 1:07d}"
        lines = [
            {"order_no": order_no, "line_no": n, "material_no": f"M{rng.randint(1, 500):05d}", "material_name": "服务器 Server",
             "qty": Decimal(rng.randint(1, 20)), "price": Decimal(rng.randint(100, 9000))}
            for n in range(1, rng.randint(1, 4) + 1)
        ]
        for line in lines:
            line["amount"] = line["qty"] * line["price"]
        line_rows += lines
        moment = start + timedelta(seconds=i)
        order_rows.append({
            "order_no": order_no, "crm_order_no": None, "cust_no": f"C{rng.randint(1, customers):06d}", "order_date": moment.date(),
            "status": "audited", "currency": "CNY", "total_amount": sum(x["amount"] for x in lines), "note": None,
            "modified_at": moment,
        })
    _bulk(engine, erp_sales_order, order_rows)
    _bulk(engine, erp_sales_order_line, line_rows)
    return SeedSummary(customers=customers, dealers=dealers, orders=len(order_rows))


def _bulk(engine: Engine, table: Table, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), chunk):
            conn.execute(insert(table), rows[start : start + chunk])


# -- the ERP import job simulator ------------------------------------------------
@dataclass(slots=True)
class ImportReport:
    accepted: int = 0
    rejected: int = 0
    messages: dict[str, str] = field(default_factory=dict)  # "table:key" → rejection message


def run_erp_import_job(engine: Engine, *, tz: str = TZ, chunk: int = 1000) -> ImportReport:
    """Process every PENDING interface row once, like the customer's ERP-side import job.

    Rows are locked while processed (SELECT … FOR UPDATE), so crmsync re-staging a row
    waits for the job to finish it; the status update is guarded by the op key anyway.
    """
    report = ImportReport()
    for table, handler in ((if_customer, _import_customers), (if_dealer, _import_dealers), (if_sales_order, _import_orders)):
        while True:
            with engine.begin() as conn:
                key = table.primary_key.columns.values()[0]
                stmt = select(table).where(table.c.sync_status == PENDING).order_by(key).limit(chunk)
                if engine.dialect.name != "sqlite":
                    stmt = stmt.with_for_update()
                rows = [dict(r) for r in conn.execute(stmt).mappings()]
                if not rows:
                    break
                now = local_now(tz)
                verdicts = handler(conn, rows, now)
                conn.execute(
                    update(table)
                    .where(key == bindparam("k_key"), table.c.crmsync_op_key == bindparam("k_op"))
                    .values(sync_status=bindparam("v_status"), sync_message=bindparam("v_message"),
                            processed_at=bindparam("v_at"), erp_id=bindparam("v_erp_id")),
                    [{"k_key": r[key.name], "k_op": r["crmsync_op_key"], "v_status": v[0], "v_message": v[1],
                      "v_at": now, "v_erp_id": v[2]} for r, v in zip(rows, verdicts, strict=True)],
                )
            for row, (status, message, _) in zip(rows, verdicts, strict=True):
                if status == DONE:
                    report.accepted += 1
                else:
                    report.rejected += 1
                    report.messages[f"{table.name}:{row[key.name]}"] = message
    return report


Verdict = tuple[str, str | None, str | None]  # status, message, erp id


def _reject(message: str) -> Verdict:
    return (ERROR, message, None)


def _import_customers(conn: Connection, rows: list[dict], now: datetime) -> list[Verdict]:
    c = erp_customer.c
    crm_ids = [r["crm_id"] for r in rows]
    names = [r["name"] for r in rows if r["name"]]
    by_crm = {r.crm_id: r.cust_no for r in conn.execute(select(c.crm_id, c.cust_no).where(c.crm_id.in_(crm_ids)))}
    given = [r["cust_no"] for r in rows if r["cust_no"]]
    existing = set(conn.execute(select(c.cust_no).where(c.cust_no.in_(given))).scalars()) if given else set()
    by_name = {}
    if names:
        found = conn.execute(select(c.name, c.cust_no, c.crm_id).where(c.name.in_(names)))
        by_name = {r.name: (r.cust_no, r.crm_id) for r in found}
    last = conn.execute(select(func.max(c.cust_no)).where(c.cust_no.like("C%"))).scalar() or "C000000"
    next_no = int(last[1:]) + 1
    fields = ("name", "short_name", "tax_no", "city", "address", "phone", "contact", "salesperson", "payment_days")
    verdicts: list[Verdict] = []
    new_customers: list[dict] = []
    for row in rows:
        if row["sync_action"] == "delete":
            verdicts.append(_reject("客户资料不允许删除，请在ERP中禁用 / customers cannot be deleted; disable them in the ERP"))
            continue
        if row["cust_no"] and row["cust_no"] not in existing:
            verdicts.append(_reject(f"客户编码不存在：{row['cust_no']} / customer {row['cust_no']} does not exist"))
            continue
        cust_no = row["cust_no"] or by_crm.get(row["crm_id"])
        if not (row["name"] or "").strip() and not cust_no:
            verdicts.append(_reject("客户名称不能为空 / customer name is required"))
            continue
        if row["tax_no"] and not is_valid_uscc(row["tax_no"]):
            verdicts.append(_reject(f"统一社会信用代码校验失败：{row['tax_no']} / invalid unified social credit code"))
            continue
        clash = by_name.get(row["name"])
        if clash and clash[0] != cust_no:
            verdicts.append(_reject(f"客户名称已存在（{clash[0]}）/ customer name already exists ({clash[0]})"))
            continue
        values = {f: row[f] for f in fields if row[f] is not None}
        if cust_no:
            values.update(crm_id=row["crm_id"], modified_at=now)
            conn.execute(update(erp_customer).where(c.cust_no == cust_no).values(values))
        else:
            cust_no = f"C{next_no:06d}"
            next_no += 1
            new_customers.append({f: None for f in fields} | values | {
                "cust_no": cust_no, "crm_id": row["crm_id"], "created_at": now, "modified_at": now, "credit_limit": Decimal("0"),
            })
        by_crm[row["crm_id"]] = cust_no
        if row["name"]:
            by_name[row["name"]] = (cust_no, row["crm_id"])
        verdicts.append((DONE, None, cust_no))
    if new_customers:
        conn.execute(insert(erp_customer), new_customers)
    return verdicts


def _import_dealers(conn: Connection, rows: list[dict], now: datetime) -> list[Verdict]:
    c = erp_dealer.c
    known = set(conn.execute(select(c.dealer_code).where(c.dealer_code.in_([r["dealer_code"] for r in rows]))).scalars())
    verdicts: list[Verdict] = []
    for row in rows:
        if row["tier"] is not None and row["tier"] not in PARTNER_TIERS:
            verdicts.append(_reject(f"经销商等级无效：{row['tier']} / invalid dealer tier"))
            continue
        values = {f: row[f] for f in ("name", "tier", "region", "city", "contact", "phone") if row[f] is not None}
        if row["dealer_code"] in known:
            conn.execute(update(erp_dealer).where(c.dealer_code == row["dealer_code"]).values(values))
        elif not values.get("name") or not values.get("tier"):
            verdicts.append(_reject("经销商名称和等级不能为空 / dealer name and tier are required"))
            continue
        else:
            conn.execute(insert(erp_dealer).values(dealer_code=row["dealer_code"], **values))
            known.add(row["dealer_code"])
        verdicts.append((DONE, None, row["dealer_code"]))
    return verdicts


def _import_orders(conn: Connection, rows: list[dict], now: datetime) -> list[Verdict]:
    lines_t, so = if_sales_order_line.c, erp_sales_order.c
    verdicts: list[Verdict] = []
    last = conn.execute(select(func.max(so.order_no)).where(so.order_no.like("SO%"))).scalar() or "SO0000000"
    next_no = int(last[2:]) + 1
    for row in rows:
        lines = conn.execute(
            select(if_sales_order_line)
            .where(lines_t.crm_order_no == row["crm_order_no"], lines_t.crmsync_op_key == row["crmsync_op_key"])
            .order_by(lines_t.line_no)
        ).mappings().all()
        exists = row["cust_no"] and conn.execute(
            select(erp_customer.c.cust_no).where(erp_customer.c.cust_no == row["cust_no"])
        ).first()
        if not exists:
            verdicts.append(_reject(f"客户编码不存在：{row['cust_no']} / customer {row['cust_no']} does not exist"))
            continue
        if not lines:
            verdicts.append(_reject("销售订单没有明细行 / the sales order has no lines"))
            continue
        if any(not line["material_no"] for line in lines):
            verdicts.append(_reject("物料编码不能为空 / every line needs a material number"))
            continue
        order_no = conn.execute(select(so.order_no).where(so.crm_order_no == row["crm_order_no"])).scalar()
        amounts = [Decimal(line["qty"]) * Decimal(line["price"]) for line in lines]
        header = {"cust_no": row["cust_no"], "order_date": row["order_date"] or now.date(), "status": "audited",
                  "currency": row["currency"] or "CNY", "total_amount": sum(amounts), "note": row["note"], "modified_at": now}
        if order_no:
            conn.execute(erp_sales_order_line.delete().where(erp_sales_order_line.c.order_no == order_no))
            conn.execute(update(erp_sales_order).where(so.order_no == order_no).values(header))
        else:
            order_no = f"SO{next_no:07d}"
            next_no += 1
            conn.execute(insert(erp_sales_order).values(order_no=order_no, crm_order_no=row["crm_order_no"], **header))
        conn.execute(insert(erp_sales_order_line), [
            {"order_no": order_no, "line_no": line["line_no"], "material_no": line["material_no"], "material_name": None,
             "qty": line["qty"], "price": line["price"], "amount": amount}
            for line, amount in zip(lines, amounts, strict=True)
        ])
        verdicts.append((DONE, None, order_no))
    return verdicts


def touch(engine: Engine, table: Table, keys: list[str], at: datetime) -> None:
    """ERP-side edit: set the modified time of some rows (tests and the demo)."""
    key = table.primary_key.columns.values()[0]
    with engine.begin() as conn:
        conn.execute(update(table).where(key.in_(keys)).values(modified_at=at))


__all__ = [
    "create_demo_schema", "drop_demo_schema", "demo_settings", "seed_demo", "run_erp_import_job", "touch", "local_now",
    "ImportReport", "SeedSummary",
]
