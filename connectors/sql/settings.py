"""Settings of an SQL interface-table system (``systems.<name>`` with ``type: sql``).

One block describes one ERP database. Per object it names the table or view
crmsync *reads*, and — only for objects crmsync writes — the interface
(staging) table it *stages* rows in. The validators refuse any configuration
in which a write could land in a table crmsync also reads (an ERP base table or
view): see :mod:`connectors.sql.writer` for why.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from connectors.errors import ConnectorConfigError

_EPOCH_FORMATS = ("epoch_s", "epoch_ms")
_SORTABLE_DIRECTIVES = "YmdHMSf"


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


#: A column list that may be written as a single name in YAML (``key: cust_no``).
Columns = Annotated[list[str], BeforeValidator(_as_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DetailReadSettings(_Strict):
    """Lines of a master-detail object (sales order lines), read with their header."""

    table: str = Field(description="Table or view holding the lines.")
    db_schema: str | None = Field(None, alias="schema", description="Schema of the table (default: the object's).")
    parent_key: Columns = Field(
        description="Columns of the line table that hold the header's key, in the order of the header's `key`."
    )
    key: Columns = Field(default_factory=list, description="Columns that order the lines within one header (line number).")
    columns: Columns | None = Field(None, description="Columns to return for each line (default: all).")



class DetailInterfaceSettings(_Strict):
    """Interface table for the lines of a staged header. Lines of one header are replaced as a whole."""

    table: str = Field(description="Interface table for the lines.")
    db_schema: str | None = Field(None, alias="schema", description="Schema of the table (default: the header interface table's).")
    parent_key: Columns = Field(
        description="Columns of the line interface table that hold the header's natural key, in the order of the header's interface `key`."
    )



class InterfaceColumns(_Strict):
    """Names of the control columns of an interface table. ``null`` switches an optional one off."""

    status: str = Field("sync_status", description="Row state: pending (set by crmsync), done or error (set by the ERP import job).")
    message: str = Field("sync_message", description="The ERP import job's error message for rejected rows.")
    processed_at: str = Field("processed_at", description="When the ERP import job processed the row (ERP local time).")
    batch_id: str = Field("batch_id", description="Id of the crmsync transaction that staged the row.")
    op_key: str = Field("crmsync_op_key", description="crmsync's key of the write operation; the import job must not change it.")
    read_back_at: str = Field(
        "crmsync_read_at", description="Set by crmsync once it has read the row's outcome (so it is reported once)."
    )
    staged_at: str | None = Field("staged_at", description="When crmsync staged the row (ERP local time).")
    action: str | None = Field("sync_action", description="create, update, upsert or delete: what crmsync asks the ERP to do.")
    result_id: str | None = Field(
        "erp_id", description="Filled by the import job with the id of the ERP record (e.g. the customer number)."
    )
    error_code: str | None = Field(None, description="Optional column with the ERP's error code for rejected rows.")


class StatusValues(_Strict):
    """Values of the status column. Any other value (e.g. PROCESSING) means the ERP job is still at it."""

    pending: str | int = Field("PENDING", description="Staged by crmsync, waiting for the ERP import job.")
    done: str | int = Field("DONE", description="Imported by the ERP.")
    error: str | int = Field("ERROR", description="Rejected by the ERP; the message column says why.")

    @field_validator("pending", "done", "error")
    @classmethod
    def _plain(cls, value: str | int) -> str | int:
        if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_\-]{1,40}", value):
            raise ValueError("status values are integers or up to 40 letters, digits, '_' or '-'")
        return value


class InterfaceSettings(_Strict):
    """Where crmsync stages writes for an object. The ERP's own import job moves rows into its base tables."""

    table: str = Field(description="Interface (staging) table; never an ERP base table.")
    db_schema: str | None = Field(None, alias="schema", description="Schema of the table (default: the system's).")
    key: Columns | None = Field(
        None, description="Natural-key columns identifying a staged row (unique index advised). Default: the object's `key`."
    )
    columns: InterfaceColumns = Field(default_factory=InterfaceColumns, description="Control column names.")
    status_values: StatusValues = Field(default_factory=StatusValues, description="Values of the status column.")
    details: dict[str, DetailInterfaceSettings] = Field(
        default_factory=dict, description="Interface tables for lines, by the name of the lines field in the record."
    )



