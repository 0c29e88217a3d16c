"""The pages over HTTP, without a browser: who gets which page, and the headers that
keep them safe, on both lanes, both stores and both products."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from ..conftest import MakeWorld, World
from ..fakes import LOGIN_PATHS, SESSION_COOKIE, basic

PAGES = "/apitokens"


def session(world: World, name: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={world.upstream.sign_in(name)}"}


def assert_safe(headers: object) -> None:
    h = dict(headers)  # type: ignore[call-overload]
    assert h["Content-Security-Policy"] == (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Cache-Control"] == "no-store"
    assert h["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("product", ["jira", "confluence"])
@pytest.mark.parametrize("path", [PAGES, PAGES + "/", PAGES + "/manager"])
async def test_signed_out_visitors_go_to_the_login_page_and_back(
    make_world: MakeWorld, product: str, path: str
) -> None:
    world = await make_world(product)
    for headers in ({}, {"Cookie": f"{SESSION_COOKIE}=expired"}, basic("alice", "alice-pw")):
        resp = await world.client.get(path, headers=headers, allow_redirects=False)
        assert resp.status == 302
        location = urlsplit(resp.headers["Location"])
        assert location.path == LOGIN_PATHS[product]
        destination = parse_qs(location.query)["os_destination"]
        assert destination == [PAGES + ("/manager" if path.endswith("manager") else "")]
        assert_safe(resp.headers)


@pytest.mark.parametrize("product", ["jira", "confluence"])
async def test_my_tokens_page_is_safe_and_names_the_user(
    make_world: MakeWorld, product: str
) -> None:
    world = await make_world(product)
    resp = await world.client.get(PAGES + "/", headers=session(world, "alice"))
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert_safe(resp.headers)
    page = await resp.text()
    assert 'data-user="alice"' in page
    myself = "/rest/api/2/myself" if product == "jira" else "/rest/api/user/current"
    assert f'data-myself="{myself}"' in page  # the curl line's "who am I" for this site
    # No inline code: every script is a file of this origin, no on* handler attributes.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all(' src="/apitokens/static/' in a and not body for a, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", page)
    # Alice is no administrator: the manager's tab is hidden from her.
    assert 'href="/apitokens/manager" hidden' in page


async def test_the_manager_refuses_a_non_admin_with_a_page_that_says_so(
    make_world: MakeWorld,
) -> None:
    world = await make_world("jira")
    resp = await world.client.get(PAGES + "/manager", headers=session(world, "bob"))
    assert resp.status == 403
    assert resp.content_type == "text/html"
    assert_safe(resp.headers)
    assert "Only system administrators" in await resp.text()
    resp = await world.client.get(PAGES + "/manager", headers=session(world, "admin"))
    assert resp.status == 200
    assert "tokensByFilter" not in await resp.text()  # the script asks, the page does not


async def test_token_managers_get_the_manager_page_and_its_tab(make_world: MakeWorld) -> None:
    # Alice is no sysadmin; auth.token_manager_groups makes her a token manager.
    world = await make_world("jira", config={"auth": {"token_manager_groups": ["developers"]}})
    resp = await world.client.get(PAGES + "/manager", headers=session(world, "alice"))
    assert resp.status == 200
    resp = await world.client.get(PAGES + "/", headers=session(world, "alice"))
    assert 'href="/apitokens/manager" hidden' not in await resp.text()
    resp = await world.client.get(PAGES + "/manager", headers=session(world, "bob"))
    assert resp.status == 403


async def test_values_from_the_upstream_are_escaped(make_world: MakeWorld) -> None:
    world = await make_world("jira")
    world.upstream.users = (
        *world.upstream.users,
        type(world.upstream.users[0])("JIRAUSER666", '"><img src=x>', "pw"),
    )
    resp = await world.client.get(PAGES + "/", headers=session(world, '"><img src=x>'))
    page = await resp.text()
    assert "<img src=x>" not in page
    assert "&quot;&gt;&lt;img src=x&gt;" in page


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("pages.css", "text/css"),
        ("common.js", "text/javascript"),
        ("tokens.js", "text/javascript"),
        ("manager.js", "text/javascript"),
    ],
)
async def test_static_files_are_served_without_a_session(
    make_world: MakeWorld, name: str, content_type: str
) -> None:
    world = await make_world("jira")
    resp = await world.client.get(f"{PAGES}/static/{name}")
    assert resp.status == 200 and resp.content_type == content_type
    assert_safe(resp.headers)
    assert len(await resp.read()) > 500


@pytest.mark.parametrize(
    "name", ["../site.py", "site.py", "tokens.html", "%2e%2e%2fsite.py", "nope.js"]
)
async def test_only_the_listed_static_files_are_served(make_world: MakeWorld, name: str) -> None:
    world = await make_world("jira")
    resp = await world.client.get(f"{PAGES}/static/{name}")
    assert resp.status == 404


async def test_pages_can_be_turned_off_and_then_the_path_is_the_upstreams(
    make_world: MakeWorld,
) -> None:
    world = await make_world("jira", {"pages": {"enabled": False}})
    resp = await world.client.get(PAGES + "/", headers=session(world, "alice"))
    data = await resp.json()
    assert data["raw_path"] == PAGES + "/"  # the fake's echo: it reached the upstream


async def test_a_configured_path_under_the_context(make_world: MakeWorld) -> None:
    world = await make_world("jira", {"pages": {"path": "/my-tokens"}})
    resp = await world.client.get("/my-tokens/", headers=session(world, "alice"))
    assert resp.status == 200 and 'href="/my-tokens/static/pages.css"' in await resp.text()


async def test_my_tokens_still_opens_when_the_admin_check_fails(make_world: MakeWorld) -> None:
    world = await make_world("jira")
    alice = session(world, "alice")
    # The upstream fails to say who is an administrator: the tab stays hidden.
    world.upstream.failing.add("/rest/api/2/mypermissions")
    resp = await world.client.get(PAGES + "/", headers=alice)
    assert resp.status == 200
    assert 'href="/apitokens/manager" hidden' in await resp.text()


async def test_the_rotation_graces_offered_follow_the_sites_maximum(make_world: MakeWorld) -> None:
    world = await make_world("jira", {"tokens": {"max_rotation_grace_seconds": 3600}})
    resp = await world.client.get(PAGES + "/", headers=session(world, "alice"))
    page = await resp.text()
    assert 'data-graces="0,600,3600"' in page
    assert 'data-default-grace="3600"' in page  # the API's own default (a day), capped
