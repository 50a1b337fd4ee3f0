"""The emulated org's metadata: modules, fields and users.

Standard fields follow Zoho's Accounts/Contacts/Deals/Vendors layouts (API names,
data types, lengths, system-mandatory and duplicate-check fields as documented);
custom fields are what a Chinese channel-sales company adds. Accounts has more than
50 fields on purpose, as real orgs do, so a pull of all fields needs two calls per page.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ORG_PREFIX = "5725767"

#: data_type -> json_type, as /settings/fields reports them.
JSON_TYPES = {
    "text": "string", "textarea": "string", "email": "string", "phone": "string", "website": "string",
    "picklist": "string", "date": "string", "datetime": "string", "autonumber": "string", "bigint": "string",
    "integer": "integer", "double": "double", "currency": "double", "percent": "double", "boolean": "boolean",
    "multiselectpicklist": "jsonarray", "lookup": "jsonobject", "ownerlookup": "jsonobject",
    "userlookup": "jsonobject", "profileimage": "string", "tag": "jsonarray", "subform": "jsonarray",
}
DEFAULT_LENGTH = {"text": 255, "textarea": 32000, "email": 100, "phone": 30, "website": 255, "picklist": 120,
                  "integer": 9, "bigint": 18, "double": 16, "currency": 16, "percent": 5, "date": 20, "datetime": 120,
                  "lookup": 120, "ownerlookup": 120, "userlookup": 120, "boolean": 5, "multiselectpicklist": 2000,
                  "profileimage": 255, "tag": 2000}
#: System fields the API never writes.
READ_ONLY = {"Created_Time", "Modified_Time", "Created_By", "Modified_By", "Last_Activity_Time", "Full_Name",
             "Expected_Revenue", "Locked__s", "Record_Image"}


@dataclass(slots=True)
class FieldDef:
    api_name: str
    data_type: str
    label: str = ""
    length: int | None = None
    mandatory: bool = False
    unique: bool = False  # duplicate-checked on every insert/update
    read_only: bool = False
    picklist: list[str] | None = None
    lookup: str | None = None
    custom: bool = False
    decimal_place: int | None = None
    id: str = ""

    @property
    def json_type(self) -> str:
        return JSON_TYPES.get(self.data_type, "string")

    def metadata(self, module_id: str, module_ids: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "api_name": self.api_name,
            "id": self.id,
            "display_label": self.label,
            "field_label": self.label,
            "data_type": self.data_type,
            "json_type": self.json_type,
            "length": self.length,
            "decimal_place": self.decimal_place,
            "system_mandatory": self.mandatory,
            "read_only": self.read_only,
            "field_read_only": self.read_only,
            "custom_field": self.custom,
            "visible": True,
            "unique": {"casesensitive": False} if self.unique else {},
            "pick_list_values": [
                {"display_value": v, "actual_value": v, "sequence_number": i + 1, "id": f"{self.id[:-3]}{i + 101:03d}"}
                for i, v in enumerate(self.picklist or [])
            ],
            "lookup": {},
            "auto_number": {"prefix": "", "suffix": ""},
            "api_supported": True,
        }
        if self.data_type == "picklist":
            meta["pick_list_values"].insert(0, {"display_value": "-None-", "actual_value": "-None-", "sequence_number": 0,
                                                 "id": f"{self.id[:-3]}100"})
        if self.lookup:
            meta["lookup"] = {"module": {"api_name": self.lookup, "id": module_ids.get(self.lookup, "")},
                              "display_label": self.label, "api_name": self.api_name}
        return meta


@dataclass(slots=True)
class ModuleDef:
    api_name: str
    module_name: str
    singular: str
    plural: str
    primary: str  # the record's name field: display_name in deleted lists, lookup names
    fields: list[FieldDef] = field(default_factory=list)
    custom: bool = False
    duplicate_check: list[str] = field(default_factory=list)
    id: str = ""
    by_name: dict[str, FieldDef] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name = {f.api_name: f for f in self.fields}

    def metadata(self) -> dict[str, Any]:
        return {
            "api_name": self.api_name,
            "module_name": self.module_name,
            "id": self.id,
            "singular_label": self.singular,
            "plural_label": self.plural,
            "generated_type": "custom" if self.custom else "default",
            "api_supported": True,
            "creatable": True,
            "editable": True,
            "deletable": True,
            "viewable": True,
            "visible": True,
            "convertable": False,
            "status": "visible",
            "sequence_number": 0,
            "business_card_field_limit": 5,
            "profiles": [{"name": "Administrator", "id": f"{ORG_PREFIX}000000026011"}],
            "modified_time": None,
            "modified_by": None,
        }


def _f(api_name: str, data_type: str, label: str | None = None, **kw: Any) -> FieldDef:
    return FieldDef(api_name, data_type, label or api_name.replace("_", " "), **kw)


INDUSTRIES = ["ASP", "Data/Telecom OEM", "ERP", "Government/Military", "Large Enterprise", "Management ISV", "MSP",
              "Network Equipment", "Non-management ISV", "Optical Networking", "Service Provider",
              "Small/Medium Enterprise", "Storage Equipment", "Systems Integrator", "Wireless Industry",
              "Manufacturing", "Technology", "Healthcare", "Logistics", "Energy", "Retail"]
ACCOUNT_TYPES = ["Analyst", "Competitor", "Customer", "Distributor", "Integrator", "Investor", "Partner", "Press",
                 "Prospect", "Reseller", "Supplier", "Vendor", "Other"]
REGIONS = ["华南", "华东", "华北", "华中", "西南", "西北", "东北", "Overseas"]
DEAL_STAGES = [("Qualification", 10), ("Needs Analysis", 20), ("Value Proposition", 40), ("Id. Decision Makers", 60),
               ("Perception Analysis", 70), ("Proposal/Price Quote", 75), ("Negotiation/Review", 90),
               ("Closed Won", 100), ("Closed Lost", 0), ("Closed Lost to Competition", 0)]
LEAD_SOURCES = ["Advertisement", "Cold Call", "Employee Referral", "External Referral", "Online Store", "Partner",
                "Public Relations", "Sales Email Alias", "Seminar Partner", "Internal Seminar", "Trade Show",
                "Web Download", "Web Research", "Chat", "WeChat"]
PARTNER_TIERS = ["Platinum", "Gold", "Silver", "Registered"]
#: Keys of one line of an inventory module's line-item subform (Ordered_Items of Sales_Orders), as the
#: API returns them; Product_Name is a lookup {name, id} of Products.
LINE_ITEM_FIELDS = ("id", "Product_Name", "Quantity", "List_Price", "Discount", "Total", "Total_After_Discount",
                    "Net_Total", "Tax", "Line_Tax", "Description", "Sequence_Number")


def _address(prefix: str, zip_name: str = "Code") -> list[FieldDef]:
    return [_f(f"{prefix}_Street", "text", length=250), _f(f"{prefix}_City", "text", length=30),
            _f(f"{prefix}_State", "text", length=30), _f(f"{prefix}_{zip_name}", "text", length=30),
            _f(f"{prefix}_Country", "text", length=30)]


def _system() -> list[FieldDef]:
    return [_f("Owner", "ownerlookup", "Account Owner"), _f("Created_By", "ownerlookup", read_only=True),
            _f("Modified_By", "ownerlookup", read_only=True), _f("Created_Time", "datetime", read_only=True),
            _f("Modified_Time", "datetime", read_only=True), _f("Last_Activity_Time", "datetime", read_only=True),
            _f("Tag", "tag"), _f("Locked__s", "boolean", "Locked", read_only=True)]


def build_modules() -> dict[str, ModuleDef]:
    accounts = ModuleDef("Accounts", "Accounts", "Account", "Accounts", "Account_Name", duplicate_check=["Account_Name"], fields=[
        *_system(),
        _f("Account_Name", "text", length=200, mandatory=True, unique=True),
        _f("Account_Number", "text", length=40), _f("Account_Site", "text", length=30),
        _f("Parent_Account", "lookup", lookup="Accounts"),
        _f("Account_Type", "picklist", picklist=ACCOUNT_TYPES), _f("Industry", "picklist", picklist=INDUSTRIES),
        _f("Annual_Revenue", "currency", decimal_place=2), _f("Employees", "integer"),
        _f("Ownership", "picklist", picklist=["Public", "Private", "Subsidiary", "Partnership", "Government", "Other"]),
        _f("Rating", "picklist", picklist=["Acquired", "Active", "Market Failed", "Project Cancelled", "Shut Down"]),
        _f("Phone", "phone"), _f("Fax", "phone"), _f("Website", "website"), _f("Ticker_Symbol", "text", length=30),
        _f("SIC_Code", "integer"), *_address("Billing"), *_address("Shipping"),
        _f("Description", "textarea"), _f("Record_Image", "profileimage", read_only=True),
        # Custom fields of a channel-sales company in China.
        _f("Unified_Social_Credit_Code", "text", "统一社会信用代码", length=18, unique=True, custom=True),
        _f("Account_Name_EN", "text", "English Name", length=255, custom=True),
        _f("Region", "picklist", "Sales Region", picklist=REGIONS, custom=True),
        _f("Partner", "lookup", "Channel Partner", lookup="Partners", custom=True),
        _f("Customer_Level", "picklist", picklist=["A", "B", "C", "D"], custom=True),
        _f("Credit_Limit", "currency", decimal_place=2, custom=True),
        _f("ERP_Customer_Code", "text", length=50, custom=True),
        _f("Fxiaoke_ID", "text", length=64, custom=True),
        _f("Payment_Terms", "picklist", picklist=["Prepaid", "Net 30", "Net 60", "Net 90", "月结30天", "月结60天"], custom=True),
        _f("Tax_Rate", "percent", decimal_place=2, custom=True),
        _f("Invoice_Title", "text", "发票抬头", length=200, custom=True),
        _f("Bank_Name", "text", "开户行", length=100, custom=True),
        _f("Bank_Account", "text", "银行账号", length=40, custom=True),
        _f("Key_Account", "boolean", custom=True),
        _f("Contract_Start_Date", "date", custom=True),
        _f("Contract_End_Date", "date", custom=True),
        _f("Product_Lines", "multiselectpicklist", picklist=["ERP", "CRM", "Hardware", "Services", "Cloud"], custom=True),
        _f("Last_Synced_Time", "datetime", custom=True),
    ])
    contacts = ModuleDef("Contacts", "Contacts", "Contact", "Contacts", "Full_Name", duplicate_check=["Email"], fields=[
        *_system(),
        _f("First_Name", "text", length=40), _f("Last_Name", "text", length=80, mandatory=True),
        _f("Full_Name", "text", length=120, read_only=True),
        _f("Salutation", "picklist", picklist=["Mr.", "Mrs.", "Ms.", "Dr.", "Prof."]),
        _f("Account_Name", "lookup", lookup="Accounts"), _f("Vendor_Name", "lookup", lookup="Vendors"),
        _f("Email", "email"), _f("Secondary_Email", "email"), _f("Phone", "phone"), _f("Mobile", "phone"),
        _f("Title", "text", length=100), _f("Department", "text", length=30),
        _f("Lead_Source", "picklist", picklist=LEAD_SOURCES), _f("Date_of_Birth", "date"),
        _f("Email_Opt_Out", "boolean"), *_address("Mailing", "Zip"), _f("Description", "textarea"),
        _f("WeChat_ID", "text", "微信号", length=64, custom=True), _f("Fxiaoke_ID", "text", length=64, custom=True),
    ])
    deals = ModuleDef("Deals", "Deals", "Deal", "Deals", "Deal_Name", duplicate_check=["Deal_Name"], fields=[
        *_system(),
        _f("Deal_Name", "text", length=120, mandatory=True, unique=True),
        _f("Account_Name", "lookup", lookup="Accounts"), _f("Contact_Name", "lookup", lookup="Contacts"),
        _f("Amount", "currency", decimal_place=2), _f("Closing_Date", "date"),
        _f("Stage", "picklist", picklist=[s for s, _ in DEAL_STAGES], mandatory=True),
        _f("Pipeline", "picklist", picklist=["Standard (Standard)", "Channel Sales"]),
        _f("Probability", "integer", "Probability (%)", length=3),
        _f("Expected_Revenue", "currency", read_only=True, decimal_place=2),
        _f("Type", "picklist", picklist=["New Business", "Existing Business"]),
        _f("Lead_Source", "picklist", picklist=LEAD_SOURCES), _f("Next_Step", "text", length=100),
        _f("Description", "textarea"),
        _f("Partner", "lookup", "Channel Partner", lookup="Partners", custom=True),
        _f("Fxiaoke_ID", "text", length=64, custom=True), _f("ERP_Order_No", "text", length=50, custom=True),
        _f("ERP_Order_Status", "picklist", picklist=["Created", "Approved", "Delivered", "Cancelled"], custom=True),
        _f("ERP_Order_Amount", "currency", decimal_place=2, custom=True),
    ])
    vendors = ModuleDef("Vendors", "Vendors", "Vendor", "Vendors", "Vendor_Name", duplicate_check=["Vendor_Name"], fields=[
        *_system(),
        _f("Vendor_Name", "text", length=120, mandatory=True, unique=True),
        _f("Email", "email"), _f("Phone", "phone"), _f("Website", "website"),
        _f("GL_Account", "picklist", picklist=["Sales-Hardware", "Sales-Software", "Rental-Income", "Interest-Income"]),
        _f("Category", "text", length=40), _f("Street", "text", length=250), _f("City", "text", length=30),
        _f("State", "text", length=30), _f("Zip_Code", "text", length=30), _f("Country", "text", length=30),
        _f("Description", "textarea"),
        _f("Unified_Social_Credit_Code", "text", "统一社会信用代码", length=18, unique=True, custom=True),
        _f("ERP_Supplier_Code", "text", length=50, custom=True),
    ])
    partners = ModuleDef("Partners", "CustomModule1", "Partner", "Partners", "Name", custom=True, duplicate_check=["Name"], fields=[
        *_system(),
        _f("Name", "text", "Partner Name", length=120, mandatory=True, unique=True),
        _f("Email", "email"), _f("Phone", "phone"), _f("Website", "website"),
        _f("Partner_Tier", "picklist", picklist=PARTNER_TIERS, custom=True),
        _f("Region", "picklist", "Sales Region", picklist=REGIONS, custom=True),
        _f("Unified_Social_Credit_Code", "text", "统一社会信用代码", length=18, unique=True, custom=True),
        _f("Partner_Since", "date", custom=True), _f("Active", "boolean", custom=True),
        _f("Annual_Target", "currency", decimal_place=2, custom=True),
        _f("Fxiaoke_ID", "text", length=64, custom=True), _f("ERP_Code", "text", length=50, custom=True),
    ])
    products = ModuleDef("Products", "Products", "Product", "Products", "Product_Name", duplicate_check=["Product_Name"], fields=[
        *_system(),
        _f("Product_Name", "text", length=200, mandatory=True, unique=True),
        _f("Product_Code", "text", length=40), _f("Product_Active", "boolean"),
        _f("Product_Category", "picklist", picklist=["Hardware", "Software", "Services", "Spare Parts"]),
        _f("Manufacturer", "picklist", picklist=["AltvetPet Inc.", "LexPro Inc.", "MetBeat Corp."]),
        _f("Vendor_Name", "lookup", lookup="Vendors"), _f("Unit_Price", "currency", decimal_place=2),
        _f("Usage_Unit", "picklist", picklist=["Box", "Carton", "Dozen", "Each", "Hours", "Lb", "M", "Pack", "Pages",
                                               "Pieces", "Quantity", "Reams", "Sheet", "Spiral Binder", "Sq Ft"]),
        _f("Qty_in_Stock", "double", decimal_place=2), _f("Description", "textarea"),
        _f("ERP_Material_No", "text", "物料编码", length=50, custom=True),
    ])
    # Inventory module: line items live in the Ordered_Items subform; Zoho computes the totals.
    sales_orders = ModuleDef("Sales_Orders", "SalesOrders", "Sales Order", "Sales Orders", "Subject", fields=[
        *_system(),
        _f("Subject", "text", length=250, mandatory=True), _f("SO_Number", "autonumber", "SO Number", read_only=True),
        _f("Account_Name", "lookup", lookup="Accounts"), _f("Deal_Name", "lookup", lookup="Deals"),
        _f("Contact_Name", "lookup", lookup="Contacts"), _f("Purchase_Order", "text", length=100),
        _f("Customer_No", "text", length=100), _f("Due_Date", "date"),
        _f("Status", "picklist", picklist=["Created", "Approved", "Delivered", "Cancelled"]),
        _f("Carrier", "picklist", picklist=["FedEX", "UPS", "USPS", "DHL", "BlueDart", "顺丰速运"]),
        _f("Sales_Commission", "currency", decimal_place=2), _f("Excise_Duty", "currency", decimal_place=2),
        _f("Currency", "picklist", picklist=["CNY", "USD", "HKD", "EUR"]),
        _f("Exchange_Rate", "double", decimal_place=9),
        _f("Ordered_Items", "subform", "Ordered Items"),
        _f("Sub_Total", "currency", read_only=True, decimal_place=2), _f("Discount", "currency", decimal_place=2),
        _f("Tax", "currency", read_only=True, decimal_place=2), _f("Adjustment", "currency", decimal_place=2),
        _f("Grand_Total", "currency", read_only=True, decimal_place=2),
        *_address("Billing"), *_address("Shipping"),
        _f("Terms_and_Conditions", "textarea"), _f("Description", "textarea"),
        # Custom fields of a channel-sales company: the booking date and dealer from the ERP order.
        _f("Order_Date", "date", "下单日期", custom=True),
        _f("Partner", "lookup", "Channel Partner", lookup="Partners", custom=True),
        _f("ERP_Order_No", "text", "ERP 单据编号", length=50, custom=True),
    ])
    modules = {m.api_name: m for m in (accounts, contacts, deals, vendors, partners, products, sales_orders)}
    for mi, module in enumerate(modules.values()):
        module.id = f"{ORG_PREFIX}{2175 + mi * 2:012d}"
        for fi, f in enumerate(module.fields):
            f.length = f.length if f.length is not None else DEFAULT_LENGTH.get(f.data_type)
            f.read_only = f.read_only or f.api_name in READ_ONLY
            f.id = f"{ORG_PREFIX}{(mi + 1) * 100000 + fi * 1000 + 1:012d}"
            if f.api_name == "Owner":
                f.label = f"{module.singular} Owner"
        module.by_name = {f.api_name: f for f in module.fields}
    return modules


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    email: str

    def lookup(self) -> dict[str, str]:
        return {"name": self.name, "id": self.id, "email": self.email}


USERS = [
    User(f"{ORG_PREFIX}000000411001", "Patricia Boyle", "patricia.boyle@zylker.example.com"),  # the API user
    User(f"{ORG_PREFIX}000000411013", "王芳", "wang.fang@zylker.example.cn"),
    User(f"{ORG_PREFIX}000000411025", "李伟", "li.wei@zylker.example.cn"),
    User(f"{ORG_PREFIX}000000411037", "Emma Chen", "emma.chen@zylker.example.com"),
]
API_USER = USERS[0]
UI_USER = USERS[1]  # who "edits as a user" through /_admin
