"""Access tokens shared by every crmsync process that uses the same credentials.

Each process used to fetch its own token. The APIs count those fetches: Fxiaoke's token
endpoint takes 10 calls a minute and none concurrently, so an eleventh worker started within
a minute was refused until the window passed; Zoho Accounts keeps 30 access tokens per
refresh token and deletes the oldest, so a 31st process (or the 31st short ``crmsync sync``
run of the hour) silently invalidated a token another process was still using.

A :class:`TokenCache` is where the processes of one deployment leave their token for the
others (the engine puts it in the state database, which they share anyway). The cache never
sees a usable token: :class:`TokenSharing` seals it with a key derived from the credentials
that obtained it, so only a process holding those credentials can read it back, and the row's
key is a hash of them. Fetching is single-flight across processes too: the first process to
find no live token claims the fetch for a few seconds, the others wait for its result.

The cache only ever saves calls. Whatever goes wrong with it (database unreachable, a sealed
value that does not open) the connector fetches its own token, as before.
"""
from __future__ import annotations

import abc
import asyncio
import base64
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

#: How long one process may hold the right to fetch before another may take it over (a crashed
#: fetcher must not block the others for longer than this).
FETCH_LEASE_SECONDS = 20.0
#: How often a waiting process looks for the token the fetcher stores.
POLL_SECONDS = 0.1
#: After the cache failed (unreachable, or a lock held too long), how long to fetch without it.
BYPASS_SECONDS = 30.0


@dataclass(slots=True, frozen=True)
class CachedToken:
    """What the cache holds for one key: a sealed token and when it expires (epoch seconds, wall clock)."""

    sealed: str
    expires_at: float


class TokenCache(abc.ABC):
    """Storage shared by processes. Keys are opaque hashes, values sealed; no method raises on contention.

    Methods are synchronous and short (one small transaction each); they run rarely, only when a
    process has no live token of its own.
    """

    @abc.abstractmethod
    def get(self, key: str) -> CachedToken | None: ...

    @abc.abstractmethod
    def put(self, key: str, token: CachedToken, owner: str) -> None:
        """Store the token and end ``owner``'s fetch claim on ``key``."""

    @abc.abstractmethod
    def claim_fetch(self, key: str, owner: str, seconds: float) -> bool:
        """True if ``owner`` may fetch now: no one else holds a live claim on ``key``; claims it until now + seconds."""

    @abc.abstractmethod
    def release_fetch(self, key: str, owner: str) -> None:
        """End ``owner``'s claim without storing anything (its fetch failed)."""


@dataclass(slots=True, frozen=True)
class SharedToken:
    """A token as the processes share it: the value, what comes with it, and its wall-clock expiry."""

    value: str
    expires_at: float
    #: what the token answer carried besides the token (Fxiaoke's ea or corpId, Zoho's api_domain)
    extra: dict[str, Any]

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


def _derive(parts: tuple[str, ...], purpose: bytes) -> bytes:
    digest = hashlib.sha256(purpose)
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big"))  # length-prefixed: ("ab", "c") is not ("a", "bc")
        digest.update(encoded)
    return digest.digest()


