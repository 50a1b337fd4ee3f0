"""``systems.<name>`` settings of a Kingdee K/3 Cloud system (validated, with documented defaults).

An *object* is what the sync engine names (``customer``, ``sales_order``,
``dealer``); each maps to a K/3 Cloud form (``BD_Customer``, ``SAL_SaleOrder``,
a custom dealer form, or ``BD_Customer`` again narrowed by a filter), with the
field keys to read and how to write it. Forms crmsync knows get sensible
field lists when none are given (see :mod:`connectors.kingdee.forms`).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .forms import known_form
from .localtime import zone
from .protocol import LCIDS, QUERY_LIMIT_MAX

OrgRole = Literal["create_org", "use_org", "sale_org"]


class EntrySettings(BaseModel):
    """One entry (分录) table of a form, e.g. ``FSaleOrderEntry`` of a sales order."""

    model_config = ConfigDict(extra="forbid")

    fields: list[str] = Field(
        default_factory=list,
        description="Field keys of the entry to read (ExecuteBillQuery FieldKeys), e.g. FMaterialId.FNumber, FQty, "
        "FTaxPrice. Dotted .FNumber keys are written back as base-data references {\"FNumber\": …}.",
    )
    id_field: str | None = Field(
        None,
        description="Query key of the entry row id; default '<entry>_FEntryId' (e.g. FSaleOrderEntry_FEntryId).",
    )
    model_id_field: str = Field("FEntryID", description="Key of the entry row id inside a Save model.")
    labels: dict[str, str] = Field(default_factory=dict, description="Display labels for entry fields (discovery).")

    def query_id(self, entry_key: str) -> str:
        return self.id_field or f"{entry_key}_FEntryId"


class FormSettings(BaseModel):
    """How one engine object maps to a K/3 Cloud form."""

    model_config = ConfigDict(extra="forbid")

    form_id: str = Field(..., min_length=1, description="K/3 Cloud form id (FormId), e.g. BD_Customer, SAL_SaleOrder.")
    label: str = Field("", description="Display name for discovery; defaults to the form's known name.")
    id_field: str | None = Field(
        None, description="Primary key field (FCUSTID for BD_Customer, FID for bills and custom forms)."
    )
    number_field: str | None = Field(
        None, description="Business number field: FNumber for base data, FBillNo for bills."
    )
    fields: list[str] = Field(
        default_factory=list,
        description="Header field keys to read. The id, number and watermark fields are always added. "
        "Empty = the known default list for this form.",
    )
    entries: dict[str, EntrySettings] = Field(
        default_factory=dict,
        description="Entry tables read with the header and written as lists (e.g. FSaleOrderEntry).",
    )
    sub_entities: dict[str, list[str]] = Field(
        default_factory=dict,
        description="One-to-one sub-entities whose fields are flat in queries but nested in Save models, "
        "e.g. {FSaleOrderFinance: [FSettleCurrId, FIsIncludedTax]}.",
    )
    filter: str | None = Field(
        None,
        description="Extra FilterString ANDed into every query, e.g. \"FGroup.FNumber = '02'\" for dealers kept "
        "as a customer group, or \"FForbidStatus = 'A'\".",
    )
    write_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Values added to every new record (unless the record sets them), e.g. {FGroup: {FNumber: '02'}}.",
    )
    org_fields: dict[str, OrgRole] | None = Field(
        None,
        description="Organisation fields added to new records, mapped to the organisation setting they take "
        "(e.g. {FCreateOrgId: create_org, FUseOrgId: use_org}). Default: by form kind.",
    )
    watermark_fields: list[str] = Field(
        default_factory=lambda: ["FModifyDate"],
        description="Date fields an incremental pull scans, in order (each with '>=' the cursor). Add FApproveDate "
        "when audits do not move FModifyDate on your server, so status changes are seen.",
    )
    read_only_fields: list[str] = Field(
        default_factory=lambda: ["FModifyDate", "FCreateDate", "FApproveDate", "FDocumentStatus", "FForbidStatus",
                                 "FCloseStatus"],
        description="Fields never sent in Save models (system-maintained).",
    )
    match_field: str | None = Field(
        None,
        description="Field that identifies an existing record when upserting without match_fields, and when "
        "checking whether a create whose answer was lost went through. Default: the number field.",
    )
    submit: bool = Field(False, description="Submit (提交) records after saving them.")
    audit: bool = Field(False, description="Audit (审核) records after submitting them (implies submit).")
    unaudit_before_update: bool = Field(
        False, description="UnAudit (反审核) records before updating them; needed where audited records cannot be saved."
    )
    unaudit_before_delete: bool = Field(False, description="UnAudit records before deleting them.")
    replace_entries: bool = Field(
        False,
        description="On update, delete entry rows the record no longer lists (IsDeleteEntry true). Default false: "
        "a partial update never removes lines.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Display labels for header fields (discovery).")

    @model_validator(mode="after")
    def _fill_known_form(self) -> FormSettings:
        known = known_form(self.form_id)
        if self.id_field is None:
            self.id_field = known.id_field if known else "FID"
        if self.number_field is None:
            self.number_field = known.number_field if known else "FNumber"
        if not self.label:
            self.label = known.label if known else self.form_id
        if not self.fields and known:
            self.fields = list(known.fields)
        if not self.entries and known:
            self.entries = {key: EntrySettings(fields=list(fields)) for key, fields in known.entries.items()}
        if not self.sub_entities and known:
            self.sub_entities = {key: list(fields) for key, fields in known.sub_entities.items()}
        if self.org_fields is None:
            self.org_fields = dict(known.org_fields) if known else {"FCreateOrgId": "create_org", "FUseOrgId": "use_org"}
        if known and "read_only_fields" not in self.model_fields_set:
            self.read_only_fields = [*self.read_only_fields, *known.computed_fields]
        if known and "watermark_fields" not in self.model_fields_set:
            self.watermark_fields = list(known.watermark_fields)
        if not self.watermark_fields:
            raise ValueError("watermark_fields needs at least one date field (FModifyDate)")
        if self.audit:
            self.submit = True
        return self


class OrganisationSettings(BaseModel):
    """Organisation numbers (组织编码) written into new records' organisation fields."""

    model_config = ConfigDict(extra="forbid")

    create_org: str = Field("100", description="FCreateOrgId number (创建组织).")
    use_org: str = Field("100", description="FUseOrgId number (使用组织).")
    sale_org: str = Field("100", description="FSaleOrgId number of sales orders (销售组织).")


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(6, ge=1, le=20, description="Tries per call for transient failures (5xx, network, MsgCode 14).")
    base_seconds: float = Field(0.5, ge=0, description="First backoff step; doubles per try, full jitter.")
    cap_seconds: float = Field(30.0, ge=0, description="Longest single backoff.")
    total_seconds: float = Field(300.0, ge=0, description="Give up retrying a call after this long.")


