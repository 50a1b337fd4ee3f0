"""Per-system runtime state: push-notification channels, auth, pauses and quota, shared access tokens."""
from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import (
    KEY_LEN,
    SYSTEM_LEN,
    Base,
    BigId,
    created_at_column,
    system_column,
    updated_at_column,
)


class Channel(Base):
    """A notification channel registered with a system (Zoho ``/actions/watch``).

    ``token`` is the per-channel secret the engine generated and the system
    echoes in every notification. It is stored in clear because the receiver
    must compare the echoed value with it (use :meth:`token_matches`, which
    compares in constant time); a hash would not let us re-send it when the
    channel is renewed. It never appears in ``repr()`` and must never be
    logged or returned by an ops endpoint.
    """

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    system: Mapped[str] = system_column()
    channel_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    token: Mapped[str] = mapped_column(String(255), nullable=False)
    objects: Mapped[list[Any]] = mapped_column(default=list, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (Index("ix_channels_system_expires_at", "system", "expires_at"),)

    def token_matches(self, presented: str | None) -> bool:
        if presented is None:
            return False
        return hmac.compare_digest(self.token.encode("utf-8"), presented.encode("utf-8"))

    def __repr__(self) -> str:
        return f"<Channel {self.system}:{self.channel_id} expires {self.expires_at}>"


class SystemState(Base):
    """Auth state, pause and quota of one configured system (``systems.<name>``)."""

    __tablename__ = "system_state"

    system: Mapped[str] = mapped_column(String(SYSTEM_LEN), primary_key=True)
    #: ok | refreshing | expired | failed (hard failure: fix credentials) | unknown
    auth_state: Mapped[str] = mapped_column(String(16), default="unknown", nullable=False)
    auth_error: Mapped[str | None] = mapped_column(Text)
    paused_until: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(Text)
    #: e.g. {"limit": 50000, "remaining": 41234, "resets_at": "…"}
    quota: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = updated_at_column()


class SharedTokenRow(Base):
    """An access token the deployment's processes share (see :mod:`connectors.tokens`).

    ``key`` is a hash of the credentials and ``sealed`` is encrypted with a key derived from
    them: the state database alone does not give anyone a usable token. ``fetch_owner`` and
    ``fetch_until`` are the claim of the one process fetching a new token while the others wait.
    Times are epoch seconds of the processes' wall clocks.
    """

    __tablename__ = "shared_tokens"

    key: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    sealed: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[float | None] = mapped_column(Float)
    fetch_owner: Mapped[str | None] = mapped_column(String(KEY_LEN))
    fetch_until: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = updated_at_column()
