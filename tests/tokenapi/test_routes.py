"""The token API's routes on a real aiohttp server: each path's answer and status,
what every answer says to caches, and how HTTP's failures become the JSON errors;
TokenService and Authenticator are real, the upstream is a directory."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from apitokenproxy.app import errors_middleware
from apitokenproxy.config import AuthConfig
from apitokenproxy.live import Live
from apitokenproxy.tokenapi.routes import BASE_PATH, MAX_BODY_BYTES, ROUTES, TokenApi
from apitokenproxy.tokenapi.service import MANAGE_WITH

from ..fakes import FakeUser
from ..services import Services, services

USERS = (
    FakeUser("key-alice", "alice", "alice-pw"),
    FakeUser("key-admin", "admin", "admin-pw", sysadmin=True),
)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ALICE = basic("alice", "alice-pw")
ADMIN = basic("admin", "admin-pw")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Services]:
    async with services(f"sqlite:///{tmp_path / 'tokens.db'}", USERS, AuthConfig()) as built:
        yield built


@pytest.fixture
async def api(aiohttp_client: Any, rig: Services) -> TestClient[Any, Any]:
    """The routes alone, registered as the application registers them."""
    handlers = TokenApi(
        rig.service,
        rig.authenticator,
        Live(),
        context_path="/jira",
        public_url="",
    )
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY_BYTES)
    for method, path, name in ROUTES:
        app.router.add_route(method, BASE_PATH + path, getattr(handlers, name))
    return await aiohttp_client(app)  # type: ignore[no-any-return]


# (method, path under BASE_PATH with {id} alice's token, caller, JSON body, status, a key of
# the JSON answer or None)
CALLS = [
    ("POST", "/user/token", ALICE, {"tokenDescription": "new"}, 200, "plainTextToken"),
    ("GET", "/user/token", ALICE, None, 200, None),
    ("GET", "/user/token/", ALICE, None, 200, None),
    ("PATCH", "/user/token/{id}", ALICE, {"tokenDescription": "renamed"}, 200, "description"),
    ("POST", "/user/token/{id}/rotate", ALICE, {"gracePeriodSeconds": 60}, 200, "plainTextToken"),
    ("DELETE", "/user/token/{id}", ALICE, None, 204, None),
    ("DELETE", "/user/token/deleteAllFor/key-alice", ADMIN, None, 200, "deletedTokens"),
    ("GET", "/user/tokensByFilter?notValidAfter=-1", ADMIN, None, 200, "content"),
    ("GET", "/audit", ADMIN, None, 200, "content"),
    # What the service refuses, and what the inputs refuse, as the JSON errors.
    ("GET", "/user/token/current", ALICE, None, 400, "errorMessages"),
    ("DELETE", "/user/token/deleteAllFor/key-alice", ALICE, None, 403, "errorMessages"),
    ("GET", "/audit", ALICE, None, 403, "errorMessages"),
    ("GET", "/user/tokensByFilter", ADMIN, None, 400, "errorMessages"),  # no notValidAfter
    ("PATCH", "/user/token/{id}", ALICE, {}, 400, "errorMessages"),
    ("PATCH", "/user/token/abc", ALICE, {"tokenDescription": "x"}, 400, "errorMessages"),
    ("DELETE", "/user/token/999999", ALICE, None, 404, "errorMessages"),
    ("POST", "/user/token", {}, {"tokenDescription": "new"}, 401, "errorMessages"),
]


@pytest.mark.parametrize(("method", "path", "caller", "body", "status", "key"), CALLS)
async def test_each_route_answers_and_no_cache_keeps_it(
    api: TestClient[Any, Any],
    rig: Services,
    method: str,
    path: str,
    caller: dict[str, str],
    body: dict[str, Any] | None,
    status: int,
    key: str | None,
) -> None:
    record, _ = await rig.token("alice")
    url = BASE_PATH + path.replace("{id}", str(record.id))
    resp = await api.request(method, url, json=body, headers=caller)
    assert resp.status == status, await resp.text()
    if status == 204:
        assert await resp.read() == b""
    else:
        answer = await resp.json()
        if key is not None:
            assert key in answer
        else:
            assert [t["id"] for t in answer] == [record.id]
    if status < 400:  # what a handler made: the error middleware answers the rest
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Pragma"] == "no-cache"


async def test_the_filter_pages_link_to_the_proxy_as_the_client_reached_it(
    api: TestClient[Any, Any], rig: Services
) -> None:
    for _ in range(3):
        await rig.token("alice")
    resp = await api.get(f"{BASE_PATH}/user/tokensByFilter?notValidAfter=-1&limit=2", headers=ADMIN)
    assert resp.status == 200
    page = await resp.json()
    assert len(page["content"]) == 2
    next_page = page["paginationLinks"]["nextPage"]
    assert next_page.startswith(f"http://{api.host}:{api.port}/jira{BASE_PATH}/user/")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),  # JSON, but not an object
        (b'{"tokenDescription": "' + b"x" * MAX_BODY_BYTES + b'"}', 413),
    ],
)
async def test_a_body_that_is_not_a_small_json_object_is_refused(
    api: TestClient[Any, Any], body: bytes, status: int
) -> None:
    resp = await api.post(f"{BASE_PATH}/user/token", data=body, headers=ALICE)
    assert resp.status == status
    assert (await resp.json())["status"] == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),  # a browser session must prove the call is no cross-site form
        ({"X-Atlassian-Token": "no-check"}, 200),
    ],
)
async def test_a_session_caller_must_pass_the_csrf_rule_to_change_anything(
    api: TestClient[Any, Any], rig: Services, headers: dict[str, str], status: int
) -> None:
    cookie = {"Cookie": rig.directory.sign_in("alice")}
    assert (await api.get(f"{BASE_PATH}/user/token", headers=cookie)).status == 200  # reads pass
    resp = await api.post(
        f"{BASE_PATH}/user/token", json={"tokenDescription": "x"}, headers={**cookie, **headers}
    )
    assert resp.status == status, await resp.text()


async def test_a_read_token_is_told_what_may_manage_tokens(
    api: TestClient[Any, Any], rig: Services
) -> None:
    _, token = await rig.token("alice", scope="read")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await api.get(f"{BASE_PATH}/user/token", headers=bearer)).status == 200
    resp = await api.post(f"{BASE_PATH}/user/token", json={"tokenDescription": "x"}, headers=bearer)
    assert resp.status == 403
    assert MANAGE_WITH in (await resp.json())["message"]