def _default_objects() -> dict[str, FormSettings]:
    return {"customer": FormSettings(form_id="BD_Customer"), "sales_order": FormSettings(form_id="SAL_SaleOrder")}


class KingdeeSettings(BaseModel):
    """A Kingdee K/3 Cloud (金蝶云星空) data centre reached through its WebAPI."""

    model_config = ConfigDict(extra="forbid")

    server_url: str = Field(
        ...,
        description="Site URL, e.g. https://erp.example.com/ or https://xxx.ik3cloud.com/k3cloud/. "
        "'K3Cloud/' is appended unless the URL already ends with it.",
    )
    acct_id: str = Field(..., min_length=1, description="Data centre id (数据中心 ID / acctID).")
    username: str = Field(..., min_length=1, description="Integration user name.")
    auth: Literal["password", "app_secret"] = Field(
        "app_secret",
        description="password = AuthService.ValidateUser; app_secret = AuthService.LoginByAppSecret "
        "(third-party system login authorisation, 第三方系统登录授权).",
    )
    password: SecretStr | None = Field(None, description="Password of the user (auth: password).")
    app_id: str | None = Field(None, description="AppID of the third-party authorisation (auth: app_secret).")
    app_secret: SecretStr | None = Field(None, description="AppSecret of the third-party authorisation (auth: app_secret).")
    lcid: int = Field(2052, description="Language: 2052 zh-CN, 3076 zh-TW, 1033 en.")
    login_parameters: Literal["positional", "named"] = Field(
        "positional",
        description="Login body style: positional {parameters: [acctId, user, secret, lcid]} or, for ValidateUser "
        "only, named {acctID, username, password, lcid}. Both appear in public clients.",
    )
    timezone: str = Field("Asia/Shanghai", description="Time zone of the ERP server's local times (FModifyDate).")
    organisation: OrganisationSettings = Field(
        default_factory=OrganisationSettings, description="Organisation numbers for new records."
    )
    objects: dict[str, FormSettings] = Field(
        default_factory=_default_objects,
        description="Engine object name -> form. Default: customer (BD_Customer) and sales_order (SAL_SaleOrder).",
    )
    page_size: int = Field(
        2000, ge=1, le=QUERY_LIMIT_MAX, description="ExecuteBillQuery Limit per page (documented maximum 10000)."
    )
    write_batch: int = Field(100, ge=1, le=1000, description="Models per BatchSave call.")
    fetch_batch: int = Field(500, ge=1, le=2000, description="Ids per 'IN (…)' filter when fetching by id.")
    concurrency: int = Field(4, ge=1, le=32, description="Calls in flight at once.")
    max_calls_per_minute: int | None = Field(
        None, ge=1, description="Client-side call budget shared by all work on this system (none by default)."
    )
    timeout_seconds: float = Field(120.0, gt=0, description="Per-call timeout (the official SDK uses 120 s).")
    overlap_seconds: float = Field(
        60.0,
        ge=0,
        description="Extra look-back on FModifyDate for incremental pulls, on top of the engine's: the ERP stamps "
        "FModifyDate when a save starts, but the row becomes visible at commit.",
    )
    datetime_literal: Literal["quoted", "odbc"] = Field(
        "quoted",
        description="How date filters are written: quoted FModifyDate >= '2024-01-01 00:00:00' or odbc {ts'…'}.",
    )
    verify_base_data: bool = Field(
        True,
        description="Send IsVerifyBaseDataField: an unknown {FNumber} reference fails the record instead of "
        "being silently blanked.",
    )
    describe_from_business_info: bool = Field(
        True,
        description="Ask QueryBusinessInfo for field labels and required flags during discovery (its answer shape "
        "is not documented; on any surprise discovery falls back to the configured field keys).",
    )
    session_lost_messages: list[str] = Field(
        default_factory=lambda: ["会话信息已丢失"],
        description="Messages that mean the login session is gone (besides MsgCode 1): log in again and retry once.",
    )
    transient_msg_codes: list[int] = Field(
        default_factory=lambda: [6, 13],
        description="MsgCodes retried as transient (database failure, network-control conflict). "
        "Classification is an inference, not documented.",
    )
    rate_limit_msg_codes: list[int] = Field(
        default_factory=lambda: [14], description="MsgCodes meaning 'call limit' (调用限制): back off and retry."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings, description="Backoff for transient failures.")

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("server_url must start with http:// or https://")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("lcid")
    @classmethod
    def _lcid(cls, value: int) -> int:
        if value not in LCIDS:
            raise ValueError(f"lcid must be one of {LCIDS}")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> KingdeeSettings:
        if self.auth == "password" and not self.password:
            raise ValueError("auth 'password' needs password")
        if self.auth == "app_secret" and (not self.app_id or not self.app_secret):
            raise ValueError("auth 'app_secret' needs app_id and app_secret")
        if not self.objects:
            raise ValueError("objects must name at least one form")
        return self

    @property
    def site_url(self) -> str:
        """Base URL that stub paths are appended to (always ends with '/K3Cloud/' or the user's own casing)."""
        url = self.server_url.rstrip("/")
        if url.lower().endswith("/k3cloud"):
            return url + "/"
        return url + "/K3Cloud/"

    def org_number(self, role: OrgRole) -> str:
        return getattr(self.organisation, role)
