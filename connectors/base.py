"""The connector interface: what the sync engine asks of every system.

A connector speaks its system's API and nothing else. It returns records with the
system's own field names and value formats (the mapping layer translates them),
reports per-record write outcomes in input order, and keeps its own paging,
auth, retries and rate limits out of the engine's sight.
"""
from __future__ import annotations

import abc
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from .tokens import TokenCache

WriteAction = Literal["create", "update", "upsert", "delete"]


@dataclass(slots=True)
class SourceRecord:
    """One record as the system returned it.

    ``modified_at`` is timezone-aware UTC (connectors convert epoch ms, offsets
    and ERP local time). ``deleted`` marks a tombstone: the system *said* the
    record is gone (deleted-records API, ``life_status: invalid``…); a record
    merely missing from a pull is never reported as deleted.
    """

    object: str
    external_id: str
    modified_at: datetime | None
    data: dict[str, Any]
    deleted: bool = False


@dataclass(slots=True)
class Page:
    """One page of a pull.

    ``resume`` is opaque connector state: passing it back as
    :attr:`PullRequest.resume` continues the pull right after this page, so an
    interrupted initial sync of 250,000 records does not restart from zero. The
    engine stores it with the cursor once the page's records are committed.
    """

    records: list[SourceRecord]
    resume: dict[str, Any] | None = None


@dataclass(slots=True)
class PullRequest:
    """What to pull.

    ``since`` is an *inclusive* lower bound on the modified time (the engine
    subtracts its overlap window and de-duplicates by (id, modified time, content hash)).
    ``None`` pulls everything. Records come sorted by modified time ascending
    wherever the API allows it.
    """

    object: str
    fields: Sequence[str] = ()
    since: datetime | None = None
    resume: dict[str, Any] | None = None
    include_deleted: bool = True
    #: ``since`` lies just past an instant the engine has *settled*: everything modified up to it was read
    #: after it had become visible (waited out :meth:`Connector.visibility_lag` as well), so the connector
    #: adds no look-back of its own and may treat the bound as strict.
    settled: bool = False


@dataclass(slots=True)
class WriteOp:
    """One record to write. ``key`` is the caller's id for the op, echoed back."""

    key: str
    action: WriteAction
    data: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    #: upsert only: the system fields that identify an existing record.
    match_fields: Sequence[str] | None = None


@dataclass(slots=True)
class WriteResult:
    """The outcome of one :class:`WriteOp`, in the same position as the op.

    On failure ``code`` / ``message`` are the system's own (``DUPLICATE_DATA``,
    ``201112011``, a Kingdee ``Errors`` entry, an interface-table error column);
    ``retryable`` says whether trying the same write later may succeed.
    """

    key: str
    ok: bool
    external_id: str | None = None
    modified_at: datetime | None = None
    code: str | None = None
    message: str | None = None
    retryable: bool = False
    #: True when the record is waiting for the ERP's import job (interface tables).
    pending: bool = False


#: :attr:`WriteResult.code` of an op the caller's check withdrew before it was sent (see :meth:`Connector.push_checked`).
WITHDRAWN = "WITHDRAWN"

#: The caller's last look before a call sends updates: given the updates that call carries, the keys of
#: those not to send after all. See :meth:`Connector.push_checked`.
WriteCheck = Callable[[Sequence["WriteOp"]], Awaitable[Collection[str]]]


def withdrawn(op: WriteOp) -> WriteResult:
    """The result of an op a :data:`WriteCheck` withdrew: nothing was sent."""
    return WriteResult(key=op.key, ok=False, code=WITHDRAWN, message="withdrawn by the caller's check; not sent")


@dataclass(slots=True)
class ObjectInfo:
    name: str
    label: str = ""
    custom: bool = False


