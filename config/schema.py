"""The configuration file's schema (pydantic v2).

Sections: ``state``, ``server``, ``logging``, ``sync``, ``systems``,
``value_maps``, ``entities``, ``flows``, ``conflicts``, ``deletes``, ``triggers``. System
settings belong to each connector plugin (``connectors/<type>/``); this module
only knows that a system has a ``type``. Mapping sections live in
:mod:`config.mapping_schema`.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .mapping_schema import EntitySpec, ValueMapSpec

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int | float) -> timedelta:
    """``90``, ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"`` → timedelta (bare numbers are seconds)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration: use a number of seconds or e.g. '30s', '5m', '1h', '1d'")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


Duration = Annotated[timedelta, Field(json_schema_extra={"type": "string", "examples": ["30s", "5m", "1h"]})]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StateConfig(Strict):
    url: str = Field(
        "sqlite:///crmsync.db",
        description="SQLAlchemy URL of the state database. SQLite (default) serves one `serve` process; "
        "PostgreSQL (postgresql+psycopg://…) lets any number of workers share the work.",
    )


class ServerConfig(Strict):
    host: str = Field("127.0.0.1", description="Interface the HTTP server listens on. Loopback unless you put it behind a proxy.")
    port: int = Field(8787, ge=1, le=65535, description="Port of the webhook receivers and ops routes.")
    ops_token: SecretStr | None = Field(
        None, description="When set, /status, /metrics, / and /readyz require `Authorization: Bearer <token>`."
    )
    public_url: str | None = Field(
        None,
        description="Base URL at which the CRMs reach this server (e.g. https://crmsync.example.com). "
        "Used to register webhook channels; defaults to http://host:port.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Webhook bodies larger than this are refused with 413.")

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's `true` would otherwise be port 1
            raise ValueError("input should be a valid integer, found true/false")
        return value

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class LoggingConfig(Strict):
    format: Literal["human", "json"] = Field("human", description="Human-readable lines or one JSON object per line.")
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")


