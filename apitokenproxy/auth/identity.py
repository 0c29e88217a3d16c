"""Who a user is, as Jira or Confluence says: the upstream's own REST API.

The proxy keeps no user directory. Passwords and browser sessions are
checked by the upstream (``/rest/api/2/myself`` or ``/rest/api/user/current``
with the caller's credentials, or with only the session's ``Cookie``), user
keys are resolved there, and so are sysadmin rights, group memberships (Jira
``/rest/api/2/myself?expand=groups``, Confluence ``/rest/api/user/memberof``)
and e-mail addresses.

Calls "as" a user carry either that user's Basic credentials (a password
caller) or the trusted user header (a token caller: the upstream's header
authenticator accepts it from the proxy, exactly as on the data path). So a
token owner's admin rights are asked afresh, never frozen at creation time.

The calls go through the data path's own upstream pool (``Fetch``), so a
user header is written the same way in both, and failures arrive already
translated into the UpstreamUnavailable kinds and UpstreamTimeout.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from ..errors import (
    PasswordRejected,
    ProxyError,
    UpstreamInvalid,
    UpstreamTimeout,
    UpstreamUnavailable,
)

Headers = list[tuple[str, str]]


class Fetch(Protocol):
    """One small GET to the upstream: ``UpstreamPool.fetch``, the data path's own pool."""

    async def __call__(
        self, method: str, target: str, headers: Headers, *, within: float
    ) -> tuple[int, Headers, bytes]: ...


@dataclass(frozen=True)
class User:
    key: str
    name: str
    email: str | None = None  # as the upstream reports it; None when it shows none


@dataclass(frozen=True, repr=False)
class ActingAs:
    """Headers that make an upstream REST call on behalf of one user. Never logged."""

    headers: Mapping[str, str]

    def __repr__(self) -> str:
        return "ActingAs(<hidden>)"


class IdentityProvider(Protocol):
    async def check_password(self, username: str, password: str) -> User:
        """The user the upstream knows by these credentials; raise PasswordRejected if none."""
        ...

    async def session_user(self, cookie: str) -> User | None:
        """The user signed in with this ``Cookie`` header, or None for no one."""
        ...

    async def is_sysadmin(self, user: User, acting: ActingAs) -> bool: ...

    async def find_user(self, key: str, acting: ActingAs) -> User | None:
        """The user with this user key, or None if the upstream knows none."""
        ...

    async def groups(self, user: User, acting: ActingAs) -> frozenset[str]:
        """The groups ``user`` belongs to; ``acting`` must be that user."""
        ...

    async def email(self, acting: ActingAs) -> str | None:
        """The e-mail address of the user ``acting`` stands for, if the upstream shows one."""
        ...


@dataclass(frozen=True)
class _Product:
    myself: str
    user_by_key: str
    key_field: str
    name_field: str
    email_field: str


_PRODUCTS = {
    "jira": _Product("/rest/api/2/myself", "/rest/api/2/user?key=", "key", "name", "emailAddress"),
    "confluence": _Product(
        "/rest/api/user/current", "/rest/api/user?key=", "userKey", "username", "email"
    ),
}

# Jira says why it refused a login in this header; CAPTCHA needs a browser visit.
_DENIED_REASON = "X-Authentication-Denied-Reason"


