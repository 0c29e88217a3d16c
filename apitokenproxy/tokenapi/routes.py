"""The token-management REST API, path for path and field for field the seed's.

Base path: ``{context}/rest/de.resolution.apitokenauth/latest``. One
resource is ours, not the seed's: ``GET /audit``, the audit trail for
sysadmins, paged like ``tokensByFilter``. ``TokenApi``'s
handlers only translate HTTP to ``TokenService`` calls and back; what a
request may carry is checked in ``inputs.py``, what an answer looks like is
``shapes.py``. ``ROUTES`` is the one table of paths, which the application
registers and the fast lane consults. Every answer a handler makes says
``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..auth.callers import Authenticator, Caller
from ..auth.csrf import XSRF_HEADER, csrf_refusal
from ..errors import Forbidden, PayloadTooLarge, ScopeRefused
from ..live import Live
from ..ops.exchange import exchange_of
from ..proxy.client import client_of
from ..proxy.pacing import PacedBody
from .inputs import (
    parse_audit_query,
    parse_create,
    parse_filter_query,
    parse_json_object,
    parse_patch,
    parse_rotate,
    parse_token_id,
    wants_origin,
)
from .paging import envelope, offset
from .service import MANAGE_WITH, TokenService
from .shapes import audit_entry, current, filtered, listed, rotated

BASE_PATH = "/rest/de.resolution.apitokenauth/latest"
MAX_BODY_BYTES = 64 * 1024

# (method, path under BASE_PATH, TokenApi handler)
ROUTES = (
    ("POST", "/user/token", "create_token"),
    ("GET", "/user/token", "list_tokens"),
    ("GET", "/user/token/", "list_tokens"),
    ("GET", "/user/token/current", "current_token"),
    ("PATCH", "/user/token/{id}", "rename_token"),
    ("POST", "/user/token/{id}/rotate", "rotate_token"),
    ("DELETE", "/user/token/{id}", "delete_token"),
    ("DELETE", "/user/token/deleteAllFor/{userKey}", "delete_all_for"),
    ("GET", "/user/tokensByFilter", "tokens_by_filter"),
    ("GET", "/audit", "audit"),
)


# Create and rotate answer with a plaintext token, the others with tokens, their
# owners and addresses: no cache may keep any of them. A browser session's call
# has no Authorization header, which is all that keeps a shared cache from storing
# an answer; Pragma is for HTTP/1.0 caches.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(data: Any, status: int = 200) -> web.Response:
    # Sorted keys: the seed's examples list fields alphabetically.
    return web.Response(
        status=status,
        text=json.dumps(data, sort_keys=True),
        content_type="application/json",
        headers=NO_STORE,
    )


@dataclass
class TokenApi:
    """The handlers, with what they need handed in."""

    service: TokenService
    authenticator: Authenticator
    live: Live  # the trusted proxies and a body's pace (proxy/pacing.py)
    context_path: str
    public_url: str  # empty: taken from each request

    async def _body(self, request: web.Request) -> bytes:
        """The request body, read at the pace both lanes hold bodies to, within MAX_BODY_BYTES."""
        body = await PacedBody(request.content, self.live.now.client).read_up_to(MAX_BODY_BYTES)
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        return body

    async def _caller(self, request: web.Request) -> Caller:
        view = client_of(request, self.live.now.trusted)
        try:
            caller = await self.authenticator.caller(
                request.headers.getall("Authorization", []),
                view.address,
                request.method,
                cookie="; ".join(request.headers.getall("Cookie", [])) or None,
                request_id=exchange_of(request).request_id,
            )
        except ScopeRefused as exc:
            # Here every call but a read manages tokens: say what may do it.
            raise ScopeRefused(f"{exc.message}; {MANAGE_WITH}") from exc
        if caller.method == "session":
            refusal = csrf_refusal(
                request.method,
                request.headers.get(XSRF_HEADER),
                request.headers.get("Origin"),
                self.own_origin(request),
            )
            if refusal is not None:
                raise Forbidden(refusal)
        exchange_of(request).authenticated(caller.method, None, caller.user.name, caller.token_id)
        return caller

    def own_origin(self, request: web.Request) -> str:
        """``scheme://host[:port]`` as clients reach the proxy."""
        if self.public_url:
            parts = urlsplit(self.public_url)
            return f"{parts.scheme}://{parts.netloc}"
        view = client_of(request, self.live.now.trusted)
        return f"{view.proto}://{view.host}"

    async def create_token(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        spec = parse_create(
            parse_json_object(await self._body(request)), self.service.max_description_length
        )
        created = await self.service.create(caller, spec)
        return json_response({**filtered(created.record), "plainTextToken": created.plaintext})

    async def rename_token(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        token_id = parse_token_id(request.match_info["id"])
        change = parse_patch(
            parse_json_object(await self._body(request)), self.service.max_description_length
        )
        return json_response(listed(await self.service.change(caller, token_id, change)))

    async def rotate_token(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        token_id = parse_token_id(request.match_info["id"])
        done = await self.service.rotate(caller, token_id, parse_rotate(await self._body(request)))
        return json_response({**rotated(done.record), "plainTextToken": done.plaintext})

    async def current_token(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        return json_response(current(*await self.service.current(caller)))

    async def list_tokens(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        origin = wants_origin(request.query)
        return json_response(
            [listed(r, origin=origin) for r in await self.service.list_own(caller)]
        )

    async def delete_token(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        await self.service.delete(caller, parse_token_id(request.match_info["id"]))
        return web.Response(status=204, headers=NO_STORE)

    async def delete_all_for(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        count = await self.service.delete_all_for(caller, request.match_info["userKey"])
        return json_response({"deletedTokens": count})

    async def tokens_by_filter(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        query = parse_filter_query(request.query)
        origin = wants_origin(request.query)
        page = await self.service.find_by_expiry(
            caller,
            None if query.not_valid_after == -1 else query.not_valid_after,
            offset(query.page, query.limit),
            query.limit,
            owner_key=query.user_key,
            description=query.description,
        )
        return json_response(
            envelope(
                [filtered(r, origin=origin) for r in page.items],
                total=page.total,
                page=query.page,
                limit=query.limit,
                base_url=self.public_url or self._request_base_url(request),
                path=BASE_PATH + "/user/tokensByFilter",
                params=query.params(),
            )
        )

    async def audit(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        wanted = parse_audit_query(request.query)
        page = await self.service.audit(
            caller, wanted.query, offset(wanted.page, wanted.limit), wanted.limit
        )
        params: list[tuple[str, str | int]] = []
        if wanted.query.user_key is not None:
            params.append(("userKey", wanted.query.user_key))
        if wanted.query.since is not None:
            params.append(("since", wanted.query.since))
        return json_response(
            envelope(
                [audit_entry(e) for e in page.items],
                total=page.total,
                page=wanted.page,
                limit=wanted.limit,
                base_url=self.public_url or self._request_base_url(request),
                path=BASE_PATH + "/audit",
                params=params,
            )
        )

    def _request_base_url(self, request: web.Request) -> str:
        view = client_of(request, self.live.now.trusted)
        return f"{view.proto}://{view.host}{self.context_path}"
