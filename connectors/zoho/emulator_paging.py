"""Page tokens of the emulated Get Records API.

A token is bound to the request's other parameters (changing them answers
``TOKEN_BOUND_DATA_MISMATCH``), lives 24 hours (``EXPIRED_VALUE``) and one token
sequence serves at most 100,000 records (``PAGINATION_LIMIT_EXCEEDED``). Whether a
token continues after the last record it served ("keyset", robust to records
moving while someone pages) or at a fixed offset is UNCONFIRMED, hence a switch.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MAX_TOKENS = 20_000


@dataclass(slots=True)
class TokenState:
    signature: tuple[Any, ...]
    offset: int  # where the next page starts (offset mode)
    last: tuple[int, int] | None  # sort key of the last record served (keyset mode)
    served: int  # records this sequence has served so far
    expires: float


class PageTokens:
    def __init__(self) -> None:
        self._tokens: OrderedDict[str, TokenState] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def issue(self, state: TokenState) -> str:
        token = secrets.token_hex(20)
        with self._lock:
            self._tokens[token] = state
            while len(self._tokens) > MAX_TOKENS:
                self._tokens.popitem(last=False)
        return token

    def get(self, token: str) -> TokenState | None:
        with self._lock:
            return self._tokens.get(token)

    def expire_all(self) -> None:
        with self._lock:
            for state in self._tokens.values():
                state.expires = 0.0

    @staticmethod
    def expired(state: TokenState) -> bool:
        return state.expires <= time.time()
