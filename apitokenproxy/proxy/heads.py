"""Which request heads the proxy serves, and which of those the fast lane keeps: one rule.

Both lanes ask ``refusal`` of every head they parse (the fast lane in
``fastlane.py``, the aiohttp lane in ``forwarder.py``), so a head that one lane
refuses the other refuses too, with the same words. ``stays_fast`` and the
limits below say what the fast lane serves itself; everything else it hands
to aiohttp from the request's first byte (``handoff.py``), which then applies
its own, equal, limits.

Pure: no I/O, no parser; the lanes pass what llhttp or aiohttp read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import BadRequest, MalformedRequest, UnservedVersion
from .framing import MALFORMED, ONLY_HTTP_1

# Methods the fast lane relays; any other (CONNECT, PROPFIND...) goes to aiohttp.
FAST_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Bodies the fast lane reads whole before it forwards them; larger ones stream in aiohttp.
FAST_BODY_MAX = 64 * 1024
# Heads larger than this, or with more headers, are aiohttp's to refuse with
# its own limits (8190-byte lines, as Tomcat's default), so both lanes agree.
MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
MAX_LINE = 8190
# A request with any of these needs what only the aiohttp lane does: de-chunking,
# 100 Continue after admission, a protocol switch.
HAND_OFF_HEADERS = frozenset({"transfer-encoding", "upgrade", "expect"})

ONE_HOST = "send exactly one Host header"
CHUNKED_ONLY = "only the chunked transfer coding is accepted in requests"


def refusal(
    version: str, hosts: int, codings: Sequence[str] = (), *, forwarded: bool = False
) -> BadRequest | None:
    """Why no lane serves a head of HTTP ``version`` with ``hosts`` Host headers and
    the transfer ``codings`` listed (lower case), or None if it may be served;
    ``forwarded``: the request is to go upstream.

    llhttp reads ``GET /x\\n`` as HTTP/0.9, which no client of Jira speaks.
    RFC 9112 §3.2: an HTTP/1.1 request without a Host is invalid, and no request
    may have two (aiohttp's parser calls both malformed; so does the fast lane).
    HTTP/1.0 may leave Host out of a request the proxy answers itself (a
    load balancer's ``OPTIONS / HTTP/1.0`` health check), not out of one it
    forwards: the upstream is sent HTTP/1.1. A coding other than ``chunked``
    would be dropped by aiohttp's de-chunking, corrupting the body.
    """
    if version not in ("1.0", "1.1"):
        return UnservedVersion(ONLY_HTTP_1)
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        return MalformedRequest(MALFORMED)
    if hosts == 0 and forwarded:
        return BadRequest(ONE_HOST)
    if codings and list(codings) != ["chunked"]:
        return BadRequest(CHUNKED_ONLY)
    return None


def stays_fast(method: str, version: str, upgrade: bool) -> bool:
    """Whether the fast lane may serve a head it accepted (``refusal`` said None):
    HTTP/1.1, one of ``FAST_METHODS``, no protocol switch. Any other (CONNECT's
    authority-form, PROPFIND, HTTP/1.0) is aiohttp's, before its target is read."""
    return version == "1.1" and not upgrade and method in FAST_METHODS


def path_stays_fast(path: str, served_here: Callable[[str], bool]) -> bool:
    """Whether the fast lane may serve a request for ``path`` (its target's path, in
    lower case). aiohttp decodes and normalises ``%``-escapes, ``//`` and dot
    segments before routing, so such paths go there, as do the paths the
    application serves itself (the token API, health, pages: ``served_here``).
    """
    if not path.startswith("/") or "%" in path or "//" in path or "/." in path:
        return False  # "*" too: OPTIONS * is aiohttp's (a 404), on either lane
    return not served_here(path)