class ObjectSettings(_Strict):
    """One ERP object (customer, dealer, sales order) as crmsync sees it."""

    label: str = Field("", description="Human name shown by discovery.")
    table: str | None = Field(None, description="Table or view crmsync reads. Omit for write-only objects.")
    db_schema: str | None = Field(None, alias="schema", description="Schema of the table (default: the system's).")
    columns: Columns | None = Field(None, description="Columns returned as record fields (default: all columns).")
    key: Columns = Field(description="Primary or natural key column(s); one value per row.")
    modified_column: str | None = Field(
        None,
        description="Modified-at column for incremental pulls. Without one, changes are found by comparing content hashes.",
    )
    modified_format: str | None = Field(
        None,
        description=(
            "How the modified column stores time when it is not a date/time type: `epoch_s`, `epoch_ms`, "
            "or a strftime pattern that sorts as text (e.g. `%Y-%m-%d %H:%M:%S`)."
        ),
    )
    timezone: str | None = Field(None, description="Time zone of naive times in this object's tables (default: the system's).")
    modified_resolution_seconds: float | None = Field(
        None,
        gt=0,
        description=(
            "Step of the modified column's values: 86400 for a DATE column, 60 for SQL Server's smalldatetime. "
            "Default: from `modified_format` (epoch_ms 0.001, epoch_s 1, a pattern by its finest directive), "
            "else 1. A cursor settles only once a step has passed, so an edit later in the same step is read."
        ),
    )
    overlap_seconds: float = Field(
        0.0, ge=0, description="Extra look-back for rows committed late with an older modified time (on top of the engine's overlap)."
    )
    filter: str | None = Field(
        None, description="SQL condition added to every read with AND, e.g. `doc_status = 'C'` (written by the integrator)."
    )
    deleted_column: str | None = Field(None, description="Column flagging soft-deleted rows; such rows come back as tombstones.")
    deleted_values: list[str | int | bool] = Field(default_factory=list, description="Values of `deleted_column` that mean deleted.")
    detect_deletes_by_absence: bool = Field(
        False,
        description=(
            "Hash mode only: report rows that vanished from the table as deletions. Off by default because "
            "a row missing from a read is not proof of a delete (a view's filter, permissions, an archive job)."
        ),
    )
    absence_guard_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Refuse to report deletions when more than this share of known rows vanished in one scan.",
    )
    page_size: int | None = Field(None, ge=1, le=50000, description="Rows per page for this object (default: the system's).")
    details: dict[str, DetailReadSettings] = Field(
        default_factory=dict, description="Lines read with each row, by the name of the field holding them."
    )
    interface: InterfaceSettings | None = Field(
        None, description="Interface table for writes. Objects without one are read-only."
    )


    @field_validator("key")
    @classmethod
    def _key_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("key needs at least one column")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("modified_format")
    @classmethod
    def _sortable_format(cls, value: str | None) -> str | None:
        if value is None or value in _EPOCH_FORMATS:
            return value
        directives = re.findall(r"%(.)", value)
        order = [_SORTABLE_DIRECTIVES.find(d) for d in directives]
        if not directives or directives[0] != "Y" or -1 in order or order != sorted(order):
            raise ValueError(
                f"modified_format {value!r} does not sort as text: use epoch_s, epoch_ms or a pattern "
                "with %Y %m %d %H %M %S %f in that order"
            )
        return value

    def modified_resolution(self) -> float:
        """Seconds between two distinct values of the modified column (see ``modified_resolution_seconds``)."""
        if self.modified_resolution_seconds is not None:
            return self.modified_resolution_seconds
        fmt = self.modified_format
        if fmt is None or fmt == "epoch_s":
            return 1.0
        if fmt == "epoch_ms":
            return 0.001
        directives = set(re.findall(r"%(.)", fmt))
        for directive, step in (("f", 0.000001), ("S", 1.0), ("M", 60.0), ("H", 3600.0)):
            if directive in directives:
                return step
        return 86400.0

    @model_validator(mode="after")
    def _consistent(self) -> ObjectSettings:
        if self.table is None and self.interface is None:
            raise ValueError("an object needs a `table` to read, an `interface` table to write, or both")
        if self.table is None and (self.modified_column or self.details or self.columns):
            raise ValueError("modified_column, columns and details describe the read table: set `table` too")
        if self.modified_column and self.detect_deletes_by_absence:
            raise ValueError(
                "detect_deletes_by_absence works with hash-based detection only (objects without modified_column)"
            )
        if self.modified_format and not self.modified_column:
            raise ValueError("modified_format needs modified_column")
        if self.deleted_values and not self.deleted_column:
            raise ValueError("deleted_values needs deleted_column")
        if self.deleted_column and not self.deleted_values:
            raise ValueError("deleted_column needs deleted_values (the values meaning 'deleted')")
        if self.interface:
            for name, detail in self.interface.details.items():
                key = self.interface.key or self.key
                if len(detail.parent_key) != len(key):
                    raise ValueError(f"interface.details.{name}.parent_key needs {len(key)} column(s), like the interface key")
        for name, detail in self.details.items():
            if len(detail.parent_key) != len(self.key):
                raise ValueError(f"details.{name}.parent_key needs {len(self.key)} column(s), like the object key")
        return self


