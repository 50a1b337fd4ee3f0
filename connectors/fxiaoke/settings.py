"""Settings of one Fxiaoke system (``systems.<name>`` with ``type: fxiaoke``).

Every endpoint, limit and behaviour the public docs leave open (marked
UNCONFIRMED in the reference notes) is a setting here, with the documented or
safest value as its default.
"""
from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

#: Documented default gateway; other clouds: open-hwcloud.fxiaoke.com, open-ale.fxiaoke.com,
#: open-hws.fxiaoke.com, open-ksc.sharecrm.com, open-na.sharecrm.com.
DEFAULT_HOST = "https://open.fxiaoke.com"

#: Error codes whose meaning is "the record does not exist (any more)". The public docs
#: name no such code; this is the emulator's choice and therefore a setting (UNCONFIRMED).
DEFAULT_NOT_FOUND_CODES = [201112008]
#: "数据已作废或已删除": the record is already invalid (UNCONFIRMED code, see above).
DEFAULT_ALREADY_INVALID_CODES = [201112016]


class Paths(BaseModel):
    """API paths. Only change them for a gateway that mounts the OpenAPI elsewhere."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field("/oauth2.0/token", description="Current-style token endpoint (grantType app_secret).")
    legacy_token: str = Field("/cgi/corpAccessToken/get/V2", description="Legacy corpAccessToken endpoint.")
    preset_prefix: str = Field("/cgi/crm/v2", description="Prefix of data/object paths for preset objects (XxxObj).")
    custom_prefix: str = Field(
        "/cgi/crm/custom/v2", description="Prefix of data paths for custom objects (api names ending in __c)."
    )
    object_list: str = Field("/cgi/crm/v2/object/list", description="Object list (discovery).")
    object_describe: str = Field("/cgi/crm/v2/object/describe", description="Object describe (discovery).")


class ObjectSettings(BaseModel):
    """Per-object write behaviour."""

    model_config = ConfigDict(extra="forbid")

    trigger_workflow: bool | None = Field(
        None, description="Send triggerWorkFlow on create/update (default: the system-wide trigger_workflow)."
    )
    trigger_approval_flow: bool | None = Field(
        None,
        description="Send triggerApprovalFlow on create/update (default: the system-wide trigger_approval_flow).",
    )
    option_info: dict[str, bool] | None = Field(
        None,
        description="optionInfo sent with create/update, e.g. {skipFuncValidate: true, isDuplicateSearch: true, "
        "useValidationRule: true}. Omitted when unset.",
    )


class TombstoneSettings(BaseModel):
    """How deletions become visible to polling (UNCONFIRMED in the public docs, so configurable)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["separate_query", "inline", "off"] = Field(
        "separate_query",
        description="separate_query: the main pull excludes invalid records (life_status N invalid) and a second "
        "pass asks for them explicitly (life_status EQ invalid), which works whether or not the tenant's query "
        "returns invalidated data by default; inline: invalid records are expected in the normal query results; "
        "off: no tombstones from polling.",
    )
    life_status_values: list[str] = Field(
        default_factory=lambda: ["invalid"], description="life_status values that mean the record was deleted (作废)."
    )
    honour_is_deleted: bool = Field(True, description="Treat is_deleted: true as a tombstone.")

    @field_validator("life_status_values")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one life_status value (normally 'invalid')")
        return value


