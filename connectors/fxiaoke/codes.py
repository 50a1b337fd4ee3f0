"""What an Fxiaoke ``errorCode`` means for us.

Every answer is HTTP 200, so the body's ``errorCode`` is the only signal; the
docs say never to branch on ``errorMessage``. Codes from the reference notes
(codes.html transcriptions, the official demo) are grouped by what we do next.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable


class Outcome(enum.Enum):
    OK = "ok"
    #: system busy/error, timeouts, throttling: back off with jitter and try again
    RETRY = "retry"
    #: the token is unknown or expired: refresh it once and repeat the call
    REFRESH_TOKEN = "refresh_token"
    #: the day's purchased calls are used up: pause the system until 00:00 Beijing time
    QUOTA = "quota"
    #: the app or tenant cannot use the API at all: a person must act, nothing to retry
    ACCESS = "access"
    #: this request (usually one record) is wrong: dead-letter it with code and message
    PERMANENT = "permanent"


RETRYABLE = frozenset({-1, -2, 50009, 30004, 14001})
TOKEN_EXPIRED = frozenset({20016, 20005})
QUOTA_EXHAUSTED = frozenset({30002})
#: 15003 app without access, 20017 corpId not found / no token sent, 20020–20023 enterprise or
#: app not authorised, 30003 no OpenAPI quota purchased.
NO_ACCESS = frozenset({15003, 20017, 20020, 20021, 20022, 20023, 30003})
#: Codes the token endpoint answers for bad credentials (20006 appId/appSecret, 20015
#: permanentCode, 10006 observed for a bad or missing appSecret).
BAD_CREDENTIALS = frozenset({20006, 20015, 10006})

#: Per-interface throttling (which of the two the gateway sends is UNCONFIRMED).
THROTTLED = frozenset({30004, 14001})


def classify(code: int, *, extra_retryable: Iterable[int] = ()) -> Outcome:
    if code == 0:
        return Outcome.OK
    if code in RETRYABLE or code in set(extra_retryable):
        return Outcome.RETRY
    if code in TOKEN_EXPIRED:
        return Outcome.REFRESH_TOKEN
    if code in QUOTA_EXHAUSTED:
        return Outcome.QUOTA
    if code in NO_ACCESS:
        return Outcome.ACCESS
    # Unknown codes included: dead-lettering one record with its code is recoverable,
    # retrying an unknown failure forever is not.
    return Outcome.PERMANENT


def parse_code(value: object) -> int | None:
    """``errorCode`` as an int (some gateways send it as a string); None when absent or garbage."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