class SyncConfig(Strict):
    overlap: Duration = Field(
        timedelta(minutes=2),
        description="Incremental pulls start this long before the cursor (inclusive bound + de-duplication), "
        "to catch records committed late with an older modified time.",
    )
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts of a job before its records go to the dead-letter queue.")
    lease: Duration = Field(timedelta(seconds=60), description="How long a worker holds a job without a heartbeat.")

    @field_validator("overlap", "lease", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return value if isinstance(value, timedelta) else parse_duration(value)


class SystemConfig(BaseModel):
    """A named system instance. ``settings`` is validated by the plugin of ``type``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    type: str
    settings: Any = None


class ScheduleConfig(Strict):
    cron: str | None = Field(None, description="Five-field crontab expression, e.g. '*/5 * * * *' (UTC unless timezone is set).")
    interval: Duration | None = Field(None, description="Fixed interval between runs, e.g. '5m'.")
    timezone: str = Field("UTC", description="Time zone of the cron expression, e.g. Asia/Shanghai.")

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> timedelta | None:
        if value is None or isinstance(value, timedelta):
            return value
        result = parse_duration(value)
        if result.total_seconds() < 1:
            raise ValueError("interval must be at least 1 second")
        return result

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"bad cron expression {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _one_of(self) -> "ScheduleConfig":
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of 'cron' or 'interval'")
        return self


class FlowConfig(Strict):
    entity: str = Field(description="Canonical entity this flow syncs (a key of `entities`).")
    systems: list[str] = Field(min_length=2, description="Systems kept in agreement (keys of `systems`).")
    direction: Literal["both", "one_way"] = Field(
        "both", description="'both': every system's changes reach the others. 'one_way': only `source` is read."
    )
    source: str | None = Field(None, description="With direction one_way: the only system read.")
    create_in: list[str] | None = Field(
        None, description="Systems in which the flow may create records (default: all of `systems`)."
    )
    schedule: ScheduleConfig | None = Field(None, description="When incremental syncs run.")
    reconcile: ScheduleConfig | None = Field(
        None, description="When a full reconciliation pass runs (catches missed webhooks and invisible deletes)."
    )
    webhooks: bool = Field(True, description="Webhook deliveries from these systems trigger syncs of this flow.")
    enabled: bool = Field(True, description="A disabled flow is validated but never run.")

    @model_validator(mode="after")
    def _direction(self) -> "FlowConfig":
        if self.direction == "one_way" and not self.source:
            raise ValueError("a one_way flow needs 'source'")
        if self.direction == "both" and self.source:
            raise ValueError("'source' only applies to direction: one_way")
        return self


class SourceOfTruth(Strict):
    source_of_truth: str = Field(description="This system's value always wins.")


ConflictPolicy = Literal["latest_wins", "manual"] | SourceOfTruth


class EntityConflicts(Strict):
    default: ConflictPolicy = Field("latest_wins", description="Policy for fields without their own.")
    fields: dict[str, ConflictPolicy] = Field(default_factory=dict, description="Per canonical field overrides.")


class DeletePolicy(Strict):
    policy: Literal["ignore", "propagate", "deactivate", "approve"] = Field(
        "ignore",
        description="What a delete in one system does to the others: nothing, delete, set `field` to `value`, "
        "or wait for approval in the review queue.",
    )
    field: str | None = Field(None, description="deactivate: canonical field to set.")
    value: Any = Field(None, description="deactivate: value to set it to.")

    @model_validator(mode="after")
    def _deactivate(self) -> "DeletePolicy":
        if self.policy == "deactivate" and (self.field is None or self.value is None):
            raise ValueError("policy deactivate needs 'field' and 'value'")
        return self


class TriggerWhen(Strict):
    entity: str = Field(description="Canonical entity whose records are watched, e.g. deal.")
    match: dict[str, Any] = Field(
        min_length=1,
        description="Canonical field → value (or list of values, any of which matches) that every field must "
        "hold for the trigger to fire, e.g. {stage: won}.",
    )


class TriggerCreate(Strict):
    entity: str = Field(description="Canonical entity of the record created, e.g. sales_order.")
    in_: str = Field(alias="in", description="System the record is created in (a system mapped for that entity).")
    values: dict[str, Any] = Field(
        min_length=1,
        description="The new record's canonical fields. Text is an expression (the transform language) over "
        "`record`, the watched record's canonical values plus `id`, and `value`, the moment the trigger fires "
        "(UTC); a number or true/false, or {value: X}, is a constant; a list of mappings builds a list of "
        "records (order lines) field by field the same way.",
    )


class TriggerConfig(Strict):
    description: str | None = Field(None, description="What the trigger is for, shown in `crmsync history`.")
    when: TriggerWhen = Field(description="Which records fire it.")
    create: TriggerCreate = Field(description="The record it creates, once per watched record.")
    write_back: dict[str, str] = Field(
        default_factory=dict,
        description="Watched record's field ← created record's field, copied each time the created record changes "
        "(e.g. the ERP order's number, status and total onto the deal) and written to the watched record's systems.",
    )
    enabled: bool = Field(True, description="A disabled trigger is validated but never fires.")


class CrmsyncConfig(Strict):
    """The whole configuration file."""

    state: StateConfig = Field(default_factory=StateConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    systems: dict[str, SystemConfig] = Field(description="Named system instances.")
    value_maps: dict[str, ValueMapSpec] = Field(default_factory=dict, description="Reusable value maps.")
    entities: dict[str, EntitySpec] = Field(default_factory=dict, description="Canonical entities and their mappings.")
    flows: dict[str, FlowConfig] = Field(default_factory=dict, description="Named flows.")
    conflicts: dict[str, EntityConflicts] = Field(default_factory=dict, description="Conflict policies per entity.")
    deletes: dict[str, DeletePolicy | Literal["ignore", "propagate", "approve"]] = Field(
        default_factory=dict, description="Delete policy per entity."
    )
    triggers: dict[str, TriggerConfig] = Field(
        default_factory=dict,
        description="Records created when another reaches a state, e.g. a won deal becomes an ERP sales order.",
    )

    def delete_policy(self, entity: str) -> DeletePolicy:
        value = self.deletes.get(entity, "ignore")
        return value if isinstance(value, DeletePolicy) else DeletePolicy(policy=value)

    def conflict_policy(self, entity: str, field: str) -> ConflictPolicy:
        spec = self.conflicts.get(entity)
        if spec is None:
            return "latest_wins"
        return spec.fields.get(field, spec.default)