class NotificationSettings(BaseModel):
    """Change notifications: which push style this tenant sends, and its secrets."""

    model_config = ConfigDict(extra="forbid")

    style: Literal["none", "open_platform", "apl_function"] = Field(
        "none",
        description="open_platform: the open platform's signed, AES-encrypted push {nonce, timeStamp, content, sig}; "
        "apl_function: the JSON push sent by the APL function in connectors/fxiaoke/apl_push_function.groovy, "
        "signed with HMAC-SHA256; none: polling only.",
    )
    token: SecretStr | None = Field(
        None, validate_default=True, description="open_platform: the app's message token (fs.token)."
    )
    encoding_aes_key: SecretStr | None = Field(
        None, validate_default=True, description="open_platform: the 43-character encodingAesKey (fs.encodingAesKey)."
    )
    clock_window_seconds: float = Field(
        500.0, gt=0, description="open_platform: largest accepted |now - timeStamp| (the official demo uses 500 s)."
    )
    apl_secret: SecretStr | None = Field(
        None, validate_default=True, description="apl_function: the shared HMAC secret (≥ 16 characters)."
    )
    apl_clock_window_seconds: float = Field(
        300.0, gt=0, description="apl_function: largest accepted |now - X-Crmsync-Timestamp| in seconds."
    )

    # Field validators (not one model validator) so that an error names the key to fix;
    # `style` is declared first, so it is in ``info.data`` when these run.
    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("style") == "open_platform" and not (value and value.get_secret_value()):
            raise ValueError("notifications.style open_platform needs notifications.token")
        return value

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("style") == "open_platform" and len(value.get_secret_value() if value else "") != 43:
            raise ValueError("notifications.encoding_aes_key must be the 43-character encodingAesKey")
        return value

    @field_validator("apl_secret")
    @classmethod
    def _apl_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("style") == "apl_function" and len(value.get_secret_value() if value else "") < 16:
            raise ValueError("notifications.style apl_function needs notifications.apl_secret (≥ 16 characters)")
        return value


