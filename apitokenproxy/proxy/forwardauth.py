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

A token's scope and allowed networks apply as on the data path.
"""

from __future__ import annotations

from aiohttp import web

from ..auth.gate import Gate
from ..auth.grant import SAFE_METHODS
from .client import Network, client_of
from .forwarder import admit
from .headers import Injection

FORWARD_AUTHORIZATION = "X-Apitokenproxy-Authorization"


class ForwardAuth:
    def __init__(self, gate: Gate, injection: Injection, trusted: tuple[Network, ...]) -> None:
        self._gate = gate
        self._injection = injection
        self.trusted = trusted

    async def handle(self, request: web.Request) -> web.Response:
        """Admit or refuse; refusals raise the ProxyError the error middleware answers."""
        authorization = request.headers.getall("Authorization", [])
        admission = await admit(
            self._gate, request, client_of(request, self.trusted).address, _method(request)
        )
        headers = {self._injection.user_header: "", FORWARD_AUTHORIZATION: ""}
        if admission.user_name is not None:
            headers.update(self._injection.identity(admission.user_name))
        headers.update(admission.response_headers)
        if not admission.strip_authorization and authorization:
            headers[FORWARD_AUTHORIZATION] = authorization[0]
        return web.Response(status=200, headers=headers)


def _method(request: web.Request) -> str:
    """The method a read-scoped token is judged by: the subrequest's own (nginx and Envoy
    send the original method) unless ``X-Forwarded-Method`` names one that is not a read
    (Traefik and Caddy send GET and say the original there). Never the more lenient of
    the two, so a client's own copy of the header cannot turn a write into a read."""
    for claimed in request.headers.getall("X-Forwarded-Method", []):
        if claimed.upper() not in SAFE_METHODS:
            return claimed.upper()
    return request.method
