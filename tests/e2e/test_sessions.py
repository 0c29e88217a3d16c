"""Session sign-in for the token API end to end: a browser's upstream cookie, on both
lanes, both stores and both products; and the cross-site rule that guards it."""

from __future__ import annotations

from typing import Any

import pytest

from apitokenproxy.app import COMPONENTS

from ..conftest import MakeWorld, World
from ..fakes import SESSION_COOKIE, basic

API = "/rest/de.resolution.apitokenauth/latest"
NO_CHECK = {"X-Atlassian-Token": "no-check"}


def session(world: World, name: str) -> dict[str, str]:
    return {"Cookie": f"atlassian.xsrf.token=abc; {SESSION_COOKIE}={world.upstream.sign_in(name)}"}


def origin(world: World) -> str:
    return str(world.client.make_url("").origin())


async def count(world: World) -> int:
    return (await world.client.app[COMPONENTS].store.find_by_expiry(None, 0, 1000)).total


@pytest.mark.parametrize("product", ["jira", "confluence"])
async def test_a_signed_in_browser_creates_lists_renames_and_revokes(
    make_world: MakeWorld, product: str
) -> None:
    world = await make_world(product)
    alice = session(world, "alice")
    headers = {**alice, **NO_CHECK, "Origin": origin(world)}
    resp = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "from the browser"}, headers=headers
    )
    created = await resp.json()
    assert resp.status == 200, created
    assert created["tokenForUserKey"] == world.upstream.by_name("alice").key  # type: ignore[union-attr]

    listed = await (await world.client.get(f"{API}/user/token", headers=alice)).json()
    assert [t["id"] for t in listed] == [created["id"]]
    resp = await world.client.patch(
        f"{API}/user/token/{created['id']}", json={"tokenDescription": "renamed"}, headers=headers
    )
    assert resp.status == 200 and (await resp.json())["description"] == "renamed"
    resp = await world.client.delete(f"{API}/user/token/{created['id']}", headers=headers)
    assert resp.status == 204
    assert await count(world) == 0

    # What reached the upstream: the cookie alone, on the product's own "who am I".
    myself = "/rest/api/2/myself" if product == "jira" else "/rest/api/user/current"
    asked = [r for r in world.upstream.received if r.path_qs == myself]
    assert asked and all(
        {n.lower() for n, _ in r.headers} & {"authorization", "x-forwarded-user"} == set()
        for r in asked
    )


async def test_session_answers_are_cached_but_not_forever(make_world: MakeWorld) -> None:
    world = await make_world("jira")
    alice = session(world, "alice")
    for _ in range(3):
        assert (await world.client.get(f"{API}/user/token", headers=alice)).status == 200
    asked = [r for r in world.upstream.received if r.path_qs == "/rest/api/2/myself"]
    assert len(asked) == 1


async def test_logging_out_ends_access_when_sessions_are_not_cached(
    make_world: MakeWorld,
) -> None:
    world = await make_world("jira", {"auth": {"session_cache_seconds": 0}})
    alice = session(world, "alice")
    assert (await world.client.get(f"{API}/user/token", headers=alice)).status == 200
    world.upstream.sessions.clear()
    resp = await world.client.get(f"{API}/user/token", headers=alice)
    assert resp.status == 401
    assert "sign in" in (await resp.json())["message"]


@pytest.mark.parametrize(
    "cookie",
    [f"{SESSION_COOKIE}=forged", "other=1", f"{SESSION_COOKIE}="],
    ids=["forged", "unrelated", "empty"],
)
async def test_anonymous_sessions_get_401(make_world: MakeWorld, cookie: str) -> None:
    world = await make_world("confluence")
    resp = await world.client.get(f"{API}/user/token", headers={"Cookie": cookie})
    assert resp.status == 401
    data = await resp.json()
    assert data["status"] == 401 and "forged" not in data["message"]


CROSS_SITE = [
    ("no X-Atlassian-Token", {}),
    ("wrong X-Atlassian-Token", {"X-Atlassian-Token": "yes"}),
    ("foreign Origin", {**NO_CHECK, "Origin": "https://evil.example"}),
    ("null Origin", {**NO_CHECK, "Origin": "null"}),
]


