"""The request id: the client's ``X-Request-Id`` when it is sane, else one made here.

It ties an access-log line to the upstream's own log (the id is sent on
upstream) and to what the client saw (it comes back on every answer, the
proxy's own errors included). A client's id is taken only if it is one
header of at most ``MAX_LENGTH`` characters from a small safe set (letters,
digits and ``-_.:+/=``, enough for UUIDs, W3C trace ids and base64), so
it can neither forge a log line nor smuggle anything upstream, and only if
it does not carry the token prefix (a token pasted into the wrong header
must not reach the log, the audit trail or the upstream); otherwise the
proxy makes one: a per-process random prefix and a counter, unique
without a system call per request.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Sequence

HEADER = "X-Request-Id"
NORMALISED = HEADER.lower()
MAX_LENGTH = 128
_SANE = re.compile(rf"[A-Za-z0-9_.:+/=-]{{1,{MAX_LENGTH}}}")

# auth.tokens.PREFIX (ops sits below auth; a test keeps the two equal).
TOKEN_PREFIX = "atpx_"  # noqa: S105 (a prefix, not a secret)

_PREFIX = secrets.token_hex(6) + "-"
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):x}"


def sane(value: str) -> bool:
    return _SANE.fullmatch(value) is not None and TOKEN_PREFIX not in value.lower()


def request_id(values: Sequence[str]) -> str:
    """The id for a request that sent these ``X-Request-Id`` values."""
    if len(values) == 1 and sane(values[0]):
        return values[0]
    return new_request_id()
