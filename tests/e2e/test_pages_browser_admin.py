"""The Token manager, the refusals and cross-site forgery, in a real browser.

The main flow runs on both lanes and both stores (test_pages_browser.py); these run
on SQLite, the manager on both lanes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from apitokenproxy.app import COMPONENTS

from ..conftest import MakeWorld, World
from ..fakes import basic
from ..peers.chromium import screenshot
from .test_pages_browser import PAGES, signed_in_page, site, use_token
from .test_pages_browser_policy import status_with

pytestmark = pytest.mark.slow

API = "/rest/de.resolution.apitokenauth/latest"
GRAFANA_POLICY = {"scope": "read", "allowedAddresses": ["10.20.0.0/16"]}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tokens.db'}"


async def tokens_of(world: World, key: str) -> list[str]:
    page = await world.client.app[COMPONENTS].store.find_by_expiry(None, 0, 1000, owner_key=key)
    return [t.description for t in page.items]


async def seed(world: World) -> None:
    for user, descriptions in (
        ("alice", ["Nightly backup", "Jenkins", "Grafana"]),
        ("bob", ["Backup mirror", "Release script"]),
    ):
        for text in descriptions:
            # One with a policy, so the list (and its screenshot) shows one.
            policy = GRAFANA_POLICY if text == "Grafana" else {}
            resp = await world.client.post(
                f"{API}/user/token",
                json={"tokenDescription": text, **policy},
                headers=basic(user, f"{user}-pw"),
            )
            assert resp.status == 200


async def test_an_admin_filters_creates_for_another_user_and_revokes_all(
    make_world: MakeWorld, browser: Any
) -> None:
    world = await make_world("jira")
    await seed(world)
    page = await signed_in_page(browser, world, "admin", PAGES + "/manager")
    rows = page.locator("#tokens tbody tr")
    await page.get_by_text("Page 1 of 1 · 5 tokens").wait_for()
    assert await rows.locator("td[data-label=User]").all_text_contents() == [
        "alice", "alice", "alice", "bob", "bob",
    ]  # fmt: skip
    grafana = rows.filter(has=page.locator("td.description", has_text="Grafana"))
    access = grafana.locator("td[data-label=Access]")
    assert await access.locator(".badge").text_content() == "Read only"
    assert await access.locator(".addresses").text_content() == "from 10.20.0.0/16"
    await screenshot(page, "token-manager")

    # Filter by user, then by text in the description across users.
    filters = page.locator("#filter-form")
    await filters.get_by_label("User name").fill("alice")
    await filters.get_by_role("button", name="Filter").click()
    await page.get_by_text("Page 1 of 1 · 3 tokens").wait_for()
    await filters.get_by_label("User name").fill("")
    await filters.get_by_label("Description contains").fill("BACKUP")
    await filters.get_by_role("button", name="Filter").click()
    await page.get_by_text("Page 1 of 1 · 2 tokens").wait_for()
    assert sorted(await rows.locator("td.description").all_text_contents()) == [
        "Backup mirror", "Nightly backup",
    ]  # fmt: skip
    # Expiring before a date: all of them expire on 15 July 2026 (6 months).
    await filters.get_by_label("Description contains").fill("")
    await filters.get_by_label("Expires before").fill("2026-07-15")
    await filters.get_by_role("button", name="Filter").click()
    await page.get_by_text("No tokens match.").wait_for()
    await filters.get_by_label("Expires before").fill("2026-07-16")
    await filters.get_by_role("button", name="Filter").click()
    await page.get_by_text("Page 1 of 1 · 5 tokens").wait_for()
    await filters.get_by_label("User name").fill("nobody")
    await filters.get_by_role("button", name="Filter").click()
    await page.get_by_role("alert").get_by_text("No user is named “nobody”.").wait_for()

    # Create a read-only token for another user, picked by user name, from allowed
    # addresses; a refused address is explained next to its field. It works as bob's.
    create = page.locator("#for-form")
    await create.get_by_label("User name").fill("bob")
    await create.get_by_label("Description").fill("Handed over")
    await create.get_by_label("Read only").check()
    addresses = create.get_by_label("Allowed addresses (optional)")
    await addresses.fill("10.0.0.0/8, 127.0.0.999")
    await create.get_by_role("button", name="Create token").click()
    problem = page.locator("#for-addresses-error")
    await problem.wait_for()
    assert await problem.text_content() == "'127.0.0.999' is not an IP network"
    await addresses.fill("10.0.0.0/8, 127.0.0.1")
    await create.get_by_role("button", name="Create token").click()
    token_box = page.get_by_label("New token", exact=True)
    await token_box.wait_for()
    token = await token_box.input_value()
    assert await page.locator("#new-token-owner").text_content() == "bob"
    assert await page.locator("#new-token-note").text_content() == "It expires on Jul 15, 2026."
    assert await use_token(world, "bob", token) == 200
    assert await status_with(world, "POST", token, "bob") == 403
    handed = rows.filter(has=page.locator("td.description", has_text="Handed over"))
    access = handed.locator("td[data-label=Access]")
    assert await access.locator(".badge").text_content() == "Read only"
    assert await access.locator(".addresses").text_content() == "from 10.0.0.0/8, 127.0.0.1/32"
    assert "Handed over" in await tokens_of(world, "JIRAUSER10105")

    # Revoke one token of alice's from the list.
    await page.locator("#filter-form").get_by_role("button", name="Clear").click()
    await page.get_by_text("Page 1 of 1 · 6 tokens").wait_for()
    await page.get_by_role("button", name="Revoke Grafana of alice").click()
    dialog = page.get_by_role("dialog", name="Revoke this token?")
    assert "alice" in (await dialog.text_content() or "")
    await dialog.get_by_role("button", name="Revoke").click()
    await page.get_by_text("Revoked “Grafana” of alice.").wait_for()
    assert sorted(await tokens_of(world, "JIRAUSER10100")) == ["Jenkins", "Nightly backup"]

    # Revoke all of bob's, after a confirmation that counts them.
    revoke_all = page.locator("#all-form")
    await revoke_all.get_by_label("User name").fill("bob")
    await revoke_all.get_by_role("button", name="Revoke all…").click()
    confirm = page.get_by_role("dialog", name="Revoke all tokens of bob?")
    await confirm.get_by_text("bob has 3 tokens.").wait_for()
    await confirm.get_by_role("button", name="Revoke all").click()
    await page.get_by_text("Revoked 3 tokens of bob.").wait_for()
    assert await tokens_of(world, "JIRAUSER10105") == []
    assert await use_token(world, "bob", token) == 401

    # Paged like tokensByFilter, 20 to a page.
    for i in range(19):
        await world.client.post(
            f"{API}/user/token",
            json={"tokenDescription": f"Batch {i}"},
            headers=basic("alice", "alice-pw"),
        )
    await page.locator("#filter-form").get_by_role("button", name="Filter").click()
    await page.get_by_text("Page 1 of 2 · 21 tokens").wait_for()
    assert await rows.count() == 20
    assert await page.get_by_role("button", name="Previous").is_disabled()
    await page.get_by_role("button", name="Next").click()
    await page.get_by_text("Page 2 of 2 · 21 tokens").wait_for()
    assert await rows.count() == 1
    assert await page.get_by_role("button", name="Next").is_disabled()
    await page.get_by_role("button", name="Previous").click()
    await page.get_by_text("Page 1 of 2 · 21 tokens").wait_for()
    await page.context.close()


@pytest.mark.parametrize("lane", ["fast"])
async def test_on_confluence_an_admin_creates_for_a_user_named_and_the_user_revokes_it(
    make_world: MakeWorld, browser: Any
) -> None:
    world = await make_world("confluence")
    bob = world.upstream.by_name("bob")
    assert bob is not None
    page = await signed_in_page(browser, world, "admin", PAGES + "/manager")
    create = page.locator("#for-form")
    await create.get_by_label("User name").fill("bob")
    await create.get_by_label("Description").fill("Confluence export")
    await create.get_by_role("button", name="Create token").click()
    token_box = page.get_by_label("New token", exact=True)
    await token_box.wait_for()
    token = await token_box.input_value()
    curl = await page.locator("#curl-line").text_content()
    assert curl == f"curl -u bob:{token} {site(world)}/rest/api/user/current"
    assert await use_token(world, "bob", token) == 200
    filters = page.locator("#filter-form")
    await filters.get_by_label("User name").fill("bob")
    await filters.get_by_role("button", name="Filter").click()
    await page.get_by_text("Page 1 of 1 · 1 token").wait_for()
    assert await page.locator("#tokens td[data-label=User]").all_text_contents() == ["bob"]
    await page.context.close()

    # Bob sees it on his own page and revokes it.
    page = await signed_in_page(browser, world, "bob")
    await page.get_by_role("button", name="Revoke Confluence export").click()
    await page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    await page.get_by_text("You have no API tokens yet.").wait_for()
    assert await use_token(world, "bob", token) == 401
    await page.context.close()


@pytest.mark.parametrize("lane", ["fast"])
async def test_a_non_admin_opening_the_manager_gets_a_page_that_says_so(
    make_world: MakeWorld, browser: Any
) -> None:
    world = await make_world("jira")
    page = await signed_in_page(browser, world, "bob", PAGES + "/manager")
    await page.get_by_role("heading", name="Only system administrators").wait_for()
    await screenshot(page, "token-manager-refused")
    await page.get_by_role("link", name="Go to My API tokens").click()
    await page.get_by_role("heading", name="My API tokens").wait_for()
    await page.context.close()


@pytest.mark.parametrize("lane", ["fast"])
@pytest.mark.parametrize("product", ["jira", "confluence"])
async def test_signed_out_visitors_are_sent_to_the_login_page_and_back(
    make_world: MakeWorld, browser: Any, product: str
) -> None:
    world = await make_world(product)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(site(world) + PAGES + "/manager")
    login = "/login.jsp" if product == "jira" else "/login.action"
    assert page.url.startswith(f"{site(world)}{login}?os_destination=")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill("admin-pw")
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="Token manager").wait_for()
    assert page.url == site(world) + PAGES + "/manager"
    # Logging out of the upstream ends the session for the pages too.
    await page.goto(site(world) + "/logout")
    await page.goto(site(world) + PAGES + "/")
    assert login in page.url
    await context.close()


EVIL = """<!doctype html><html><body>
<form id="forged" method="post" action="{api}/user/token" enctype="text/plain">
<input name='{{"tokenDescription":"forged","x":"' value='"}}'></form>
<script src="/evil.js"></script></body></html>"""

EVIL_JS = """
window.results = [];
async function attempt(options) {{
  try {{
    const r = await fetch("{api}/user/token", {{credentials: "include", ...options}});
    window.results.push(r.type === "opaque" ? "opaque" : r.status);
  }} catch (e) {{ window.results.push("blocked"); }}
}}
(async () => {{
  // A simple request (no preflight): the cookie goes along, the header cannot.
  await attempt({{method: "POST", mode: "no-cors", body: '{{"tokenDescription":"forged"}}',
                  headers: {{"Content-Type": "text/plain"}}}});
  // With the header, the browser must ask first; the proxy never says yes.
  await attempt({{method: "POST", body: '{{"tokenDescription":"forged"}}',
                  headers: {{"Content-Type": "application/json", "X-Atlassian-Token": "no-check"}}}});
  await attempt({{method: "DELETE", headers: {{"X-Atlassian-Token": "no-check"}}}});
  window.done = true;
}})();
"""


@pytest.mark.parametrize("lane", ["fast", "aiohttp"])
async def test_another_site_cannot_use_the_session_to_change_tokens(
    make_world: MakeWorld, browser: Any, aiohttp_server: Any
) -> None:
    world = await make_world("jira")
    api = site(world) + API

    async def evil_page(request: web.Request) -> web.Response:
        return web.Response(text=EVIL.format(api=api), content_type="text/html")

    async def evil_script(request: web.Request) -> web.Response:
        return web.Response(text=EVIL_JS.format(api=api), content_type="text/javascript")

    evil = web.Application()
    evil.router.add_get("/", evil_page)
    evil.router.add_get("/evil.js", evil_script)
    # Another port on the same host: another origin, but the same site, so the
    # browser sends the session cookie along; the strongest case for forgery.
    evil_server = await aiohttp_server(evil)
    page = await signed_in_page(browser, world, "alice")
    await page.goto(str(evil_server.make_url("/")))
    await page.wait_for_function("window.done === true")
    results = await page.evaluate("window.results")
    assert results[0] == "opaque" and results[1:] == ["blocked", "blocked"], results
    # The plain form post: the cookie goes along, the answer is a refusal.
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.evaluate("document.getElementById('forged').submit()")
    response = await posted.value
    # 403, not 401: the cookie did identify alice, and the cross-site rule refused.
    assert response.status == 403
    assert "X-Atlassian-Token" in await response.text()
    assert await tokens_of(world, "JIRAUSER10100") == []
    await page.context.close()