@pytest.mark.parametrize(("case", "extra"), CROSS_SITE, ids=[c for c, _ in CROSS_SITE])
async def test_cross_site_changes_are_refused_and_change_nothing(
    make_world: MakeWorld, case: str, extra: dict[str, str]
) -> None:
    world = await make_world("jira")
    alice = session(world, "alice")
    ok = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "kept"}, headers={**alice, **NO_CHECK}
    )
    token = await ok.json()
    attempts: list[tuple[str, str, Any]] = [
        ("POST", f"{API}/user/token", {"tokenDescription": "forged"}),
        ("PATCH", f"{API}/user/token/{token['id']}", {"tokenDescription": "forged"}),
        ("DELETE", f"{API}/user/token/{token['id']}", None),
        ("DELETE", f"{API}/user/token/deleteAllFor/JIRAUSER10100", None),
    ]
    for method, path, body in attempts:
        resp = await world.client.request(method, path, json=body, headers={**alice, **extra})
        data = await resp.json()
        assert resp.status == 403, (case, method, data)
        assert data["status"] == 403
    listed = await (await world.client.get(f"{API}/user/token", headers=alice)).json()
    assert [(t["id"], t["description"]) for t in listed] == [(token["id"], "kept")]


async def test_basic_and_bearer_callers_need_no_xsrf_header(make_world: MakeWorld) -> None:
    world = await make_world("jira")
    # A cookie beside Basic credentials changes nothing: the credentials decide.
    headers = {**basic("alice", "alice-pw"), "Cookie": f"{SESSION_COOKIE}=forged"}
    resp = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "curl"}, headers=headers
    )
    assert resp.status == 200
    plain = (await resp.json())["plainTextToken"]
    resp = await world.client.delete(
        f"{API}/user/token/{(await resp.json())['id']}",
        headers={"Authorization": f"Bearer {plain}", "Origin": "https://elsewhere.example"},
    )
    assert resp.status == 204


async def test_a_session_admin_may_filter_by_user_and_description(make_world: MakeWorld) -> None:
    world = await make_world("jira")
    for auth, text in (
        (basic("alice", "alice-pw"), "Nightly backup"),
        (basic("bob", "bob-pw"), "backup"),
    ):
        await world.client.post(f"{API}/user/token", json={"tokenDescription": text}, headers=auth)
    admin = session(world, "admin")
    resp = await world.client.get(
        f"{API}/user/tokensByFilter?notValidAfter=-1&limit=1&userKey=JIRAUSER10100&description=BACK",
        headers=admin,
    )
    page = await resp.json()
    assert resp.status == 200, page
    assert [t["description"] for t in page["content"]] == ["Nightly backup"]
    assert page["total"] == 1
    everything = await (
        await world.client.get(
            f"{API}/user/tokensByFilter?notValidAfter=-1&limit=1&description=backup", headers=admin
        )
    ).json()
    assert everything["total"] == 2
    assert everything["paginationLinks"]["nextPage"].endswith(
        "?page=1&limit=1&notValidAfter=-1&description=backup"
    )
    # A non-admin's session gets the API's usual refusal.
    resp = await world.client.get(
        f"{API}/user/tokensByFilter?notValidAfter=-1", headers=session(world, "bob")
    )
    assert resp.status == 403


async def test_the_own_origin_is_the_public_url_when_one_is_set(make_world: MakeWorld) -> None:
    world = await make_world("jira", {"listen": {"public_url": "https://jira.example.com/"}})
    alice = session(world, "alice")
    body = {"tokenDescription": "t"}
    own = {**alice, **NO_CHECK, "Origin": "https://jira.example.com"}
    assert (await world.client.post(f"{API}/user/token", json=body, headers=own)).status == 200
    # The address the request happened to use is not the site's origin.
    direct = {**alice, **NO_CHECK, "Origin": origin(world)}
    assert (await world.client.post(f"{API}/user/token", json=body, headers=direct)).status == 403
    assert await count(world) == 1
