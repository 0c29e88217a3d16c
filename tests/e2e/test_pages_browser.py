"""The pages in a real browser (Debian's Chromium via Playwright): a user signs in to the
fake Jira through the proxy, then creates, copies, uses, renames and revokes a token
without typing a password into the proxy. Both lanes, both stores."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from ..conftest import MakeWorld, World
from ..fakes import LOGIN_PATHS, basic
from ..peers.chromium import screenshot

pytestmark = pytest.mark.slow

PAGES = "/apitokens"


def site(world: World) -> str:
    return str(world.client.make_url("")).rstrip("/")


async def signed_in_page(browser: Any, world: World, name: str, path: str = PAGES + "/") -> Any:
    """A browser tab that opened ``path``, was sent to the login form, signed in and came back."""
    context = await browser.new_context(
        permissions=["clipboard-read", "clipboard-write"],
        viewport={"width": 1180, "height": 860},
        # Dates as the assertions spell them, wherever the tests run.
        locale="en-US",
        timezone_id="UTC",
    )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(site(world) + path)
    assert LOGIN_PATHS[world.upstream.product] in page.url  # signed out: the upstream's login
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(world.upstream.by_name(name).password)  # type: ignore[union-attr]
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(site(world) + path.rstrip("/") + "**")
    return page


async def use_token(world: World, user: str, token: str) -> int:
    """A plain HTTP client (no browser, no cookie) calls the upstream's "who am I"
    through the proxy with the token."""
    jira = world.upstream.product == "jira"
    myself = "/rest/api/2/myself" if jira else "/rest/api/user/current"
    async with (
        aiohttp.ClientSession() as session,
        session.get(site(world) + myself, headers=basic(user, token)) as resp,
    ):
        if resp.status == 200:
            assert (await resp.json())["name" if jira else "username"] == user
        return resp.status


async def test_a_user_signs_in_creates_copies_uses_renames_and_revokes(
    make_world: MakeWorld, browser: Any
) -> None:
    world = await make_world("jira")
    page = await signed_in_page(browser, world, "alice")
    await page.get_by_role("heading", name="My API tokens").wait_for()
    assert await page.get_by_text("You have no API tokens yet.").is_visible()
    # Alice is no administrator: no manager tab.
    assert not await page.get_by_role("link", name="Token manager").is_visible()

    # Create, with an expiry chosen within the limits (defaults: 6 of at most 12 months).
    options = await page.locator("#months option").all_text_contents()
    assert options == ["1 month", "3 months", "6 months", "12 months"]
    form = page.locator("#create-form")
    await form.get_by_label("Description").fill("CI pipeline <deploy>")
    await form.get_by_label("Expires after").select_option("3")
    # By keyboard: Enter in the description submits the form.
    await form.get_by_label("Description").press("Enter")
    token_box = page.get_by_label("New token", exact=True)
    await token_box.wait_for()
    token = await token_box.input_value()
    assert token
    curl = await page.locator("#curl-line").text_content()
    assert curl == f"curl -u alice:{token} {site(world)}/rest/api/2/myself"

    # Copy puts exactly the token on the clipboard.
    await page.get_by_role("button", name="Copy").click()
    await page.get_by_text("The token is copied to the clipboard.").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == token

    # The row: text as typed (escaped, not markup), dates a person reads, exact on hover.
    row = page.locator("#tokens tbody tr")
    await row.first.wait_for()
    assert await row.count() == 1
    assert await row.locator("td.description").text_content() == "CI pipeline <deploy>"
    expires = row.locator("td[data-label=Expires] time")
    assert await expires.text_content() == "Apr 15, 2026"
    assert "2026" in (await expires.get_attribute("title") or "")
    assert await row.locator("td[data-label='Last used']").text_content() == "Never used"
    await screenshot(page, "my-api-tokens")

    # On a phone: nothing wider than the screen, every value still labelled.
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await screenshot(page, "my-api-tokens-phone")
    await page.set_viewport_size({"width": 1180, "height": 860})

    # Use it with a plain HTTP client through the proxy.
    assert await use_token(world, "alice", token) == 200

    # Rename (the edit dialog, addresses untouched).
    await page.get_by_role("button", name="Done, I have copied it").click()
    await page.get_by_role("button", name="Edit CI pipeline <deploy>").click()
    rename = page.get_by_role("dialog", name="Edit token")
    await rename.get_by_label("Description").fill("Nightly deploy")
    await rename.get_by_role("button", name="Save").click()
    await page.get_by_text("Saved “Nightly deploy”.").wait_for()
    assert await row.locator("td.description").text_content() == "Nightly deploy"

    # Revoke: cancelling changes nothing; confirming shows the details, then revokes.
    await page.get_by_role("button", name="Revoke Nightly deploy").click()
    dialog = page.get_by_role("dialog", name="Revoke this token?")
    await dialog.wait_for()
    assert "Nightly deploy" in (await dialog.text_content() or "")
    await page.keyboard.press("Escape")  # the keyboard's way out
    await dialog.wait_for(state="hidden")
    assert await row.count() == 1
    await page.get_by_role("button", name="Revoke Nightly deploy").click()
    details = await page.locator("#revoke-details").text_content() or ""
    assert "Nightly deploy" in details and "Apr 15, 2026" in details
    await screenshot(page, "revoke-confirmation")
    await dialog.get_by_role("button", name="Revoke").click()
    await page.get_by_text("You have no API tokens yet.").wait_for()

    # And the token then fails.
    assert await use_token(world, "alice", token) == 401
    await page.context.close()