class UpstreamIdentity:
    """``IdentityProvider`` that asks Jira or Confluence over HTTP."""

    def __init__(
        self,
        fetch: Fetch,
        base_url: str,
        product: Literal["jira", "confluence"],
        *,
        admin_groups: tuple[str, ...] = ("confluence-administrators",),
        timeout_seconds: float = 10.0,
    ) -> None:
        self._fetch = fetch
        parts = urlsplit(base_url)
        self._base = base_url.rstrip("/")
        self._context = parts.path.rstrip("/")
        self._host = parts.netloc
        self._product_name = product
        self._product = _PRODUCTS[product]
        self._admin_groups = frozenset(admin_groups)
        self._timeout = timeout_seconds

    async def check_password(self, username: str, password: str) -> User:
        raw = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        status, headers, body = await self._get(
            self._product.myself, {"Authorization": f"Basic {raw}"}
        )
        if status in (401, 403):
            reason = headers.get(_DENIED_REASON.lower(), "")
            if "CAPTCHA" in reason.upper():
                raise PasswordRejected(
                    f"{self._product_name} requires a CAPTCHA for this user after failed "
                    "logins; log in once in the browser, then retry"
                )
            raise PasswordRejected("wrong user name or password")
        user = self._user_from(status, body, "the current user")
        if user is None:
            raise PasswordRejected("wrong user name or password")
        return user

    async def session_user(self, cookie: str) -> User | None:
        # Only the cookie travels: the upstream decides from the session alone.
        status, _, body = await self._get(self._product.myself, {"Cookie": cookie})
        if status in (401, 403):
            return None
        return self._user_from(status, body, "the session's user")

    async def find_user(self, key: str, acting: ActingAs) -> User | None:
        status, _, body = await self._get(
            self._product.user_by_key + quote(key, safe=""), acting.headers
        )
        if status == 404:
            return None
        return self._user_from(status, body, f"user {key!r}")

    async def is_sysadmin(self, user: User, acting: ActingAs) -> bool:
        if self._product_name == "jira":
            status, _, body = await self._get(
                "/rest/api/2/mypermissions?permissions=SYSTEM_ADMIN", acting.headers
            )
            data = self._json_object(status, body, "permissions")
            permission = data.get("permissions", {}).get("SYSTEM_ADMIN", {})
            return isinstance(permission, dict) and permission.get("havePermission") is True
        return bool(await self._confluence_groups(user, acting) & self._admin_groups)

    async def groups(self, user: User, acting: ActingAs) -> frozenset[str]:
        if self._product_name == "confluence":
            return frozenset(await self._confluence_groups(user, acting))
        status, _, body = await self._get(self._product.myself + "?expand=groups", acting.headers)
        data = self._json_object(status, body, "the current user's groups")
        groups = data.get("groups")
        items = groups.get("items", []) if isinstance(groups, dict) else []
        if not isinstance(items, list):
            raise UpstreamInvalid("jira answered the current user's groups unexpectedly")
        return frozenset(
            g["name"] for g in items if isinstance(g, dict) and isinstance(g.get("name"), str)
        )

    async def email(self, acting: ActingAs) -> str | None:
        status, _, body = await self._get(self._product.myself, acting.headers)
        data = self._json_object(status, body, "the current user")
        # Jira says emailAddress, Confluence email (when the viewer may see it).
        for field in ("emailAddress", "email"):
            value = data.get(field)
            if isinstance(value, str) and "@" in value:
                return value
        return None

    async def _confluence_groups(self, user: User, acting: ActingAs) -> set[str]:
        groups: set[str] = set()
        start, limit = 0, 200
        while True:
            status, _, body = await self._get(
                f"/rest/api/user/memberof?key={quote(user.key, safe='')}"
                f"&start={start}&limit={limit}",
                acting.headers,
            )
            data = self._json_object(status, body, "group membership")
            results = data.get("results", [])
            if not isinstance(results, list):
                raise UpstreamInvalid("confluence answered group membership without results")
            groups.update(g["name"] for g in results if isinstance(g, dict) and "name" in g)
            if len(results) < limit:
                return groups
            start += limit

    def _user_from(self, status: int, body: bytes, what: str) -> User | None:
        data = self._json_object(status, body, what)
        key, name = data.get(self._product.key_field), data.get(self._product.name_field)
        if not isinstance(key, str) or not isinstance(name, str) or not key:
            return None  # e.g. Confluence's anonymous user
        email = data.get(self._product.email_field)
        return User(key=key, name=name, email=email if isinstance(email, str) and email else None)

    def _json_object(self, status: int, body: bytes, what: str) -> dict[str, Any]:
        if status != 200:
            raise UpstreamInvalid(
                f"{self._product_name} answered HTTP {status} when asked for {what}"
            )
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise UpstreamInvalid(
                f"{self._product_name} answered {what} with something that is not JSON"
            ) from exc
        if not isinstance(data, dict):
            raise UpstreamInvalid(f"{self._product_name} answered {what} unexpectedly")
        return data

    async def _get(
        self, path: str, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        request_headers = [("Host", self._host), ("Accept", "application/json"), *headers.items()]
        try:
            status, answer, body = await self._fetch(
                "GET", self._context + path, request_headers, within=self._timeout
            )
        except UpstreamTimeout as exc:
            raise UpstreamTimeout(f"{self._product_name} at {self._base}: {exc.message}") from exc
        except ProxyError as exc:
            # Refused stays refused, reset stays reset; anything else is an unusable answer.
            failure = type(exc) if isinstance(exc, UpstreamUnavailable) else UpstreamInvalid
            raise failure(f"{self._product_name} at {self._base}: {exc.message}") from exc
        return status, {k.lower(): v for k, v in answer}, body
