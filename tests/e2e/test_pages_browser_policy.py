"""The token policy in a real browser: a user makes a read-only token with allowed
addresses, fixes an address the server refused, narrows a token, edits its addresses and
rotates it, and a plain HTTP client through the proxy finds each rule enforced.
Both lanes, both stores."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from apitokenproxy.app import COMPONENTS

from ..conftest import MakeWorld, World
from ..fakes import basic
from ..peers.chromium import screenshot
from .test_pages_browser import signed_in_page, site, use_token

pytestmark = pytest.mark.slow

API = "/rest/de.resolution.apitokenauth/latest"
ISSUE = "/rest/api/2/issue/X-1"
HOUR_MS = 3_600_000


async def status_with(world: World, method: str, token: str, user: str = "alice") -> int:
    """A plain HTTP client (no browser, no cookie) sends ``method`` through the proxy."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, site(world) + ISSUE, headers=basic(user, token)) as resp,
    ):
        return resp.status


async def create(
    page: Any, description: str, *, read: bool = False, addresses: str = ""
) -> tuple[str, Any]:
    """Fill in the create form; the token shown once, and the JSON body the page sent."""
    form = page.locator("#create-form")
    await form.get_by_label("Description").fill(description)
    if read:
        await form.get_by_label("Read only").check()
    await form.get_by_label("Allowed addresses (optional)").fill(addresses)
    async with page.expect_request(lambda r: r.method == "POST") as sent:
        await form.get_by_role("button", name="Create token").click()
    box = page.get_by_label("New token", exact=True)
    await box.wait_for()
    token: str = await box.input_value()
    await page.get_by_role("button", name="Done, I have copied it").click()
    return token, (await sent.value).post_data_json


async def own_tokens(world: World) -> list[dict[str, Any]]:
    resp = await world.client.get(f"{API}/user/token", headers=basic("alice", "alice-pw"))
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


def row_of(page: Any, description: str) -> Any:
    return page.locator("#tokens tbody tr").filter(
        has=page.locator("td.description", has_text=description)
    )


async def test_a_read_only_token_with_allowed_addresses_made_in_the_page_is_enforced(
    make_world: MakeWorld, browser: Any
) -> None:
    # Alice's group allows 2 months at most; the page offers the site's choices and
    # shows what the server granted.
    limits = {"group_limits": [{"group": "developers", "max_validity_months": 2}]}
    world = await make_world("jira", {"tokens": limits})
    page = await signed_in_page(browser, world, "alice")
    form = page.locator("#create-form")
    # Write is the default, explained in words.
    assert await form.get_by_label("Read and write").is_checked()

    # An address the server refuses: its reason next to the field, nothing created.
    await form.get_by_label("Description").fill("Dashboard")
    await form.get_by_label("Read only").check()
    field = form.get_by_label("Allowed addresses (optional)")
    await field.fill("10.20.0.0/16\n10.1.2.300")
    await form.get_by_role("button", name="Create token").click()
    problem = page.locator("#addresses-error")
    await problem.wait_for()
    assert "'10.1.2.300' is not an IP network" in (await problem.text_content() or "")
    assert await field.get_attribute("aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.id") == "addresses"
    assert await own_tokens(world) == []  # nothing half-made
    await screenshot(page, "address-refused")

    # Corrected (one per line or comma separated; the server stores them canonical).
    await field.fill("10.20.1.7/16, 127.0.0.1\n::1")
    await form.get_by_role("button", name="Create token").click()
    box = page.get_by_label("New token", exact=True)
    await box.wait_for()
    token = await box.input_value()
    assert await problem.is_hidden()
    # Asked for the default 6 months, granted 2 from 15 January 2026.
    assert await page.locator("#new-token-note").text_content() == "It expires on Mar 15, 2026."
    await page.get_by_role("button", name="Done, I have copied it").click()
    row = row_of(page, "Dashboard")
    access = row.locator("td[data-label=Access]")
    assert await access.locator(".badge").text_content() == "Read only"
    assert await access.locator(".addresses").text_content() == (
        "from 10.20.0.0/16, 127.0.0.1/32, ::1/128"
    )
    # The form is back to its defaults for the next token.
    assert await form.get_by_label("Read and write").is_checked()

    # A plain client through the proxy: reads pass, writes are refused by the proxy.
    assert await use_token(world, "alice", token) == 200
    assert await status_with(world, "GET", token) != 403
    assert await status_with(world, "POST", token) == 403
    assert await status_with(world, "DELETE", token) == 403

    # Only from 10.20.0.0/16: this client (127.0.0.1) is refused like a bad token.
    await row.get_by_role("button", name="Edit Dashboard").click()
    dialog = page.get_by_role("dialog", name="Edit token")
    addresses = dialog.get_by_label("Allowed addresses")
    assert await addresses.input_value() == "10.20.0.0/16\n127.0.0.1/32\n::1/128"
    await addresses.fill("10.20.0.0/16 not-a-network")
    await dialog.get_by_role("button", name="Save").click()
    await page.locator("#edit-addresses-error").wait_for()
    assert "'not-a-network' is not an IP network" in (
        await page.locator("#edit-addresses-error").text_content() or ""
    )
    assert await dialog.is_visible()  # still open, to correct
    assert await page.evaluate("document.activeElement.id") == "edit-addresses"
    await addresses.fill("10.20.0.0/16")
    await dialog.get_by_role("button", name="Save").click()
    await page.get_by_text("Saved “Dashboard”.").wait_for()
    assert await access.locator(".addresses").text_content() == "from 10.20.0.0/16"
    assert await use_token(world, "alice", token) == 401

    # Emptied: from anywhere again.
    await row.get_by_role("button", name="Edit Dashboard").click()
    await addresses.fill("")
    await dialog.get_by_role("button", name="Save").click()
    await access.locator(".addresses", has_text="from anywhere").wait_for()
    assert await use_token(world, "alice", token) == 200
    await page.context.close()


