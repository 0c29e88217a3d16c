"""What the proxy writes on the wire: heads, lengths and chunks it frames itself.

Nothing a client or the upstream wrote about framing is copied. The request
the upstream receives carries exactly one ``Content-Length`` the proxy
counted (or is chunked by the proxy); the response a client receives carries
the proxy's own ``Content-Length`` or chunked framing, its status line uses
the standard reason phrase, and HEAD, 1xx, 204 and 304 answers never carry a
body. Whatever ``Connection`` names, these framing headers are the proxy's.

Everything here is pure: bytes in, bytes out, errors raised for the caller to
answer with.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from http import HTTPStatus

from ..errors import SERVER, BadRequest, UpstreamInvalid, error_body

Headers = list[tuple[str, str]]

_REASONS = {status.value: status.phrase for status in HTTPStatus}
# RFC 9112 §3.2 with RFC 3986: a request-target is visible ASCII, no spaces;
# anything else must be percent-encoded.
_TARGET = re.compile(rb"[\x21-\x7e]+")
_ABSOLUTE = re.compile(rb"(?i)https?://[^/?#]*")
# The proxy writes these itself; a message's own copies never cross.
FRAMING = frozenset({"content-length", "transfer-encoding"})
# Their lengths: a name of another length is none of them (lower() keeps the
# length of every Latin-1 name), and is not lowered to be compared.
_FRAMING_LENGTHS = frozenset(len(name) for name in FRAMING)
LAST_CHUNK = b"0\r\n\r\n"
# The answers to what cannot be parsed: fixed words, never the parser's own
# message, which quotes the offending bytes (a token, a password).
MALFORMED = "the request is not valid HTTP/1.1"
ONLY_HTTP_1 = "only HTTP/1.0 and HTTP/1.1 are served"
# A header line from a (name, value) pair, without a Python frame per header:
# heads are written on every request and every answer.
_FIELD = ": ".join
# Methods whose requests carry a body by definition: always sent with a length.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def reason(status: int) -> str:
    return _REASONS.get(status, "")


def origin_form(method: str, target: bytes) -> str:
    """The request-target to send upstream, or BadRequest if it is not one.

    Control bytes, whitespace and raw bytes above 0x7E are refused: servers
    behind the proxy (Tomcat) split a request line on tabs and end it on a
    bare LF, so such a target could mean two things on the two sides. An
    absolute-form target (``http://host/path``), which proxies in front may
    send, is reduced to its path and query.
    """
    if not _TARGET.fullmatch(target):
        raise BadRequest(
            "the request-target must be visible ASCII without spaces; percent-encode other bytes"
        )
    if target.startswith(b"/"):
        return target.decode("ascii")
    if target == b"*" and method == "OPTIONS":
        return "*"
    absolute = _ABSOLUTE.match(target)
    if absolute is not None:
        rest = target[absolute.end() :]
        if rest.startswith(b"?"):
            rest = b"/" + rest
        return (rest or b"/").partition(b"#")[0].decode("ascii")
    raise BadRequest("the request-target must be a path such as /rest/api/2/myself")


def request_head(
    method: str, target: str, headers: Sequence[tuple[str, str]], body_length: int | None
) -> bytes:
    """The head of the request sent upstream.

    ``headers`` come from ``headers.Injection.rewrite``, which has dropped every
    framing header the client sent, in any spelling; ``body_length`` is the
    exact body size the proxy will send, or None for a body of unknown
    length, which the proxy then chunks itself.
    """
    lines = [f"{method} {target} HTTP/1.1", *map(_FIELD, headers)]
    if body_length is None:
        lines.append("Transfer-Encoding: chunked")
    elif body_length or method in _BODY_METHODS:
        lines.append(f"Content-Length: {body_length}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class Body(enum.Enum):
    """How a response body is delimited, as the upstream sent it."""

    NONE = "none"  # HEAD, 1xx, 204, 304: no body whatever the headers say
    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"  # until the upstream closes: never reusable


# The members as module constants, for the data path: reading a member off an
# Enum class goes through its metaclass, and costs twice an identity test.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = Body.NONE, Body.LENGTH, Body.CHUNKED, Body.CLOSE


def response_body(
    request_method: str, status: int, headers: Sequence[tuple[str, str]]
) -> tuple[Body, int | None]:
    """How the upstream delimits this response's body, and its declared length.

    The upstream's head has already passed llhttp, which refuses conflicting
    or malformed lengths; what is left to decide is the meaning.
    """
    length: int | None = None
    chunked: bool | None = None
    for name, value in headers:
        if len(name) not in _FRAMING_LENGTHS:
            continue  # cheaper than lowering every name to compare it
        key = name.lower()
        if key == "content-length":
            try:
                length = int(value.strip(" \t"))
            except ValueError as exc:
                raise UpstreamInvalid(
                    "the upstream answered with an invalid Content-Length"
                ) from exc
        elif key == "transfer-encoding":
            chunked = value.rsplit(",", 1)[-1].strip(" \t").lower() == "chunked"
    if request_method == "HEAD" or status < 200 or status in (204, 304):
        return NO_BODY, length if status != 204 else None
    if chunked is not None:
        return (CHUNKED if chunked else UNTIL_CLOSE), None
    if length is not None:
        return LENGTH, length
    return UNTIL_CLOSE, None


def response_head(
    status: int,
    headers: Sequence[tuple[str, str]],
    body: Body,
    length: int | None,
    *,
    close: bool,
) -> bytes:
    """The head the client receives; a body of unknown length is chunked by the proxy.

    The values are written as they are: the upstream's passed llhttp, which
    refuses a control byte in a header value (a bare CR or LF would split one
    header into two; tests/proxy/test_upstream.py tries each on both lanes),
    and the proxy's own (a request id, a token's expiry) are made of safe
    characters.
    """
    kept = [h for h in headers if len(h[0]) not in _FRAMING_LENGTHS or h[0].lower() not in FRAMING]
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}", *map(_FIELD, kept)]
    if body is LENGTH or (body is NO_BODY and length is not None):
        lines.append(f"Content-Length: {length}")
    elif body is CHUNKED or body is UNTIL_CLOSE:
        lines.append("Transfer-Encoding: chunked")
    if close:
        lines.append("Connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def error(
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[str, str]] = (),
    *,
    head_only: bool,
    close: bool,
) -> bytes:
    """A whole JSON error answer; its body left out when answering HEAD."""
    body = error_body(status, code, message)
    lines = [
        f"HTTP/1.1 {status} {reason(status)}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Server: {SERVER}",
        *(f"{k}: {v}" for k, v in headers),
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body
