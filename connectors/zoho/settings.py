"""Settings of a Zoho CRM system (``systems.<name>`` with ``type: zoho``).

Every host is derived from ``data_center`` + ``environment`` and can be overridden
(``accounts_url`` for the token endpoint, ``api_domain`` for the REST API), so the
same settings serve a real org, a proxy and the local emulator.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DataCenter = Literal["us", "eu", "in", "au", "jp", "cn", "ca", "sa"]
Environment = Literal["production", "sandbox", "developer"]

#: Accounts (token) host and production API host per data center (Zoho SDK v8 ``dc/*_data_center.py``).
DATA_CENTERS: dict[str, tuple[str, str]] = {
    "us": ("https://accounts.zoho.com", "www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "www.zohoapis.in"),
    "au": ("https://accounts.zoho.com.au", "www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "www.zohoapis.jp"),
    "cn": ("https://accounts.zoho.com.cn", "www.zohoapis.com.cn"),
    "ca": ("https://accounts.zohocloud.ca", "www.zohoapis.ca"),
    "sa": ("https://accounts.zoho.sa", "www.zohoapis.sa"),
}

#: System duplicate-check fields used by upsert when a mapping names none (upsert-records docs).
SYSTEM_DUPLICATE_CHECK_FIELDS: dict[str, list[str]] = {
    "Leads": ["Email"],
    "Accounts": ["Account_Name"],
    "Contacts": ["Email"],
    "Deals": ["Deal_Name"],
    "Campaigns": ["Campaign_Name"],
    "Cases": ["Subject"],
    "Solutions": ["Solution_Title"],
    "Products": ["Product_Name"],
    "Vendors": ["Vendor_Name"],
    "Price_Books": ["Price_Book_Name"],
    "Quotes": ["Subject"],
    "Sales_Orders": ["Subject"],
    "Purchase_Orders": ["Subject"],
    "Invoices": ["Subject"],
}
#: Custom modules dup-check on their primary ``Name`` field.
CUSTOM_MODULE_DUPLICATE_CHECK_FIELDS = ["Name"]

_VERSION = re.compile(r"^v(2|2\.1|[3-8])$")
_MODULE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ZohoSettings(BaseModel):
    """How crmsync reaches one Zoho CRM org."""

    model_config = ConfigDict(extra="forbid")

    data_center: DataCenter = Field(
        "us",
        description="Zoho data center of the org (us, eu, in, au, jp, cn, ca, sa). Picks the accounts and API hosts; "
        "tokens only work in the data center that issued them.",
    )
    environment: Environment = Field(
        "production", description="production, sandbox or developer org (sandbox./developer. API hosts)."
    )
    accounts_url: str | None = Field(
        None,
        description="Base URL of Zoho Accounts (token endpoint {accounts_url}/oauth/v2/token). "
        "Default from data_center, e.g. https://accounts.zoho.com. Set it for a proxy or the local emulator.",
    )
    api_domain: str | None = Field(
        None,
        description="Base URL of the CRM REST API, e.g. https://www.zohoapis.com. When unset, the api_domain of the "
        "token response is used (falling back to the data center's host). When set, it wins (proxies, emulator).",
    )
    client_id: str = Field(..., min_length=1, description="Client ID of the Zoho API console client (Self Client or server-based).")
    client_secret: SecretStr = Field(..., description="Client secret of that client.")
    refresh_token: SecretStr = Field(
        ...,
        description="Refresh token (obtained once with access_type=offline). Needs scopes ZohoCRM.modules.ALL, "
        "ZohoCRM.settings.modules.READ, ZohoCRM.settings.fields.READ and ZohoCRM.notifications.ALL.",
    )
    api_version: str = Field("v8", description="REST API version used in paths (/crm/v8/...): v2, v2.1, v3 ... v8.")

    concurrency: int = Field(
        10, ge=1, le=25, description="Concurrent API calls per org. Zoho allows Free 5, Standard 10, Professional 15, "
        "Enterprise 20, Ultimate 25 (per org per app).",
    )
    page_size: int = Field(200, ge=1, le=200, description="Records per page on reads (Zoho maximum 200).")
    write_batch: int = Field(100, ge=1, le=100, description="Records per insert/update/upsert/delete call (Zoho maximum 100).")
    fetch_batch: int = Field(100, ge=1, le=100, description="Ids per fetch-by-ids call.")
    fields_per_call: int = Field(50, ge=2, le=50, description="Field API names per read call (Zoho maximum 50); more are split and merged by id.")
    records_per_query: int = Field(
        100_000, ge=200, description="Records one page_token sequence may return (Zoho: 100,000). Past it the pull restarts "
        "from the last Modified_Time.",
    )
    write_parallelism: int = Field(
        4, ge=1, le=25, description="Write batches of one push sent at the same time (still capped by concurrency).",
    )
    duplicate_check_fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per module, the unique fields an upsert matches on, e.g. {Accounts: [Account_Name]}. "
        "Default: Zoho's system duplicate-check field (Accounts Account_Name, Contacts Email, Deals Deal_Name, "
        "Vendors Vendor_Name, custom modules Name).",
    )
    trigger: list[Literal["workflow", "approval", "blueprint"]] | None = Field(
        None,
        description="Automation run by our writes. Unset: Zoho's default (all run). [] runs none, which keeps "
        "workflow rules from echoing our own writes.",
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one HTTP call.")
    retry_attempts: int = Field(8, ge=1, le=50, description="Attempts of a call on 429, 5xx, timeouts and connection errors.")
    retry_base_seconds: float = Field(0.5, gt=0, description="First backoff wait; doubles per attempt, with jitter.")
    retry_max_seconds: float = Field(30.0, gt=0, description="Longest single backoff wait.")
    retry_total_seconds: float = Field(300.0, gt=0, description="Give up retrying one call after this long.")
    token_refresh_margin_seconds: float = Field(
        300.0, ge=0, description="Refresh the access token this long before it expires."
    )
    quota_pause_seconds: float = Field(
        3600.0, gt=0, description="Pause after Zoho reports the 24-hour API credits used up (429 with no credits left).",
    )
    deleted_lookback_hours: float = Field(
        24.0, gt=0, description="When fetched ids are missing, how far back the deleted-records list is searched for them.",
    )
    watch_channel_hours: float = Field(
        24.0, gt=0, le=168, description="Lifetime requested for notification channels (Zoho max: 1 day in v2-v3, "
        "7 days from v4; longer requests silently become 1 hour, so it is clamped).",
    )
    notify_affected_values: bool = Field(
        True, description="Subscribe notification channels with return_affected_field_values, so each update "
        "callback carries the new values of the fields it changed and Zoho's server_time. A user's edit landing "
        "between crmsync's last read and its write of the record is overwritten (no API offers a conditional "
        "write); the stored callback is the evidence that brings that edit back, weighed by the field's conflict "
        "policy.",
    )

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError(f"{value!r} is not a Zoho CRM API version: use v2, v2.1, v3 ... v8 (default v8)")
        return value

    @field_validator("accounts_url", "api_domain")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+$", value):
            raise ValueError(f"{value!r} must be a scheme and host without a path, e.g. https://accounts.zoho.eu")
        return value

    @field_validator("duplicate_check_fields")
    @classmethod
    def _dup_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for module, fields in value.items():
            if not _MODULE.match(module):
                raise ValueError(f"{module!r} is not a module API name")
            if not fields:
                raise ValueError(f"duplicate_check_fields.{module} must name at least one field")
        return value

    @model_validator(mode="after")
    def _retry_window(self) -> ZohoSettings:
        if self.retry_base_seconds > self.retry_max_seconds:
            raise ValueError("retry_base_seconds must not exceed retry_max_seconds")
        return self

    # -- derived -------------------------------------------------------
    @property
    def token_url(self) -> str:
        return f"{self.resolved_accounts_url}/oauth/v2/token"

    @property
    def resolved_accounts_url(self) -> str:
        return self.accounts_url or DATA_CENTERS[self.data_center][0]

    @property
    def default_api_domain(self) -> str:
        host = DATA_CENTERS[self.data_center][1]
        if self.environment != "production":
            host = host.replace("www.", f"{self.environment}.", 1)
        return f"https://{host}"

    @property
    def version_number(self) -> float:
        return float(self.api_version[1:])

    @property
    def max_channel_hours(self) -> float:
        """Longest channel lifetime Zoho grants: 1 day up to v3, 1 week from v4."""
        return 24.0 if self.version_number < 4 else 168.0

    def upsert_fields(self, module: str, custom: bool) -> list[str]:
        if module in self.duplicate_check_fields:
            return list(self.duplicate_check_fields[module])
        if module in SYSTEM_DUPLICATE_CHECK_FIELDS:
            return list(SYSTEM_DUPLICATE_CHECK_FIELDS[module])
        return list(CUSTOM_MODULE_DUPLICATE_CHECK_FIELDS) if custom else []

    def where(self) -> str:
        """Where the connector authenticates, for error messages (never a secret)."""
        return f"data center {self.data_center!r} ({self.environment}), accounts URL {self.resolved_accounts_url}"
