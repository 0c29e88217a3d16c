"""The pages' HTTP side: who may see which page, and the headers that keep them safe.

Each page is a static HTML file from ``static/`` with a few values filled in
(escaped) as ``data-`` attributes of ``<body>``, which the page's script
reads; the script itself and the style sheet are static files. Every answer
carries a strict Content-Security-Policy (scripts and styles from this
origin only, no inline script, no framing) and ``Cache-Control: no-store``,
since a new token appears on these pages.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from importlib import resources
from urllib.parse import quote

from aiohttp import web

from ..auth.callers import Authenticator, Caller
from ..config import PagesConfig, TokensConfig
from ..errors import ProxyError, Unauthorized
from ..tokenapi.routes import BASE_PATH

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

ASSETS = {
    "pages.css": "text/css",
    "common.js": "text/javascript",
    "tokens.js": "text/javascript",
    "manager.js": "text/javascript",
}

_PRODUCT = {
    # login page, "who am I" for the curl line, user lookup by name, its key field
    "jira": ("/login.jsp", "/rest/api/2/myself", "/rest/api/2/user", "key"),
    "confluence": ("/login.action", "/rest/api/user/current", "/rest/api/user", "userKey"),
}

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def expiry_choices(default_months: int, max_months: int) -> list[int]:
    """The validity choices a person is offered, in months; 0 means "never expires".

    Only what the API grants unchanged: nothing above the maximum, and
    "never" only where the default is never (a request cannot ask for it).
    """
    usual = [1, 3, 6, 12, 24, 36]
    choices = {m for m in usual if not max_months or m <= max_months}
    choices.update(m for m in (default_months, max_months) if m)
    ordered = sorted(choices)
    return [*ordered, 0] if default_months == 0 else ordered


def grace_choices(max_seconds: int) -> list[int]:
    """The rotation graces a person is offered, in seconds; 0 means "the old secret stops at once".

    Only what the API grants unchanged: nothing above the site's maximum,
    which is itself offered (an administrator's odd maximum is a real choice).
    """
    usual = [600, 3_600, 6 * 3_600, 86_400, 7 * 86_400]
    choices = {s for s in usual if s <= max_seconds}
    if max_seconds:
        choices.add(max_seconds)
    return [0, *sorted(choices)]


def preselected_grace(max_seconds: int) -> int:
    """The grace the rotation dialog opens with: a day, or the maximum if less, which is
    what the API grants a rotation that asks for nothing (tests/pages/test_site.py
    holds the two together)."""
    return min(86_400, max_seconds)


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{{name}}`` placeholders, every value HTML-escaped (quotes too)."""
    return _PLACEHOLDER.sub(lambda m: html.escape(values[m.group(1)], quote=True), template)


def secured(response: web.Response) -> web.Response:
    response.headers.update(SECURITY_HEADERS)
    return response


class Pages:
    """The handlers of the pages' addresses, with what they need handed in."""

    def __init__(
        self,
        authenticator: Authenticator,
        config: PagesConfig,
        *,
        product: str,
        context_path: str,
        tokens: Callable[[], TokensConfig],
        own_origin: Callable[[web.Request], str],
    ) -> None:
        self._auth = authenticator
        self.base = context_path + config.path
        self._path = config.path
        self._context = context_path
        self._product = product
        self._tokens = tokens
        self._own_origin = own_origin
        static = resources.files(__package__).joinpath("static")
        self._templates = {
            name: static.joinpath(f"{name}.html").read_text("utf-8")
            for name in ("tokens", "manager", "forbidden")
        }
        self._assets = {name: static.joinpath(name).read_bytes() for name in ASSETS}

    def login_url(self, destination: str) -> str:
        """The upstream's login page, coming back to ``destination`` (under the context)."""
        login = _PRODUCT[self._product][0]
        return f"{self._context}{login}?os_destination={quote(destination, safe='')}"

    async def mine(self, request: web.Request) -> web.StreamResponse:
        caller = await self._signed_in(request, self._path)
        try:
            admin = await self._auth.may_manage(caller)
        except ProxyError:
            # Only whether to show the manager's tab: the user's own page still works.
            admin = False
        return self._page("tokens", request, caller, 200, admin=admin)

    async def manager(self, request: web.Request) -> web.StreamResponse:
        caller = await self._signed_in(request, self._path + "/manager")
        # Sysadmins and members of auth.token_manager_groups, as the token API decides.
        if not await self._auth.may_manage(caller):
            return self._page("forbidden", request, caller, 403, admin=False)
        return self._page("manager", request, caller, 200, admin=True)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        body = self._assets[name]
        return secured(web.Response(body=body, content_type=ASSETS[name], charset="utf-8"))

    async def _signed_in(self, request: web.Request, here: str) -> Caller:
        cookie = "; ".join(request.headers.getall("Cookie", []))
        try:
            if not cookie:
                raise Unauthorized("no session")
            return await self._auth.session_caller(cookie)
        except Unauthorized:
            raise _redirect(self.login_url(here)) from None

    def _page(
        self, name: str, request: web.Request, caller: Caller, status: int, *, admin: bool
    ) -> web.Response:
        tokens = self._tokens()
        _, myself, user_lookup, key_field = _PRODUCT[self._product]
        site = self._own_origin(request) + self._context
        values = {
            "base": self.base,
            "api": self._context + BASE_PATH,
            "site": site,
            "myself": myself,
            "user_api": self._context + user_lookup,
            "key_field": key_field,
            "user": caller.user.name,
            "user_key": caller.user.key,
            "months": ",".join(
                str(m)
                for m in expiry_choices(tokens.default_validity_months, tokens.max_validity_months)
            ),
            "default_months": str(tokens.default_validity_months),
            "max_description": str(tokens.max_description_length),
            "graces": ",".join(map(str, grace_choices(tokens.max_rotation_grace_seconds))),
            "default_grace": str(preselected_grace(tokens.max_rotation_grace_seconds)),
            "login": self.login_url(self._path),
            "product": self._product.title(),
            # Only whether to show the manager's tab; the manager checks for itself.
            "admin_hidden": "" if admin else "hidden",
        }
        body = render(self._templates[name], values)
        return secured(web.Response(status=status, text=body, content_type="text/html"))


def _redirect(location: str) -> web.HTTPFound:
    return web.HTTPFound(location, headers=SECURITY_HEADERS)
