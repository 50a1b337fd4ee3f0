"""The engine's work in progress: staged changes, the write outbox and match keys.

* :class:`StagedChange` — a record version read from a system (poll, webhook
  fetch, replay) and not yet reconciled. Staging it is durable, so a crash after
  a pull loses nothing; one row per system record keeps only the newest version.
* :class:`OutboxWrite` — a write the engine decided to make, committed *before*
  it is sent. After a crash, ``sent`` rows are "in doubt": an update or delete
  is simply sent again (idempotent); a create is first looked for in the target
  (it may have landed) so it is never made twice.
* :class:`MatchKey` — normalised identifying keys of canonical records (tax id,
  domain, name…), the index first-sync matching searches.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..types import UTCDateTime
from .base import (
    CANONICAL_ID_LEN,
    ENTITY_LEN,
    EXTERNAL_ID_LEN,
    KEY_LEN,
    OBJECT_LEN,
    SYSTEM_LEN,
    VERSION_HASH_LEN,
    Base,
    BigId,
    created_at_column,
)


class StagedChange(Base):
    __tablename__ = "staged_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    system: Mapped[str] = mapped_column(String(SYSTEM_LEN), nullable=False)
    object: Mapped[str] = mapped_column(String(OBJECT_LEN), nullable=False)
    external_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LEN), nullable=False)
    modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    #: the record as the system returned it (system field names and formats)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    #: ``pull.version_hash(data)``, kept on the snapshot once reconciled
    data_hash: Mapped[str | None] = mapped_column(String(VERSION_HASH_LEN))
    origin: Mapped[str] = mapped_column(String(16), nullable=False, default="poll")
    #: pending (to reconcile) | review (waiting for a person: ambiguous match) | deferred (reference not synced yet)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(BigId)
    staged_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        UniqueConstraint("entity", "system", "object", "external_id"),
        Index("ix_staged_changes_pick", "entity", "status", "id"),
    )


class OutboxWrite(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    op_key: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False, unique=True)
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    canonical_id: Mapped[str] = mapped_column(String(CANONICAL_ID_LEN), nullable=False)
    system: Mapped[str] = mapped_column(String(SYSTEM_LEN), nullable=False)
    object: Mapped[str] = mapped_column(String(OBJECT_LEN), nullable=False)
    #: create | update | delete
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(EXTERNAL_ID_LEN))
    #: canonical values to write (only the fields that change, for an update)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    #: pending (decided, not sent) | sent (sending or in doubt) | done | failed | deferred
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    flow: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16), nullable=False, default="poll")
    run_id: Mapped[int | None] = mapped_column(BigId)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_outbox_work", "status", "system", "id"),
        Index("ix_outbox_record", "entity", "canonical_id", "system"),
        # Sending walks one entity's pending rows by id: without this index each round of a first sync
        # read every pending row and sorted them all to take the next chunk (O(n²) over the pass).
        Index("ix_outbox_pick", "entity", "status", "id"),
    )


class NotifiedChange(Base):
    """A system's notification of an edit that carried the new field values (Zoho's
    ``affected_values`` with its ``server_time``): evidence of the edit that outlives it.

    No API offers a conditional write, so a user's edit landing between our last read of a record and
    our write of it is overwritten, and no later read shows it. The notification of that edit still
    says what the user set and when: reconciliation weighs it against the change our write carried
    (see ``reconcile._notified_changes``). Kept until a merge of the record has decided it (or found
    nothing it could have lost), and while one of our writes to the record is still on its way."""

    __tablename__ = "notified_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(SYSTEM_LEN), nullable=False)
    object: Mapped[str] = mapped_column(String(OBJECT_LEN), nullable=False)
    external_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_LEN), nullable=False)
    #: when the system made the change (its own clock: Zoho's ``server_time``)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: the changed fields' new values, in the system's shape (as a read returns them)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    received_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        UniqueConstraint("system", "object", "external_id", "occurred_at"),
        Index("ix_notified_changes_received", "received_at"),
    )


#: room for the systems' names in ``match_keys.linked``
LINKED_LEN = 255


class MatchKey(Base):
    """A record's normalised key (tax id, domain, name …) that a record of another system may match on.

    ``linked`` names systems the record had a link in when its keys were written (see
    :func:`sync_engine.records.linked_text`): never one it has no link in (links are never removed), but
    maybe not every one. A record of system S cannot take a namesake already linked in S; a common name
    has thousands of namesakes, and checking each one's links is a random read of the links index. The
    ones this column already rules out are skipped without it. On SQLite the table is WITHOUT ROWID, so
    the column is read from the key's own index entry.
    """

    __tablename__ = "match_keys"

    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    canonical_id: Mapped[str] = mapped_column(String(CANONICAL_ID_LEN), primary_key=True)
    linked: Mapped[str] = mapped_column(String(LINKED_LEN), nullable=False, default="", server_default="")

    __table_args__ = (Index("ix_match_keys_record", "entity", "canonical_id"), {"sqlite_with_rowid": False})


class TriggerFiring(Base):
    """A trigger fired for a watched record: once per (trigger, record), ever.

    Committed with the record it created and that record's create write, so a
    second pass, a redelivered webhook or a deal won twice never creates twice.
    """

    __tablename__ = "trigger_firings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(128), nullable=False)
    source_entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    source_id: Mapped[str] = mapped_column(String(CANONICAL_ID_LEN), nullable=False)
    target_entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    #: the created record; null while the trigger could not build it (see ``error``)
    target_id: Mapped[str | None] = mapped_column(String(CANONICAL_ID_LEN))
    #: created | failed (its values could not be built: a dead letter says why; replay fires it again)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="created")
    error: Mapped[str | None] = mapped_column(Text)
    fired_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        UniqueConstraint("trigger", "source_id"),
        Index("ix_trigger_firings_target", "trigger", "target_id"),
    )
