"""Fake Jira and Confluence: small aiohttp apps that answer like the real ones.

They know a few users, accept Basic passwords, a session cookie from their
login form (``JSESSIONID``, like Tomcat's) or (like an upstream with a header
authenticator behind the proxy) the trusted user header, and record every
request they receive so tests can assert what reached the upstream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import hashlib
import html
import secrets
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web

USER_HEADER = "X-Forwarded-User"
SESSION_COOKIE = "JSESSIONID"
LOGIN_PATHS = {"jira": "/login.jsp", "confluence": "/login.action"}


@dataclass(frozen=True)
class FakeUser:
    key: str
    name: str
    password: str
    sysadmin: bool = False
    groups: tuple[str, ...] = ()
    email: str = ""  # empty: f"{name}@example.com"

    def __post_init__(self) -> None:
        if not self.email:
            object.__setattr__(self, "email", f"{self.name}@example.com")


JIRA_USERS = (
    FakeUser("admin", "admin", "admin-pw", sysadmin=True, groups=("jira-administrators",)),
    FakeUser("JIRAUSER10100", "alice", "alice-pw", groups=("jira-users", "developers")),
    FakeUser("JIRAUSER10105", "bob", "bob-pw", groups=("jira-users",)),
)
CONFLUENCE_USERS = (
    FakeUser("8a7f808a7c1d", "admin", "admin-pw", groups=("confluence-administrators", "staff")),
    FakeUser("e4fc80a46ebbdf4c016fa42e69be01f8", "alice", "alice-pw", groups=("staff",)),
    FakeUser("4028b8817d5a1c2e", "bob", "bob-pw", groups=("staff", "ops-admins")),
)


@dataclass
class Received:
    method: str
    path_qs: str
    headers: list[tuple[str, str]]


@dataclass
class FakeUpstream:
    product: Literal["jira", "confluence"]
    users: tuple[FakeUser, ...]
    received: list[Received] = field(default_factory=list)
    captcha_for: set[str] = field(default_factory=set)
    # Like a Confluence whose e-mail visibility setting hides every address.
    hide_emails: bool = False
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> user name
    failing: set[str] = field(default_factory=set)  # paths that answer 500, for fault tests

    def current(self, request: web.Request) -> FakeUser | None:
        header_user = request.headers.get(USER_HEADER)
        if header_user:
            return self.by_name(header_user)
        session = request.cookies.get(SESSION_COOKIE)
        if session is not None and "Authorization" not in request.headers:
            name = self.sessions.get(session)
            return None if name is None else self.by_name(name)
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return None
        try:
            name, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user = self.by_name(name)
        return user if user is not None and user.password == password else None

    def sign_in(self, name: str) -> str:
        """A new session for ``name``, as the login form makes: its cookie value."""
        session = secrets.token_hex(16)
        self.sessions[session] = name
        return session

    def by_name(self, name: str) -> FakeUser | None:
        return next((u for u in self.users if u.name.lower() == name.lower()), None)

    def by_key(self, key: str) -> FakeUser | None:
        return next((u for u in self.users if u.key == key), None)

    def user_json(self, user: FakeUser) -> dict[str, object]:
        data: dict[str, object]
        if self.product == "jira":
            data = {"key": user.key, "name": user.name, "displayName": user.name.title()}
        else:
            data = {"type": "known", "userKey": user.key, "username": user.name}
        if not self.hide_emails:
            data["emailAddress" if self.product == "jira" else "email"] = user.email
        return data

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        if self.product == "jira":
            app.router.add_get("/rest/api/2/myself", self._myself)
            app.router.add_get("/rest/api/2/mypermissions", self._mypermissions)
            app.router.add_get("/rest/api/2/user", self._user)
        else:
            app.router.add_get("/rest/api/user/current", self._myself)
            app.router.add_get("/rest/api/user/memberof", self._memberof)
            app.router.add_get("/rest/api/user", self._user)
        login = LOGIN_PATHS[self.product]
        app.router.add_get(login, self._login_form)
        app.router.add_post(login, self._log_in)
        app.router.add_get("/logout", self._log_out)
        add_test_routes(app)
        return app

    @web.middleware
    async def _record(
        self, request: web.Request, handler: web.RequestHandler
    ) -> web.StreamResponse:
        self.received.append(
            Received(
                request.method,
                request.raw_path,
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            )
        )
        if request.path in self.failing:
            return web.json_response({"message": "internal error"}, status=500)
        return await handler(request)

    async def _myself(self, request: web.Request) -> web.Response:
        user = self.current(request)
        if user is None:
            auth_name = _basic_name(request)
            if auth_name in self.captcha_for:
                return web.Response(
                    status=403,
                    headers={
                        "X-Authentication-Denied-Reason": "CAPTCHA_CHALLENGE; login-url=/login.jsp"
                    },
                )
            if self.product == "confluence" and "Authorization" not in request.headers:
                return web.json_response({"type": "anonymous"})
            return web.json_response({"message": "not authenticated"}, status=401)
        data = self.user_json(user)
        if self.product == "jira" and request.query.get("expand") == "groups":
            items = [{"name": g, "self": f"/rest/api/2/group?groupname={g}"} for g in user.groups]
            data["groups"] = {"size": len(items), "items": items}
        return web.json_response(data)

    async def _login_form(self, request: web.Request) -> web.Response:
        destination = html.escape(request.query.get("os_destination", "/"))
        failed = '<p role="alert">Sorry, your username and password are incorrect.</p>'
        return web.Response(
            content_type="text/html",
            text=f"""<!doctype html><html lang="en"><head><title>Log in</title></head><body>