@dataclass(slots=True)
class FieldInfo:
    """A field as the system describes it (powers ``crmsync discover`` and converters)."""

    name: str
    label: str = ""
    type: str = ""
    required: bool = False
    read_only: bool = False
    picklist: list[tuple[str, str]] | None = None  # (value, label)
    lookup_object: str | None = None


@dataclass(slots=True)
class Limits:
    """The system's documented per-call limits, as the connector enforces them."""

    page_size: int
    write_batch: int
    fetch_batch: int
    concurrency: int


@dataclass(slots=True)
class ChangeHint:
    """A webhook's news: these ids of this object changed. The engine fetches them."""

    object: str
    ids: list[str]
    event: str = "update"  # create | update | delete | unknown
    occurred_at: datetime | None = None
    #: id -> the changed fields' new values, in the system's shape (as a read returns them), when the
    #: notification carries them (Zoho with ``return_affected_field_values``). Still a hint for the
    #: record's current state (it is fetched), but evidence of an edit that a write of ours landing just
    #: after it overwrote: no read will show that edit again (see ``sync_engine.reconcile``).
    values: dict[str, dict[str, Any]] | None = None


@dataclass(slots=True)
class WebhookDelivery:
    """A verified delivery: what changed, its dedupe key, and the reply the sender expects."""

    dedupe_key: str
    hints: list[ChangeHint]
    reply_body: str | dict[str, Any] = "success"
    reply_status: int = 200


@dataclass(slots=True)
class NotificationChannel:
    """A push channel registered with the system (Zoho watch)."""

    channel_id: str
    token: str
    objects: list[str]
    expires_at: datetime


