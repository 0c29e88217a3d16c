"""A tiny Jira for ``apitokenproxy demo``: a real HTTP server on its own port.

It answers the REST calls the proxy makes (``myself``, ``mypermissions``,
``user?key=``) and one ordinary endpoint, ``/rest/api/2/issue/{key}``, that
shows who the upstream believes is calling, so a newcomer can watch a token
turn into the trusted user header. Like a Jira with a header authenticator, it
accepts Basic passwords, or the user header from the proxy; and like Jira it
has a login page (``/login.jsp``) that starts a ``JSESSIONID`` session, so the
browser pages can be clicked through (``/logout`` ends it).
"""

from __future__ import annotations

import base64
import binascii
import html
import secrets
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class DemoUser:
    key: str
    name: str
    password: str
    display_name: str
    sysadmin: bool = False


DEMO_USERS = (
    DemoUser("admin", "admin", "admin", "Demo Administrator", sysadmin=True),
    DemoUser("JIRAUSER10100", "alice", "alice", "Alice Example"),
    DemoUser("JIRAUSER10105", "bob", "bob", "Bob Example"),
)

USER_HEADER: web.AppKey[str] = web.AppKey("user_header", str)
SESSIONS: web.AppKey[dict[str, str]] = web.AppKey("sessions", dict)
SESSION_COOKIE = "JSESSIONID"


def _by_name(name: str) -> DemoUser | None:
    return next((u for u in DEMO_USERS if u.name.casefold() == name.casefold()), None)


def _current(request: web.Request) -> DemoUser | None:
    header_user = request.headers.get(request.app[USER_HEADER])
    if header_user:
        return _by_name(header_user)
    auth = request.headers.get("Authorization", "")
    if not auth:
        session = request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE, ""))
        return None if session is None else _by_name(session)
    scheme, _, encoded = auth.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = _by_name(name)
    return user if user is not None and user.password == password else None


def _user_json(request: web.Request, user: DemoUser) -> dict[str, object]:
    return {
        "active": True,
        "displayName": user.display_name,
        "emailAddress": f"{user.name}@example.com",
        "key": user.key,
        "name": user.name,
        "self": f"{request.url.origin()}/rest/api/2/user?username={user.name}",
        "timeZone": "GMT",
    }


def _unauthorized() -> web.Response:
    return web.json_response(
        {"errorMessages": ["You are not authenticated."], "errors": {}}, status=401
    )


async def myself(request: web.Request) -> web.Response:
    user = _current(request)
    return _unauthorized() if user is None else web.json_response(_user_json(request, user))


async def mypermissions(request: web.Request) -> web.Response:
    user = _current(request)
    if user is None:
        return _unauthorized()
    return web.json_response(
        {"permissions": {"SYSTEM_ADMIN": {"key": "SYSTEM_ADMIN", "havePermission": user.sysadmin}}}
    )


async def user_lookup(request: web.Request) -> web.Response:
    if _current(request) is None:
        return _unauthorized()
    key, name = request.query.get("key"), request.query.get("username")
    found = next((u for u in DEMO_USERS if key == u.key or name == u.name), None)
    if found is None:
        return web.json_response(
            {"errorMessages": ["The user does not exist."], "errors": {}}, status=404
        )
    return web.json_response(_user_json(request, found))


async def issue(request: web.Request) -> web.Response:
    user = _current(request)
    if user is None:
        return _unauthorized()
    return web.json_response(
        {
            "key": request.match_info["key"],
            "fields": {"summary": "Demo issue", "reporter": {"name": user.name}},
            "seenByUpstream": {
                "user": user.name,
                "authorizationHeaderPresent": "Authorization" in request.headers,
            },
        }
    )


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in - Demo Jira</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; background: #f4f5f7; color: #172b4d">
<main style="max-width: 360px; margin: 10vh auto; background: #fff; padding: 32px;
 border-radius: 4px; box-shadow: 0 1px 2px rgba(9,30,66,.25)">