async def test_a_write_token_is_narrowed_to_read_after_a_confirmation(
    make_world: MakeWorld, browser: Any
) -> None:
    world = await make_world("jira")
    page = await signed_in_page(browser, world, "alice")
    token, sent = await create(page, "Importer")
    # The defaults (write, from anywhere) are asked for exactly as the seed's API is.
    assert sent == {"tokenDescription": "Importer", "tokenValidityTimeInMonths": 6}
    row = row_of(page, "Importer")
    access = row.locator("td[data-label=Access]")
    assert await access.locator(".badge").text_content() == "Read and write"
    assert await access.locator(".addresses").text_content() == "from anywhere"
    assert await status_with(world, "POST", token) != 403

    narrow = row.get_by_role("button", name="Make Importer read-only")
    await narrow.click()
    dialog = page.get_by_role("dialog", name="Make this token read-only?")
    assert "cannot be undone" in (await dialog.text_content() or "")
    await screenshot(page, "make-read-only")
    await dialog.get_by_role("button", name="Cancel").click()
    await dialog.wait_for(state="hidden")
    assert await status_with(world, "POST", token) != 403  # cancelled: unchanged

    await narrow.click()
    await dialog.get_by_role("button", name="Make read-only").click()
    await page.get_by_text("“Importer” is now read-only.").wait_for()
    assert await access.locator(".badge").text_content() == "Read only"
    assert await narrow.count() == 0  # a read token cannot be widened: no button for it
    assert await status_with(world, "POST", token) == 403
    assert await use_token(world, "alice", token) == 200
    await page.context.close()


async def test_rotation_shows_the_new_secret_once_and_the_old_one_lives_for_the_grace(
    make_world: MakeWorld, browser: Any
) -> None:
    world = await make_world("jira", {"tokens": {"max_rotation_grace_seconds": 3 * 3600}})
    page = await signed_in_page(browser, world, "alice")
    old, sent = await create(page, "Runner", read=True)
    assert sent == {"tokenDescription": "Runner", "tokenValidityTimeInMonths": 6, "scope": "read"}
    row = row_of(page, "Runner")

    await row.get_by_role("button", name="Rotate Runner").click()
    dialog = page.get_by_role("dialog", name="Rotate this token?")
    grace = dialog.get_by_label("The current secret keeps working for")
    # Within the site's maximum of 3 hours; the API's default (capped) preselected.
    assert await grace.locator("option").all_text_contents() == [
        "No time: it stops at once", "10 minutes", "1 hour", "3 hours",
    ]  # fmt: skip
    assert await grace.input_value() == str(3 * 3600)
    await grace.select_option(label="1 hour")
    await screenshot(page, "rotate-confirmation")
    await dialog.get_by_role("button", name="Rotate").click()

    box = page.get_by_label("New token", exact=True)
    await box.wait_for()
    new = await box.input_value()
    assert new and new != old
    assert await page.locator("#curl-line").text_content() == (
        f"curl -u alice:{new} {site(world)}/rest/api/2/myself"
    )
    assert await page.locator("#new-token-note").text_content() == (
        "The old secret keeps working until Jan 15, 2026, 1:00:00 PM UTC;"
        " after that only this one does."
    )
    await screenshot(page, "rotated")
    await page.get_by_role("button", name="Copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == new

    # The new secret works at once, keeping the policy; the old one until the grace ends.
    assert await use_token(world, "alice", new) == 200
    assert await status_with(world, "POST", new) == 403
    assert await use_token(world, "alice", old) == 200
    world.clock.advance(HOUR_MS - 1)
    assert await use_token(world, "alice", old) == 200
    world.clock.advance(1)
    assert await use_token(world, "alice", old) == 401
    assert await use_token(world, "alice", new) == 200

    # No grace: the old secret stops at once.
    await page.get_by_role("button", name="Done, I have copied it").click()
    await row.get_by_role("button", name="Rotate Runner").click()
    await grace.select_option(label="No time: it stops at once")
    await dialog.get_by_role("button", name="Rotate").click()
    await box.wait_for()
    newest = await box.input_value()
    assert await page.locator("#new-token-note").text_content() == (
        "The old secret has stopped working: only this one works now."
    )
    assert await use_token(world, "alice", new) == 401
    assert await use_token(world, "alice", newest) == 200
    await page.context.close()


@pytest.mark.parametrize("lane", ["fast"])
async def test_where_a_token_was_last_used_from_is_shown(
    make_world: MakeWorld, browser: Any
) -> None:
    """The page asks for ``lastAccessedFrom`` and shows it next to the last use, on
    the user's page and the manager's; an unused token is "Never used"."""
    world = await make_world("jira")
    made = []
    for description in ("Used", "Fresh"):
        resp = await world.client.post(
            f"{API}/user/token",
            json={"tokenDescription": description},
            headers=basic("alice", "alice-pw"),
        )
        assert resp.status == 200
        made.append(await resp.json())
    assert await use_token(world, "alice", made[0]["plainTextToken"]) == 200
    await world.client.app[COMPONENTS].last_accessed.flush()
    for user, path in (("alice", "/apitokens/"), ("admin", "/apitokens/manager")):
        page = await signed_in_page(browser, world, user, path)
        used = row_of(page, "Used").locator("td[data-label='Last used']")
        await used.wait_for()
        assert (await used.text_content() or "").endswith(" from 127.0.0.1"), path
        fresh = row_of(page, "Fresh").locator("td[data-label='Last used']")
        assert await fresh.text_content() == "Never used", path
        await page.context.close()