class Connector(abc.ABC):
    """One configured system instance (``systems.<name>`` in the config).

    Instances are shared by every flow and by webhook-triggered work in a
    process, so the connector's rate-limit budget is shared too.
    """

    type: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name

    # -- life cycle ----------------------------------------------------
    async def open(self) -> None:  # noqa: B027 - optional hook
        """Open network resources. Called once before the first call."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""

    async def __aenter__(self):
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def share_tokens(self, cache: TokenCache, owner: str) -> None:  # optional hook
        """Take access tokens from ``cache`` and leave fetched ones there, for the deployment's other
        processes (see :mod:`connectors.tokens`). ``owner`` names this process. A connector whose
        system has no fetched tokens, or whose tokens cannot be shared, ignores it."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Prove the credentials work (one cheap call); raise :class:`AuthError` if not."""

    @property
    @abc.abstractmethod
    def limits(self) -> Limits: ...

    # -- reading -------------------------------------------------------
    @abc.abstractmethod
    def pull(self, request: PullRequest) -> AsyncIterator[Page]:
        """Stream pages of records changed since ``request.since`` (inclusive)."""

    @abc.abstractmethod
    async def fetch(self, object: str, ids: Sequence[str], fields: Sequence[str] = ()) -> list[SourceRecord]:
        """Current state of these ids. Ids the system reports deleted come back as tombstones;
        ids it does not know are simply absent."""

    # -- writing -------------------------------------------------------
    @abc.abstractmethod
    async def push(self, object: str, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply the ops, batching at the system's limit; one result per op, in order.

        A failure of one record never raises: it is a ``WriteResult(ok=False)``.
        Raises only when the whole call cannot be made (auth, quota, outage).
        """

    async def push_checked(self, object: str, ops: Sequence[WriteOp], check: WriteCheck) -> list[WriteResult]:
        """:meth:`push`, with the caller's last look at the target before each call that sends updates.

        No API offers a conditional write, so the caller reads the records it is about to update once
        more: a user's edit of one of the fields would otherwise be overwritten. That read is only as
        good as it is recent. ``check`` is awaited with the updates a call carries once that call holds
        whatever it waits for (its concurrency slot, its rate-limit permit, the record's turn), right
        before it is sent, and returns the keys of the updates not to send after all; those come back as
        :func:`withdrawn` results, the other ops as :meth:`push` answers them. An exception from
        ``check`` fails the call as a whole (nothing more is sent).

        This default checks every update once, before :meth:`push`: right for a connector that sends at
        once. One whose calls wait (slots, rate limits, one call per record) overrides it so the check
        runs at the last moment."""
        updates = [op for op in ops if op.action == "update"]
        out = set(await check(updates)) if updates else set()
        sendable = [op for op in ops if op.key not in out]
        results = iter(await self.push(object, sendable) if sendable else [])
        return [withdrawn(op) if op.key in out else next(results) for op in ops]

    def visibility_lag(self, object: str) -> timedelta:
        """How long after its modified time a record may still become visible, beyond the engine's
        ``sync.overlap`` (a connector that looks back further on its own, for slow commits, says so
        here, and the engine waits that much longer before it settles an instant)."""
        return timedelta(0)

    def timestamp_resolution(self, object: str) -> timedelta:
        """The step of the object's modified times. Two edits within one step share a modified time, so
        the engine settles an instant only once a step has passed since a pull saw it (a later edit in
        that step would otherwise sort at an instant no pull reads again). Whole seconds unless a
        connector says finer (Zoho's ``Modified_Time``, Kingdee's ``FModifyDate``, most SQL columns)."""
        return timedelta(seconds=1)

    # -- discovery -----------------------------------------------------
    @abc.abstractmethod
    async def list_objects(self) -> list[ObjectInfo]: ...

    @abc.abstractmethod
    async def describe(self, object: str) -> list[FieldInfo]: ...

    # -- notifications (optional) -------------------------------------
    supports_notifications: ClassVar[bool] = False

    async def enable_notifications(
        self, objects: Sequence[str], notify_url: str, channel_id: str, token: str, expires_at: datetime
    ) -> NotificationChannel:
        raise NotImplementedError(f"{self.type} has no notification channels")

    async def disable_notifications(self, channel_id: str) -> None:
        raise NotImplementedError(f"{self.type} has no notification channels")

    # -- ops -----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Auth state, API calls and errors, rate-limit state, quota, pause — for ``/status``.

        Never contains a secret.
        """
        return {}


class WebhookVerifier(abc.ABC):
    """Checks one system's webhook deliveries. Pure: no I/O, so it is fast and testable.

    ``channel_token`` looks up the per-channel secret we generated (Zoho watch);
    systems with a static shared secret ignore it.
    """

    @abc.abstractmethod
    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        channel_token: Callable[[str], str | None] = lambda _cid: None,
    ) -> WebhookDelivery:
        """Return the delivery, or raise :class:`connectors.errors.WebhookRejected`."""

    def stored_body(self, body: bytes) -> str:
        """The body as the inbox keeps it, after :meth:`verify` accepted it.

        A sender that puts a credential in the body (Zoho's channel ``token``) overrides this to
        replace it: the inbox is for tracing deliveries, and verification has already happened.
        """
        return body.decode("utf-8", "replace")


class CallObserver(abc.ABC):
    """Told about every API call a connector makes (metrics, call counts)."""

    @abc.abstractmethod
    def on_call(self, system: str, endpoint: str, status: str, seconds: float) -> None: ...


class NullObserver(CallObserver):
    def on_call(self, system: str, endpoint: str, status: str, seconds: float) -> None:
        pass


@dataclass(slots=True)
class ConnectorPlugin:
    """What a connector package registers under the ``crmsync.connectors`` entry-point group.

    ``settings_model`` validates ``systems.<name>`` (every key except ``type``).
    ``emulator_main`` is a typer-style command function run by
    ``crmsync emulator <type>``; ``webhook_verifier`` builds a verifier from the settings.
    """

    type: str
    description: str
    settings_model: type[BaseModel]
    create: Callable[..., Connector]  # (name, settings, observer) -> Connector
    webhook_verifier: Callable[[str, BaseModel], WebhookVerifier] | None = None
    emulator_main: Callable[..., Any] | None = None