<h1 style="font-size: 20px">Log in to the demo Jira</h1>{problem}
<form method="post" action="/login.jsp">
<input type="hidden" name="os_destination" value="{destination}">
<p><label for="u">Username</label><br><input id="u" name="os_username" autofocus></p>
<p><label for="p">Password</label><br><input id="p" name="os_password" type="password"></p>
<p><button type="submit">Log in</button></p></form>
<p style="color: #5e6c84">Try alice/alice, bob/bob or admin/admin.</p></main></body></html>
"""


async def login_page(request: web.Request) -> web.Response:
    problem = (
        '<p role="alert">Sorry, your username and password are incorrect.</p>'
        if "failed" in request.query
        else ""
    )
    destination = html.escape(request.query.get("os_destination", "/"))
    return web.Response(
        text=_LOGIN_PAGE.format(problem=problem, destination=destination),
        content_type="text/html",
    )


async def log_in(request: web.Request) -> web.Response:
    form = await request.post()
    user = _by_name(str(form.get("os_username", "")))
    if user is None or user.password != str(form.get("os_password", "")):
        raise web.HTTPFound("/login.jsp?failed=1")
    destination = str(form.get("os_destination", "/"))
    # Like Jira: back to a path on this site only, never to another site.
    if not destination.startswith("/") or destination.startswith("//"):
        destination = "/"
    session = secrets.token_urlsafe(24)
    request.app[SESSIONS][session] = user.name
    response = web.HTTPFound(destination)
    response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True, samesite="Lax")
    raise response


async def log_out(request: web.Request) -> web.Response:
    request.app[SESSIONS].pop(request.cookies.get(SESSION_COOKIE, ""), None)
    response = web.HTTPFound("/login.jsp")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def create_demo_upstream(user_header: str = "X-Forwarded-User") -> web.Application:
    app = web.Application()
    app[USER_HEADER] = user_header
    app[SESSIONS] = {}
    app.router.add_get("/login.jsp", login_page)
    app.router.add_post("/login.jsp", log_in)
    app.router.add_get("/logout", log_out)
    app.router.add_get("/rest/api/2/myself", myself)
    app.router.add_get("/rest/api/2/mypermissions", mypermissions)
    app.router.add_get("/rest/api/2/user", user_lookup)
    app.router.add_get("/rest/api/2/issue/{key}", issue)
    return app


def seed_commands(
    base: str, demo_user_key: str = "JIRAUSER10105", pages: str = "/apitokens"
) -> str:
    """The seed guide's curl calls, ready to paste against ``base``, after the pages' address."""
    api = f"{base}/rest/de.resolution.apitokenauth/latest"
    json_header = '--header "Content-Type: application/json"'
    return "\n".join(
        [
            "# In a browser: sign in as alice/alice (or admin/admin for the Token manager):",
            f"#   {base}{pages}/",
            f"#   {base}{pages}/manager",
            "",
            "# Create a token (the answer's plainTextToken is shown only once):",
            f'curl -v -u alice:alice -d \'{{"tokenDescription":"Automation token"}}\' '
            f"-X POST {api}/user/token {json_header}",
            "",
            "# Use it like a password, or as a Bearer token, on any Jira REST call:",
            f"curl -u alice:<plainTextToken> {base}/rest/api/2/issue/DEMO-1",
            f'curl -H "Authorization: Bearer <plainTextToken>" {base}/rest/api/2/issue/DEMO-1',
            "",
            "# Update a token description:",
            f'curl -v -u alice:alice -d \'{{"tokenDescription":"Updated token description"}}\' '
            f"-X PATCH {api}/user/token/<token-id> {json_header}",
            "",
            "# List all tokens:",
            f"curl -v -u alice:alice {api}/user/token/ | python3 -mjson.tool",
            "",
            "# Delete a token:",
            f"curl -v -u alice:alice -X DELETE {api}/user/token/<token-id>",
            "",
            "# As a sysadmin: create tokens for another user, with and without months:",
            f'curl -v -u admin:admin -d \'{{"tokenDescription":"token for another user", '
            f'"tokenForUserKey":"{demo_user_key}"}}\' -X POST {api}/user/token {json_header}',
            f'curl -v -u admin:admin -d \'{{"tokenDescription":"token for another user", '
            f'"tokenForUserKey":"{demo_user_key}","tokenValidityTimeInMonths":12}}\' '
            f"-X POST {api}/user/token {json_header}",
            "",
            "# As a sysadmin: filter tokens, all of them, then paged:",
            f'curl -v -u admin:admin "{api}/user/tokensByFilter?notValidAfter=-1" '
            "| python3 -mjson.tool",
            f'curl -v -u admin:admin "{api}/user/tokensByFilter?page=0&limit=1'
            f'&notValidAfter=4102444800000"',
            "",
            "# As a sysadmin: delete all tokens of a user (by user key, not name):",
            f"curl -v -u admin:admin -X DELETE {api}/user/token/deleteAllFor/{demo_user_key}",
        ]
    )
