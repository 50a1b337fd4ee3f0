"""Decisions for people: the review list (matches, conflicts, deletes) and the conflict log."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import (
    CANONICAL_ID_LEN,
    ENTITY_LEN,
    EXTERNAL_ID_LEN,
    Base,
    BigId,
    created_at_column,
    enum_type,
    system_column,
    updated_at_column,
)
from .enums import ReviewKind, ReviewStatus


class Review(Base):
    """Something the engine will not decide alone.

    ``details`` holds what a person needs: match candidates with scores, the
    conflicting values per system, the record a delete would remove.
    ``subject_key`` names what is being reviewed (e.g. ``match:account:zoho:4711``);
    at most one *open* review exists per subject, so repeated runs do not pile
    up copies of the same question.
    """

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[ReviewKind] = mapped_column(enum_type(ReviewKind, "review_kind"), nullable=False)
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    canonical_id: Mapped[str | None] = mapped_column(String(CANONICAL_ID_LEN))
    system: Mapped[str | None] = system_column(nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(EXTERNAL_ID_LEN))
    subject_key: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
    status: Mapped[ReviewStatus] = mapped_column(
        enum_type(ReviewStatus, "review_status"), default=ReviewStatus.OPEN, nullable=False
    )
    resolution: Mapped[dict[str, Any] | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
    resolved_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_reviews_status_kind_entity", "status", "kind", "entity"),
    )


_open = Review.status == ReviewStatus.OPEN.value
Index("uq_reviews_subject_key_open", Review.subject_key, unique=True, postgresql_where=_open, sqlite_where=_open)


class Conflict(Base):
    """One field changed differently in two systems since the base, and how it was settled."""

    __tablename__ = "conflicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), nullable=False)
    canonical_id: Mapped[str] = mapped_column(String(CANONICAL_ID_LEN), nullable=False)
    field: Mapped[str] = mapped_column(String(128), nullable=False)
    #: {"base": …, "zoho_cn": …, "fxiaoke": …}
    values: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    #: source_of_truth | latest_wins | manual | …, as configured
    policy: Mapped[str] = mapped_column(String(32), nullable=False)
    winner_system: Mapped[str | None] = system_column(nullable=True)
    #: wrapped as {"value": …} so that a resolved null differs from "not resolved yet".
    resolved_value: Mapped[dict[str, Any] | None]
    at: Mapped[datetime] = created_at_column()
    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("runs.id", ondelete="SET NULL"))
    review_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("reviews.id", ondelete="SET NULL"))

    __table_args__ = (
        Index("ix_conflicts_entity_canonical_id", "entity", "canonical_id"),
        Index("ix_conflicts_at", "at"),
    )
