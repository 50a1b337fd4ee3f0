"""Typed failures shared by every connector.

The engine decides what to do from the *type* of a failure, never from its text:
fix the credentials, retry later, wait for the quota, or dead-letter one record.
"""
from __future__ import annotations

from datetime import datetime


class ConnectorError(Exception):
    """Base of every failure a connector raises.

    ``code`` is the system's own error code (``INVALID_DATA``, ``20016``,
    ``MsgCode 1``…) so the engine and ops can act on it; ``message`` is the
    system's message, already free of secrets.
    """

    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, system: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.system = system

    def __str__(self) -> str:  # pragma: no cover - trivial
        prefix = f"[{self.system}] " if self.system else ""
        code = f" ({self.code})" if self.code else ""
        return f"{prefix}{self.message}{code}"


class ConnectorConfigError(ConnectorError):
    """The settings cannot work (unknown object, bad host). A person must fix the config."""


class AuthError(ConnectorError):
    """Credentials were refused. Retrying will not help; status shows the system as unauthorised."""


class TransientError(ConnectorError):
    """Network trouble, 5xx, timeouts, throttling that outlived our retries. Try again later."""

    retryable = True


class RateLimited(TransientError):
    """The system asked us to slow down and our retries ran out."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class QuotaExhausted(ConnectorError):
    """A daily/rolling quota is used up: the whole system pauses until ``until``."""

    retryable = True

    def __init__(self, message: str, *, until: datetime, **kw) -> None:
        super().__init__(message, **kw)
        self.until = until


class RecordRejected(ConnectorError):
    """The system refused one record for a reason that retrying will not change.

    Used for single-record calls; batch calls report per-record failures in
    :class:`connectors.base.WriteResult` instead of raising.
    """


class WebhookRejected(Exception):
    """A webhook delivery failed verification or is malformed.

    ``status`` is the HTTP status the receiver answers with (400, 401, 404, 413).
    ``reason`` is safe to log and to count in metrics; it never echoes secrets.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
