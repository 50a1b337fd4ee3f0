"""What the three-way, field-level sync engine remembers about records.

* :class:`Record` — the canonical record: the last agreed state, i.e. the merge base.
* :class:`Link` — which record in which system is that canonical record (the binding / xref).
* :class:`Snapshot` — per system, the canonical values last read from or written to it:
  an incoming value equal to the snapshot is our own echo; a value that differs
  from the base in one system only is that system's edit.
* :class:`Cursor` — how far each consumer has read each system's object.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime
from .base import (
    CANONICAL_ID_LEN,
    ENTITY_LEN,
    EXTERNAL_ID_LEN,
    OBJECT_LEN,
    SYSTEM_LEN,
    VERSION_HASH_LEN,
    Base,
    BigId,
    created_at_column,
    enum_type,
    updated_at_column,
)
from .enums import LinkStatus, SnapshotAction


class Record(Base):
    """The canonical record of one entity (partner, account, contact, deal, sales order).

    ``values`` holds canonical field values in their JSON form (pydantic
    ``model_dump(mode="json")``): the state every system last agreed on.
    ``version`` is bumped by every ORM update and checked by it
    (``UPDATE … WHERE version = :seen``), so two workers merging the same record
    cannot both win: the loser gets ``StaleDataError`` and retries its merge.
    """

    __tablename__ = "records"

    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), primary_key=True)
    canonical_id: Mapped[str] = mapped_column(String(CANONICAL_ID_LEN), primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    hash: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __mapper_args__ = {"version_id_col": version}


class Link(Base):
    """Canonical id ↔ (system, object, external id).

    A system record is bound to at most one canonical record, and a canonical
    record to at most one record per system. Deleted and unlinked bindings are
    kept (``status``) so a late webhook for a deleted record is recognised
    instead of creating a duplicate.
    """

    __tablename__ = "links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    canonical_id: Mapped[str] = mapped_column(String(CANONICAL_ID_LEN), nullable=False)
    system: Mapped[str] = mapped_column(String(SYSTEM_LEN), nullable=False)
    object: Mapped[str] = mapped_column(String(OBJECT_LEN), nullable=False)
    external_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LEN), nullable=False)
    status: Mapped[LinkStatus] = mapped_column(
        enum_type(LinkStatus, "link_status"), default=LinkStatus.ACTIVE, nullable=False
    )
    created_at: Mapped[datetime] = created_at_column()
    last_synced_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("system", "object", "external_id"),
        UniqueConstraint("entity", "canonical_id", "system"),
        ForeignKeyConstraint(
            ["entity", "canonical_id"], ["records.entity", "records.canonical_id"], ondelete="CASCADE"
        ),
        # A reference (a contact's account id) is resolved by system and external id, without the object:
        # without this index SQLite walked every link of the entity for each one (O(links) per reference).
        Index("ix_links_external", "system", "external_id"),
    )


class Snapshot(Base):
    """Canonical values as last read from (``last_action=read``) or written to a system.

    Echo suppression: an incoming change whose ``hash`` equals the snapshot's is
    what we wrote ourselves (or already saw) and is dropped. The per-field
    three-way merge compares each system's incoming values with ``Record.values``
    (the base); the snapshot tells which fields the system itself changed.
    """

    __tablename__ = "snapshots"

    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), primary_key=True)
    canonical_id: Mapped[str] = mapped_column(String(CANONICAL_ID_LEN), primary_key=True)
    system: Mapped[str] = mapped_column(String(SYSTEM_LEN), primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the system's own modified time of the record, as last seen.
    source_modified_at: Mapped[datetime | None]
    #: hash of the record as the system returned it at ``source_modified_at`` (``pull.version_hash``): two
    #: edits in one second of a system whose times have whole seconds share the modified time, not this.
    source_hash: Mapped[str | None] = mapped_column(String(VERSION_HASH_LEN))
    last_action: Mapped[SnapshotAction] = mapped_column(
        enum_type(SnapshotAction, "snapshot_action"), default=SnapshotAction.READ, nullable=False
    )
    read_at: Mapped[datetime | None]
    written_at: Mapped[datetime | None]
    #: ``WriteOp.key`` of the last write, to match a write's echo with the write.
    last_op_key: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        ForeignKeyConstraint(
            ["entity", "canonical_id"], ["records.entity", "records.canonical_id"], ondelete="CASCADE"
        ),
    )


class Cursor(Base):
    """Incremental read position of one consumer (usually a flow) over a system's object.

    ``watermark`` is the highest modified time committed; the next pull starts
    at it *inclusively* (minus the overlap window) and skips the
    ``(external_id, modified)`` pairs in ``tiebreak`` already processed at that
    instant. ``resume`` is the connector's opaque page state of an interrupted
    pull. All three are saved in the transaction that commits the records they
    cover, never before.
    """

    __tablename__ = "cursors"

    system: Mapped[str] = mapped_column(String(SYSTEM_LEN), primary_key=True)
    object: Mapped[str] = mapped_column(String(OBJECT_LEN), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(128), primary_key=True, default="default")
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tiebreak: Mapped[dict[str, Any] | None]
    resume: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = updated_at_column()