class FxiaokeSettings(BaseModel):
    """``systems.<name>`` for ``type: fxiaoke``."""

    model_config = ConfigDict(extra="forbid")

    # -- where and who -------------------------------------------------------
    host: str = Field(
        DEFAULT_HOST,
        description="OpenAPI gateway base URL, e.g. https://open.fxiaoke.com or https://open-hwcloud.fxiaoke.com "
        "(not www.fxiaoke.com), or the emulator's http://127.0.0.1:PORT.",
    )
    paths: Paths = Field(default_factory=Paths, description="API paths (override only for unusual gateways).")
    auth_style: Literal["current", "legacy"] = Field(
        "current",
        description="current: POST /oauth2.0/token and Bearer/x-fs-ea/x-fs-userid headers; legacy: "
        "/cgi/corpAccessToken/get/V2 and corpAccessToken/corpId/currentOpenUserId in every body.",
    )
    app_id: str = Field(..., min_length=1, description="The self-built app's appId (FSAID_…).")
    app_secret: SecretStr = Field(..., description="The app's appSecret.")
    permanent_code: SecretStr = Field(..., description="The tenant's permanentCode for the app.")
    user_id: str = Field(
        "1000",
        description="current style: CRM employee id acting for crmsync (x-fs-userid); a CRM admin (1000) sees "
        "all data.",
    )
    open_user_id: str | None = Field(
        None, description="legacy style: currentOpenUserId (FSUID_…) of the acting CRM user; required for legacy."
    )
    opportunity_object: Literal["NewOpportunityObj", "OpportunityObj"] = Field(
        "NewOpportunityObj",
        description="Which opportunity object this tenant uses (商机2.0 NewOpportunityObj or the older "
        "OpportunityObj); the alias 'opportunity' resolves to it.",
    )

    # -- limits --------------------------------------------------------------
    rate_limit_calls: int = Field(
        100, gt=0, description="Calls allowed per interface per rate_limit_period_seconds (documented: 100 per 20 s)."
    )
    rate_limit_period_seconds: float = Field(20.0, gt=0, description="Window of rate_limit_calls, seconds.")
    endpoint_rate_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Per-path overrides of rate_limit_calls, e.g. {'/cgi/crm/v2/data/query': 300} for a tenant "
        "that bought more.",
    )
    rate_limit_mode: Literal["window", "paced"] = Field(
        "window",
        description="How calls are kept within the limit, per interface. window: up to the limit less the headroom "
        "in any period (stretched by the headroom), so a first sync's pages go out at the network's pace; an "
        "interface the gateway throttles anyway is paced from then on. paced: after rate_limit_burst calls, a "
        "steady (limit × (1 − headroom) − burst) / period calls a second, for a gateway that counts per second.",
    )
    rate_limit_burst: int = Field(
        5,
        gt=0,
        description="paced mode: calls that may go out back to back. The sustained rate is lowered so that burst + "
        "rate × period never exceeds the limit in any sliding window.",
    )
    rate_limit_headroom: float = Field(
        0.03,
        ge=0,
        lt=0.5,
        description="Share of the limit kept unused to absorb network jitter between our clock and the gateway's.",
    )
    token_calls_per_minute: int = Field(10, gt=0, description="Token endpoint limit (documented: 10 per minute).")
    daily_quota: int | None = Field(
        None, gt=0, description="Purchased calls per day (shown on the status endpoint); the tenant resets at 00:00 "
        "Beijing time. Informational: the system pauses only when the API answers 30002."
    )
    concurrency: int = Field(16, gt=0, le=256, description="Most HTTP requests in flight at once.")
    write_concurrency: int = Field(
        8, gt=0, le=256, description="Most records written at once (there is no batch create; writes run concurrently)."
    )
    fetch_concurrency: int = Field(8, gt=0, le=256, description="Most data/get calls in flight for one fetch.")
    timeout_seconds: float = Field(30.0, gt=0, description="Per-request timeout.")
    retry_attempts: int = Field(
        6, ge=1, le=20, description="Attempts for retryable failures (-1, -2, 50009, 30004, 14001, network)."
    )
    retry_base_seconds: float = Field(0.5, gt=0, description="First backoff step; doubles per attempt, full jitter.")
    retry_cap_seconds: float = Field(30.0, gt=0, description="Longest single backoff.")
    token_refresh_min_age_seconds: float = Field(
        6650.0, gt=0, description="Earliest token age (of a 7,200 s token) at which it is refreshed proactively."
    )
    token_refresh_max_age_seconds: float = Field(
        7140.0, gt=0, description="Latest token age at which it is refreshed proactively (the docs: 6,650–7,200 s)."
    )

    # -- paging --------------------------------------------------------------
    page_size: int = Field(100, ge=1, le=100, description="Query limit per page (documented maximum 100).")
    offset_wall: int = Field(
        10000, ge=0, description="Largest offset the query accepts (documented 10,000); beyond it paging is by _id."
    )
    tombstones: TombstoneSettings = Field(default_factory=TombstoneSettings, description="How deletions are detected.")

    # -- errors (UNCONFIRMED codes are settings) ------------------------------
    not_found_codes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_NOT_FOUND_CODES),
        description="errorCodes meaning 'no such record' (fetch skips the id; delete counts as done).",
    )
    already_invalid_codes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_ALREADY_INVALID_CODES),
        description="errorCodes meaning 'record already invalid' (a delete then proceeds to the delete step).",
    )
    extra_retryable_codes: list[int] = Field(
        default_factory=list, description="More errorCodes to retry with backoff besides -1, -2, 50009, 30004, 14001."
    )

    # -- writes --------------------------------------------------------------
    trigger_workflow: bool = Field(True, description="Default triggerWorkFlow on create/update (API default true).")
    trigger_approval_flow: bool = Field(
        True, description="Default triggerApprovalFlow on create/update (API default true)."
    )
    change_owner_id_format: Literal["list", "bracket_string"] = Field(
        "list",
        description="How changeOwner's ownerId is sent: a JSON list ['1000'] (SDK) or the string '[1000]' of the "
        "official example (UNCONFIRMED which the gateway requires; both are accepted by the emulator).",
    )
    objects: dict[str, ObjectSettings] = Field(
        default_factory=dict, description="Per-object overrides, keyed by API name (AccountObj, Invoice__c…)."
    )

    notifications: NotificationSettings = Field(
        default_factory=NotificationSettings, description="Change notifications (webhooks) for this tenant."
    )

    @field_validator("host")
    @classmethod
    def _host_is_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("host must start with https:// (or http:// for the local emulator)")
        if "://www.fxiaoke.com" in value:
            raise ValueError("www.fxiaoke.com is the web app, not the API gateway; use https://open.fxiaoke.com")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FxiaokeSettings:
        if self.auth_style == "legacy" and not self.open_user_id:
            raise ValueError("auth_style legacy needs open_user_id (the acting user's FSUID_…)")
        if self.token_refresh_min_age_seconds > self.token_refresh_max_age_seconds:
            raise ValueError("token_refresh_min_age_seconds must not exceed token_refresh_max_age_seconds")
        if self.rate_limit_burst >= self.rate_limit_calls * (1 - self.rate_limit_headroom):
            raise ValueError("rate_limit_burst must be well below rate_limit_calls")
        return self

    def object_settings(self, object_name: str) -> ObjectSettings:
        return self.objects.get(object_name) or ObjectSettings()

    def limit_for(self, path: str) -> int:
        return self.endpoint_rate_limits.get(path, self.rate_limit_calls)