class TokenSharing:
    """One connector's use of a :class:`TokenCache`.

    ``identity`` names the credentials: everything that decides which token a fetch returns
    (token URL, app or client id, and the secrets). Two configured systems with the same
    credentials share a token; any difference gives another key and another sealing key.
    """

    def __init__(self, cache: TokenCache, owner: str, system_type: str, identity: tuple[str, ...]) -> None:
        self.cache = cache
        self.owner = owner
        self.key = f"{system_type}:{_derive(identity, b'crmsync token cache key').hex()[:40]}"
        self._aead = AESGCM(_derive(identity, b"crmsync token sealing key"))
        #: tokens taken from the cache (fetched by another process) and tokens this process fetched and stored
        self.adopted = 0
        self.stored = 0
        self.last_error: str | None = None
        self._bypass_until = 0.0

    # -- sealing ---------------------------------------------------------------------------
    def seal(self, token: SharedToken) -> CachedToken:
        nonce = os.urandom(12)
        payload = orjson.dumps({"value": token.value, "extra": token.extra})
        box = self._aead.encrypt(nonce, payload, self.key.encode())
        return CachedToken(base64.b64encode(nonce + box).decode("ascii"), token.expires_at)

    def open(self, cached: CachedToken) -> SharedToken | None:
        try:
            raw = base64.b64decode(cached.sealed)
            payload = orjson.loads(self._aead.decrypt(raw[:12], raw[12:], self.key.encode()))
            return SharedToken(str(payload["value"]), cached.expires_at, dict(payload.get("extra") or {}))
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None  # not sealed with these credentials (or damaged): as if absent

    # -- use -------------------------------------------------------------------------------
    def _guarded(self, what: str, call: Callable[[], Any], default: Any) -> Any:
        if time.monotonic() < self._bypass_until:
            return default
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the cache saves calls; it must never cost a token
            if self.last_error is None:
                log.warning("token cache unavailable (%s), fetching tokens without it: %s", what, exc)
            self.last_error = f"{type(exc).__name__}: {exc}"
            # Each call would fail the same way, after the same wait: leave the cache alone for a while.
            self._bypass_until = time.monotonic() + BYPASS_SECONDS
            return default

    def live(self, *, refused: str | None, usable: Callable[[SharedToken], bool]) -> SharedToken | None:
        """The token another process stored, if ``usable`` and not ``refused``."""
        cached = self._guarded("read", lambda: self.cache.get(self.key), None)
        if cached is None:
            return None
        token = self.open(cached)
        if token is None or token.value == refused or token.remaining() <= 0 or not usable(token):
            return None
        return token

    async def obtain(
        self,
        fetch: Callable[[], Awaitable[SharedToken]],
        *,
        refused: str | None = None,
        usable: Callable[[SharedToken], bool] = lambda _token: True,
    ) -> tuple[SharedToken, bool]:
        """A live token: one another process stored, else one ``fetch`` gets while this process holds the
        fetch claim (the others wait for it). Returns (token, fetched_here).

        ``refused``: a token the API just refused (or this process found stale), never taken back.
        ``usable``: the caller's own test of a stored token (enough life left for its refresh rule).
        """
        deadline = time.monotonic() + FETCH_LEASE_SECONDS * 2
        while True:
            token = self.live(refused=refused, usable=usable)
            if token is not None:
                self.adopted += 1
                return token, False
            claimed = self._guarded("claim", lambda: self.cache.claim_fetch(self.key, self.owner, FETCH_LEASE_SECONDS), None)
            if claimed:
                # Another process may have stored a token between the look above and the claim.
                token = self.live(refused=refused, usable=usable)
                if token is not None:
                    self._guarded("release", lambda: self.cache.release_fetch(self.key, self.owner), None)
                    self.adopted += 1
                    return token, False
            if claimed is None or claimed or time.monotonic() > deadline:
                # Claimed, or the cache is out of order, or the claimant has been silent too long: fetch.
                return await self._fetch_and_store(fetch, claimed=bool(claimed)), True
            await asyncio.sleep(POLL_SECONDS)  # another process is fetching: its token will be in the cache

    async def _fetch_and_store(self, fetch: Callable[[], Awaitable[SharedToken]], *, claimed: bool) -> SharedToken:
        try:
            token = await fetch()
        except BaseException:
            if claimed:
                self._guarded("release", lambda: self.cache.release_fetch(self.key, self.owner), None)
            raise
        if self._guarded("store", lambda: self.cache.put(self.key, self.seal(token), self.owner) or True, False):
            self.stored += 1
        return token

    def status(self) -> dict[str, Any]:
        return {"shared_tokens_adopted": self.adopted, "shared_tokens_stored": self.stored, "token_cache_error": self.last_error}