<h1>Log in to {self.product.title()}</h1>{failed if "failed" in request.query else ""}
<form method="post"><input type="hidden" name="os_destination" value="{destination}">
<label>Username <input name="os_username" autocomplete="username"></label>
<label>Password <input name="os_password" type="password"></label>
<button type="submit" id="login-submit">Log in</button></form></body></html>""",
        )

    async def _log_in(self, request: web.Request) -> web.Response:
        form = await request.post()
        name, password = str(form.get("os_username", "")), str(form.get("os_password", ""))
        destination = str(form.get("os_destination", "")) or "/"
        user = self.by_name(name)
        if user is None or user.password != password:
            raise web.HTTPFound(f"{request.path}?failed=1")
        # Like Jira, only a path on this site: never an open redirect.
        parts = urlsplit(destination)
        if parts.scheme or parts.netloc or not destination.startswith("/"):
            destination = "/"
        response = web.HTTPFound(destination)
        response.set_cookie(SESSION_COOKIE, self.sign_in(user.name), path="/", httponly=True)
        raise response

    async def _log_out(self, request: web.Request) -> web.Response:
        self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = web.Response(text="You are now logged out.")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def _mypermissions(self, request: web.Request) -> web.Response:
        user = self.current(request)
        if user is None:
            return web.json_response({}, status=401)
        assert request.query["permissions"] == "SYSTEM_ADMIN"
        return web.json_response(
            {"permissions": {"SYSTEM_ADMIN": {"havePermission": user.sysadmin}}}
        )

    async def _memberof(self, request: web.Request) -> web.Response:
        if self.current(request) is None:
            return web.json_response({}, status=401)
        user = self.by_key(request.query["key"])
        if user is None:
            return web.json_response({}, status=404)
        start, limit = int(request.query.get("start", 0)), int(request.query.get("limit", 200))
        groups = [{"type": "group", "name": g} for g in user.groups][start : start + limit]
        return web.json_response(
            {"results": groups, "start": start, "limit": limit, "size": len(groups)}
        )

    async def _user(self, request: web.Request) -> web.Response:
        if self.current(request) is None:
            return web.json_response({}, status=401)
        if "username" in request.query:
            user = self.by_name(request.query["username"])
        else:
            user = self.by_key(request.query.get("key", ""))
        if user is None:
            return web.json_response({"errorMessages": ["The user does not exist"]}, status=404)
        return web.json_response(self.user_json(user))


def _basic_name(request: web.Request) -> str:
    _, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        return base64.b64decode(encoded).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# The data path's counterpart: endpoints that show exactly what reached the upstream.


async def _echo(request: web.Request) -> web.Response:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response(
        {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body_sha256": digest.hexdigest(),
            "body_length": size,
        }
    )


async def _download(request: web.Request) -> web.StreamResponse:
    size, chunk = int(request.query["size"]), int(request.query.get("chunk", 65536))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if "length" in request.query:
        response.content_length = size
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    sent = 0
    while sent < size:
        part = min(chunk, size - sent)
        await response.write(pattern(sent, part))
        sent += part
    await response.write_eof()
    return response


def pattern(offset: int, length: int) -> bytes:
    """Deterministic bytes, so both ends can hash a body without storing it."""
    block = bytes(range(256)) * 256
    start = offset % len(block)
    out = (block[start:] + block * (1 + length // len(block)))[:length]
    return out


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    headers = {"Location": "/elsewhere"} if 300 <= code < 400 else {}
    if code == 304:
        headers["ETag"] = '"v1"'
    return web.Response(status=code, headers=headers)


async def _cookies(request: web.Request) -> web.Response:
    response = web.Response(text="ok")
    response.headers.add("Set-Cookie", "JSESSIONID=abc; Path=/; HttpOnly")
    response.headers.add("Set-Cookie", "atlassian.xsrf.token=xyz; Path=/")
    response.headers["Connection"] = "X-Internal-Hop"
    response.headers["X-Internal-Hop"] = "secret-topology"
    response.headers["Keep-Alive"] = "timeout=5"
    return response


GZIPPED = gzip.compress(b"hello world", mtime=0)


async def _gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=GZIPPED, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"}
    )


async def _header(request: web.Request) -> web.Response:
    """An answer carrying the header named in the query, e.g. one only the proxy may set."""
    return web.Response(text="ok", headers={request.query["name"]: request.query["value"]})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("seconds", 5)))
    return web.Response(text="late")


async def _reset(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = 1_000_000
    await response.prepare(request)
    await response.write(b"x" * 1000)
    assert request.transport is not None
    request.transport.close()
    return response


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("synchrony",))
    await ws.prepare(request)
    await ws.send_json(
        {"user": request.headers.get(USER_HEADER), "auth": request.headers.get("Authorization")}
    )
    async for message in ws:
        if message.type == web.WSMsgType.TEXT:
            if message.data == "close":
                await ws.close(code=4001)
            else:
                await ws.send_str("echo:" + message.data)
        elif message.type == web.WSMsgType.BINARY:
            await ws.send_bytes(message.data[::-1])
    return ws


def add_test_routes(app: web.Application) -> None:
    app.router.add_get("/_test/download", _download)
    app.router.add_get("/_test/status/{code}", _status)
    app.router.add_get("/_test/cookies", _cookies)
    app.router.add_get("/_test/gzip", _gzip)
    app.router.add_get("/_test/slow", _slow)
    app.router.add_get("/_test/header", _header)
    app.router.add_get("/_test/reset", _reset)
    app.router.add_get("/_test/ws", _websocket)
    app.router.add_route("*", "/{tail:.*}", _echo)
