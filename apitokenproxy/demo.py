"""A tiny Jira for ``apitokenproxy demo``: a real HTTP server on its own port.

It answers the REST calls the proxy makes (``myself``, ``mypermissions``,
``user?key=``) and one ordinary endpoint, ``/rest/api/2/issue/{key}``, that
shows who the upstream believes is calling, so a newcomer can watch a token
turn into the trusted user header. Like a Jira with a header authenticator, it
accepts Basic passwords, or the user header from the proxy.
"""

from __future__ import annotations

import base64
import binascii
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


def _by_name(name: str) -> DemoUser | None:
    return next((u for u in DEMO_USERS if u.name.casefold() == name.casefold()), None)


def _current(request: web.Request) -> DemoUser | None:
    header_user = request.headers.get(request.app[USER_HEADER])
    if header_user:
        return _by_name(header_user)
    auth = request.headers.get("Authorization", "")
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


def create_demo_upstream(user_header: str = "X-Forwarded-User") -> web.Application:
    app = web.Application()
    app[USER_HEADER] = user_header
    app.router.add_get("/rest/api/2/myself", myself)
    app.router.add_get("/rest/api/2/mypermissions", mypermissions)
    app.router.add_get("/rest/api/2/user", user_lookup)
    app.router.add_get("/rest/api/2/issue/{key}", issue)
    return app


def seed_commands(base: str, demo_user_key: str = "JIRAUSER10105") -> str:
    """The seed guide's curl calls, ready to paste against ``base``."""
    api = f"{base}/rest/de.resolution.apitokenauth/latest"
    json_header = '--header "Content-Type: application/json"'
    return "\n".join(
        [
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