class HashStateSettings(_Strict):
    """Where crmsync keeps one content hash per row of objects without a modified column.

    By default a small table in the ERP connection's default schema, named here so that the
    DBA knows exactly what crmsync creates; point ``url`` at another database (crmsync's own
    PostgreSQL) when the ERP account must stay read-only apart from the interface tables.
    """

    table: str = Field("crmsync_row_hash", description="Name of the hash table (created if missing).")
    db_schema: str | None = Field(None, alias="schema", description="Schema of the hash table (default: the connection's).")
    url: str | None = Field(None, description="Separate SQLAlchemy URL for the hash table (default: the ERP connection).")
    password: SecretStr | None = Field(None, description="Password for `url`.")
    create: bool = Field(True, description="Create the table when missing (needs CREATE privilege once).")

    @model_validator(mode="before")
    @classmethod
    def _split_password(cls, data: Any) -> Any:
        return _move_password_out_of_url(data)


class SqlSettings(_Strict):
    """An ERP database reached through SQLAlchemy: read tables/views, write interface tables only."""

    url: str = Field(
        description=(
            "SQLAlchemy URL without the password, e.g. `postgresql+psycopg://erp_sync@10.0.0.5/erp`, "
            "`mysql+pymysql://erp_sync@db/erp`, `mssql+pyodbc://…`, `oracle+oracledb://…`, `sqlite:///erp.db`."
        )
    )
    password: SecretStr | None = Field(None, description="Database password (a password inside `url` is moved here).")
    connect_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra driver arguments, e.g. `{sslmode: require}` for psycopg."
    )
    timezone: str = Field(
        "Asia/Shanghai", description="Time zone of naive (zone-less) times in the ERP database; converted to UTC."
    )
    db_schema: str | None = Field(None, alias="schema", description="Default schema of the configured tables.")
    page_size: int = Field(1000, ge=1, le=50000, description="Rows per page when pulling.")
    write_batch_size: int = Field(
        500, ge=1, le=10000, description="Rows per write transaction: a batch is staged whole or not at all."
    )
    fetch_batch_size: int = Field(500, ge=1, le=1000, description="Ids per query when fetching by id.")
    pool_size: int = Field(4, ge=1, le=64, description="Database connections kept open (also the concurrency cap).")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="Give up connecting after this long.")
    upsert_strategy: Literal["auto", "generic"] = Field(
        "auto",
        description=(
            "`auto`: the dialect's native upsert (PostgreSQL/SQLite ON CONFLICT, MySQL ON DUPLICATE KEY UPDATE) "
            "where the interface key has a unique index; `generic`: select-then-update inside the transaction."
        ),
    )
    key_separator: str = Field("|", min_length=1, description="Joins the values of a composite key into one external id.")
    hash_state: HashStateSettings = Field(default_factory=HashStateSettings, description="Content-hash table settings.")
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret for ERP-side change notifications (HMAC-SHA256, ≥ 16 characters). Unset: webhooks refused."
    )
    webhook_previous_secret: SecretStr | None = Field(None, description="The old secret, accepted during rotation.")
    webhook_tolerance_seconds: int = Field(300, ge=1, description="Largest accepted clock difference of a notification.")
    webhook_max_body_bytes: int = Field(262144, ge=1024, description="Larger notification bodies are refused (413).")
    webhook_max_ids: int = Field(1000, ge=1, description="Largest number of ids in one notification.")
    discover_unconfigured_tables: bool = Field(
        False, description="Let discovery list every table and view of the schema, not only configured objects."
    )
    objects: dict[str, ObjectSettings] = Field(description="The ERP objects crmsync reads or writes, by object name.")

    @model_validator(mode="before")
    @classmethod
    def _split_password(cls, data: Any) -> Any:
        return _move_password_out_of_url(data)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        """An unknown dialect or driver (``oracle+nosuch://``) is found here, not at the first connection.
        Only the dialect is loaded: the driver package itself may be installed only where crmsync runs."""
        try:
            make_url(value).get_dialect()
        except NoSuchModuleError:
            name = value.split("://", 1)[0]
            raise ValueError(f"unknown database dialect or driver {name!r} (e.g. postgresql+psycopg, "
                             "mysql+pymysql, mssql+pyodbc, oracle+oracledb, sqlite)") from None
        except ArgumentError:
            raise ValueError("url is not a valid SQLAlchemy URL (expected dialect+driver://user@host:port/database)") from None
        return value

    @field_validator("webhook_secret", "webhook_previous_secret")
    @classmethod
    def _unguessable(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty means unset (`${ERP_DB_WEBHOOK_SECRET:-}`): webhooks refused. A short one can be guessed.
        if value is not None and 0 < len(value.get_secret_value()) < 16:
            raise ValueError("a webhook secret must be at least 16 characters")
        return value

    @field_validator("objects")
    @classmethod
    def _some_objects(cls, value: dict[str, ObjectSettings]) -> dict[str, ObjectSettings]:
        if not value:
            raise ValueError("configure at least one object")
        return value

    @model_validator(mode="after")
    def _writes_only_to_interface_tables(self) -> SqlSettings:
        """Refuse configurations in which a write target is also something crmsync reads."""
        read: dict[tuple[str | None, str], str] = {}
        for name, obj in self.objects.items():
            if obj.table:
                read[_ident(obj.db_schema or self.db_schema, obj.table)] = f"objects.{name}.table"
            for dname, detail in obj.details.items():
                schema = detail.db_schema or obj.db_schema or self.db_schema
                read[_ident(schema, detail.table)] = f"objects.{name}.details.{dname}.table"
        written: dict[tuple[str | None, str], str] = {}
        for name, obj in self.objects.items():
            if not obj.interface:
                continue
            iface_schema = obj.interface.db_schema or self.db_schema
            targets = [(_ident(iface_schema, obj.interface.table), f"objects.{name}.interface.table")]
            for dname, detail in obj.interface.details.items():
                targets.append(
                    (_ident(detail.db_schema or iface_schema, detail.table), f"objects.{name}.interface.details.{dname}.table")
                )
            for ident, where in targets:
                if ident in read:
                    raise ValueError(
                        f"{where} names {ident[1]!r}, which {read[ident]} reads: crmsync writes interface tables only, "
                        "never tables or views it reads"
                    )
                if ident in written:
                    raise ValueError(f"{where} and {written[ident]} name the same interface table {ident[1]!r}")
                written[ident] = where
        if self.hash_state.url is None:
            ident = _ident(self.hash_state.db_schema or self.db_schema, self.hash_state.table)
            if ident in read or ident in written:
                raise ValueError(f"hash_state.table {self.hash_state.table!r} is also {(read | written)[ident]}")
        return self

    def object(self, name: str) -> ObjectSettings:
        try:
            return self.objects[name]
        except KeyError:
            known = ", ".join(sorted(self.objects))
            raise ConnectorConfigError(f"unknown object {name!r} (configured: {known})") from None


def _ident(schema: str | None, table: str) -> tuple[str | None, str]:
    return (schema.lower() if schema else None, table.lower())


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
    return value


def _move_password_out_of_url(data: Any) -> Any:
    """Keep the password out of ``url`` so that the URL is safe to show; it lives on as a SecretStr."""
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return data
    try:
        url = make_url(data["url"])
    except ArgumentError:
        raise ValueError("url is not a valid SQLAlchemy URL (expected dialect+driver://user@host:port/database)") from None
    if url.password is None:
        return data
    if data.get("password") is not None:
        raise ValueError("the password is given twice: in url and in password")
    data = dict(data)
    data["password"] = url.password
    data["url"] = url._replace(password=None).render_as_string(hide_password=False)  # set(password=None) keeps it
    return data
