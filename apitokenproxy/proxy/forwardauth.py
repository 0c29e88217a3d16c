"""The answer to a front proxy's authorization subrequest: nginx ``auth_request``,
Traefik ``forwardAuth``, Caddy ``forward_auth``, Envoy's HTTP ``ext_authz``.

For sites that already run a reverse proxy. The front proxy sends the
client's request headers to ``/__apitokenproxy/auth``; the answer is the
data path's own decision (``gate.Gate``, the same throttling and password
policy): 200 with the headers the front proxy copies onto the request it
forwards, or the proxy's own 401/429/503 JSON, which the front proxy passes
back. On a 200:

- ``X-Forwarded-User`` (``upstream.user_header``) carries the token owner's
  name, written as ``upstream.user_header_encoding`` says, and is present
  only for a token: an empty value means "no user", and the front proxy must
  set the header from it in every case, so a client's own copy never passes;
- ``X-Apitokenproxy-Authorization`` carries the ``Authorization`` value to
  forward: empty for a token (it must not reach the upstream's logs), the
  client's own for a password or a scheme the proxy does not handle;
- ``X-Apitokenproxy-Token-Expiration``, for a token that expires, says when
  (``auth/grant.py``), for the front proxy to copy onto its answer.

A token's scope and allowed networks apply as on the data path. The scope
needs the client's method in ``X-Forwarded-Method`` and a WebSocket handshake's
``Upgrade`` header passed on (nginx sends neither by itself: see
docs/front-proxies.md); a read token is refused when the method is not said.

The client's request-target, which the front proxy names in ``X-Original-URI``
(nginx's convention, set in its configuration) or ``X-Forwarded-Uri`` (Traefik
and Caddy send it), is held to the data path's rule for a password in the
query (``credentials.password_in_query``, applied by the gate). Where that rule
can refuse (``auth.allow_password_basic_auth`` off or ``auth.allowed_networks``
set), a subrequest that names no target is refused (403, ``uri_missing``):
its query may log a user in at the upstream, unseen.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from ..auth.credentials import password_in_query
from ..auth.gate import Gate
from ..auth.grant import SAFE_METHODS
from ..errors import UnsaidTarget
from ..live import Live
from .client import client_of
from .forwarder import admit
from .headers import Injection

FORWARD_AUTHORIZATION = "X-Apitokenproxy-Authorization"
# Where front proxies name the client's request-target: nginx's convention, then
# Traefik's and Caddy's (docs/front-proxies.md shows each configuration).
TARGET_HEADERS = ("X-Original-URI", "X-Forwarded-Uri")


UNSAID_TARGET = (
    "the front proxy did not say the request's URI: set X-Original-URI "
    "(nginx: proxy_set_header X-Original-URI $request_uri) or X-Forwarded-Uri"
)


class ForwardAuth:
    def __init__(self, gate: Gate, injection: Injection, live: Live) -> None:
        self._gate = gate
        self._injection = injection
        self._live = live

    async def handle(self, request: web.Request) -> web.Response:
        """Admit or refuse; refusals raise the ProxyError the error middleware answers."""
        authorization = request.headers.getall("Authorization", [])
        said = [v for name in TARGET_HEADERS for v in request.headers.getall(name, ())]
        if not said and self._gate.judges_query:
            raise UnsaidTarget(UNSAID_TARGET)
        admission = await admit(
            self._gate,
            request,
            client_of(request, self._live.now.trusted).address,
            _method(request),
            strictest_target([*said, request.raw_path]),
        )
        headers = {self._injection.user_header: "", FORWARD_AUTHORIZATION: ""}
        if admission.user_name is not None:
            headers.update(self._injection.identity(admission.user_name))
        headers.update(admission.response_headers)
        if not admission.strip_authorization and authorization:
            headers[FORWARD_AUTHORIZATION] = authorization[0]
        return web.Response(status=200, headers=headers)


def strictest_target(targets: Sequence[str]) -> str:
    """The request-target to judge among those said (the front proxy's, a client's
    own copy, the subrequest's own): one with a password in its query if any is,
    so no value can hide another's password; else the first."""
    return next((target for target in targets if password_in_query(target)), targets[0])


# Said of a request whose method the front proxy did not pass on: never a read.
UNKNOWN_METHOD = "a request whose method the front proxy did not say (set X-Forwarded-Method)"


def _method(request: web.Request) -> str:
    """The method a read-scoped token is judged by: the strictest of ``X-Forwarded-Method``
    (Traefik and Caddy send it; nginx and Envoy must be told to) and the subrequest's own.

    nginx's auth subrequest is always a GET, so a subrequest's own method proves
    nothing: without ``X-Forwarded-Method`` a read token is refused, whatever the
    client asked for. A client's own copy of the header cannot turn a write into a
    read either, since the strictest method counts."""
    claimed = [method.upper() for method in request.headers.getall("X-Forwarded-Method", [])]
    for method in (*claimed, request.method):
        if method not in SAFE_METHODS:
            return method
    return claimed[0] if claimed else UNKNOWN_METHOD
