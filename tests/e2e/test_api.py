"""The token-management API end to end: a real proxy app in front of a fake Jira/Confluence."""

from __future__ import annotations

from typing import Any

import pytest

from apitokenproxy.app import COMPONENTS
from apitokenproxy.auth.tokens import parse_token
from apitokenproxy.tokenapi.validity import valid_until

from ..conftest import START_MS, MakeWorld, World
from ..fakes import basic, bearer

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")
ADMIN = basic("admin", "admin-pw")
JSON = {"Content-Type": "application/json"}


async def create(world: World, auth: dict[str, str], body: Any, status: int = 200) -> Any:
    resp = await world.client.post(f"{API}/user/token", json=body, headers=auth)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def token_for(world: World, auth: dict[str, str], **extra: Any) -> dict[str, Any]:
    return await create(world, auth, {"tokenDescription": "test token", **extra})  # type: ignore[no-any-return]


def assert_error(resp_status: int, data: Any, status: int, fragment: str) -> None:
    assert resp_status == status
    assert data["status"] == status
    assert fragment in data["message"], data["message"]
    assert data["errorMessages"] == [data["message"]]


# Create ---------------------------------------------------------------------


async def test_create_returns_every_seed_field_and_a_working_token(jira: World) -> None:
    data = await create(jira, ALICE, {"tokenDescription": "Automation token"})

    assert set(data) == {
        "id", "description", "created", "validUntil", "lastAccessed",
        "tokenForUserKey", "tokenCreatedByUserKey", "plainTextToken",
    }  # fmt: skip
    assert data["description"] == "Automation token"
    assert data["created"] == START_MS
    assert data["validUntil"] == valid_until(START_MS, 6)
    assert data["lastAccessed"] == 0
    assert data["tokenForUserKey"] == "JIRAUSER10100"
    assert data["tokenCreatedByUserKey"] == "JIRAUSER10100"
    assert parse_token(data["plainTextToken"]).token_id == data["id"]

    resp = await jira.client.get(f"{API}/user/token", headers=bearer(data["plainTextToken"]))
    assert resp.status == 200
    assert [t["id"] for t in await resp.json()] == [data["id"]]


async def test_plaintext_token_is_never_stored(jira: World) -> None:
    data = await create(jira, ALICE, {"tokenDescription": "secret check"})
    secret = parse_token(data["plainTextToken"]).secret
    record = await jira.client.app[COMPONENTS].store.get(data["id"])
    assert record is not None
    assert secret not in record.secret_hash
    assert record.secret_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("months", "expected_months"),
    [(None, 6), (1, 1), (12, 12), (13, 12), (1200, 12), ("3", 3)],
)
async def test_validity_defaults_and_is_capped(
    jira: World, months: Any, expected_months: int
) -> None:
    body: dict[str, Any] = {"tokenDescription": "t"}
    if months is not None:
        body["tokenValidityTimeInMonths"] = months
    data = await create(jira, ALICE, body)
    assert data["validUntil"] == valid_until(START_MS, expected_months)


async def test_no_limit_and_no_default_means_never_expires(make_world: MakeWorld) -> None:
    world = await make_world(
        config={"tokens": {"default_validity_months": 0, "max_validity_months": 0}}
    )
    data = await create(world, ALICE, {"tokenDescription": "forever"})
    assert data["validUntil"] is None
    assert (await create(world, ALICE, {"tokenDescription": "t", "tokenValidityTimeInMonths": 48}))[
        "validUntil"
    ] == valid_until(START_MS, 48)


async def test_admin_creates_for_another_user_as_in_the_seed(jira: World) -> None:
    without = await create(
        jira,
        ADMIN,
        {"tokenDescription": "token for another user", "tokenForUserKey": "JIRAUSER10105"},
    )
    with_months = await create(
        jira,
        ADMIN,
        {
            "tokenDescription": "token for another user",
            "tokenForUserKey": "JIRAUSER10105",
            "tokenValidityTimeInMonths": 12,
        },
    )
    for data in (without, with_months):
        assert data["tokenForUserKey"] == "JIRAUSER10105"
        assert data["tokenCreatedByUserKey"] == "admin"
    assert without["validUntil"] == valid_until(START_MS, 6)
    assert with_months["validUntil"] == valid_until(START_MS, 12)

    # The token is bob's: it works with bob's name and not with the admin's.
    resp = await jira.client.get(
        f"{API}/user/token", headers=basic("bob", without["plainTextToken"])
    )
    assert resp.status == 200
    resp = await jira.client.get(
        f"{API}/user/token", headers=basic("admin", without["plainTextToken"])
    )
    assert resp.status == 401


async def test_normal_user_cannot_create_for_others_but_may_name_itself(jira: World) -> None:
    data = await create(
        jira, ALICE, {"tokenDescription": "x", "tokenForUserKey": "JIRAUSER10105"}, status=403
    )
    assert "administrators" in data["message"]
    own = await create(jira, ALICE, {"tokenDescription": "x", "tokenForUserKey": "JIRAUSER10100"})
    assert own["tokenForUserKey"] == "JIRAUSER10100"


async def test_unknown_user_key_is_404_and_writes_nothing(jira: World) -> None:
    data = await create(
        jira, ADMIN, {"tokenDescription": "x", "tokenForUserKey": "JIRAUSER99999"}, status=404
    )
    assert "JIRAUSER99999" in data["message"]
    page = await jira.client.app[COMPONENTS].store.find_by_expiry(None, 0, 50)
    assert page.total == 0


async def test_token_authenticated_admin_is_checked_through_the_user_header(jira: World) -> None:
    admin_token = (await token_for(jira, ADMIN))["plainTextToken"]
    jira.upstream.received.clear()
    data = await create(
        jira, bearer(admin_token), {"tokenDescription": "x", "tokenForUserKey": "JIRAUSER10105"}
    )
    assert data["tokenCreatedByUserKey"] == "admin"
    asked = [r for r in jira.upstream.received if r.path_qs.startswith("/rest/api/2/mypermissions")]
    assert asked
    headers = dict(asked[0].headers)
    assert headers["X-Forwarded-User"] == "admin"
    assert "Authorization" not in headers


# Bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "must be an object"),
        (b'"text"', "must be an object"),
        (b"{}", "tokenDescription is required"),
        (b'{"tokenDescription": ""}', "must not be empty"),
        (b'{"tokenDescription": "   "}', "must not be empty"),
        (b'{"tokenDescription": 5}', "must be a string"),
        (b'{"tokenDescription": "' + b"x" * 256 + b'"}', "longer than 255"),
        (b'{"tokenDescription": "t", "tokenValidityTimeInMonths": 0}', "positive whole number"),
        (b'{"tokenDescription": "t", "tokenValidityTimeInMonths": -3}', "positive whole number"),
        (b'{"tokenDescription": "t", "tokenValidityTimeInMonths": 1.5}', "positive whole number"),
        (b'{"tokenDescription": "t", "tokenValidityTimeInMonths": "six"}', "positive whole number"),
        (b'{"tokenDescription": "t", "tokenValidityTimeInMonths": true}', "positive whole number"),
        (b'{"tokenDescription": "t", "tokenValidityTimeInMonths": 99999}', "at most 1200"),
        (b'{"tokenDescription": "t", "tokenValidityTimeInMonths": NaN}', "not valid JSON"),
        (b'{"tokenDescription": "t", "tokenForUserKey": 7}', "non-empty string"),
        (b'{"tokenDescription": "t", "tokenForUserKey": ""}', "non-empty string"),
        (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
    ],
    ids=lambda value: value[:40] if isinstance(value, bytes) else value,
)
async def test_create_rejects_bad_input_with_400(jira: World, body: bytes, fragment: str) -> None:
    resp = await jira.client.post(f"{API}/user/token", data=body, headers={**ALICE, **JSON})
    assert_error(resp.status, await resp.json(), 400, fragment)
    assert (await jira.client.app[COMPONENTS].store.find_by_expiry(None, 0, 50)).total == 0


async def test_oversized_body_is_413(jira: World) -> None:
    body = b'{"tokenDescription": "' + b"x" * 100_000 + b'"}'
    resp = await jira.client.post(f"{API}/user/token", data=body, headers={**ALICE, **JSON})
    data = await resp.json()
    assert resp.status == 413, data
    assert data["status"] == 413


async def test_markup_and_sql_in_descriptions_are_plain_data(jira: World) -> None:
    text = "<script>alert(1)</script>'; DROP TABLE tokens; --"
    data = await create(jira, ALICE, {"tokenDescription": text, "unknownField": [1]})
    resp = await jira.client.get(f"{API}/user/token", headers=ALICE)
    assert [t["description"] for t in await resp.json()] == [text]
    assert data["description"] == text


# Authentication -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "authentication required"),
        (basic("alice", "wrong"), "wrong user name or password"),
        (basic("nobody", "x"), "wrong user name or password"),
        ({"Authorization": "Basic !!!"}, "not valid base64"),
        ({"Authorization": "Basic YWxpY2U="}, "user:password"),
        ({"Authorization": "Bearer"}, "exactly one token"),
        ({"Authorization": "Bearer atpx_1_abc"}, "expected format"),
        ({"Authorization": "Negotiate abc"}, "Negotiate"),
        (bearer("atpx_999_" + "A" * 32 + "000000"), "checksum"),
    ],
)
async def test_bad_credentials_get_401_with_a_challenge(
    jira: World, headers: dict[str, str], fragment: str
) -> None:
    resp = await jira.client.get(f"{API}/user/token", headers=headers)
    assert_error(resp.status, await resp.json(), 401, fragment)
    assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")


async def test_expired_revoked_and_foreign_tokens_are_refused(jira: World) -> None:
    data = await token_for(jira, ALICE, tokenValidityTimeInMonths=1)
    token = data["plainTextToken"]
    # A token under another user's name.
    resp = await jira.client.get(f"{API}/user/token", headers=basic("bob", token))
    assert_error(resp.status, await resp.json(), 401, "does not belong")
    # The user name matches case-insensitively.
    assert (await jira.client.get(f"{API}/user/token", headers=basic("ALICE", token))).status == 200
    # One millisecond after validUntil.
    jira.clock.now = data["validUntil"]
    resp = await jira.client.get(f"{API}/user/token", headers=bearer(token))
    assert_error(resp.status, await resp.json(), 401, "expired")
    jira.clock.now = START_MS
    # Deleted: refused at once, although it was cached.
    assert (await jira.client.delete(f"{API}/user/token/{data['id']}", headers=ALICE)).status == 204
    resp = await jira.client.get(f"{API}/user/token", headers=bearer(token))
    assert_error(resp.status, await resp.json(), 401, "unknown or has been revoked")


async def test_wrong_secret_for_a_real_id_is_refused(jira: World) -> None:
    from apitokenproxy.auth.tokens import format_token

    data = await token_for(jira, ALICE)
    forged = format_token(data["id"], "B" * 32)
    resp = await jira.client.get(f"{API}/user/token", headers=bearer(forged))
    assert_error(resp.status, await resp.json(), 401, "unknown or has been revoked")


async def test_captcha_is_explained(jira: World) -> None:
    jira.upstream.captcha_for.add("alice")
    resp = await jira.client.get(f"{API}/user/token", headers=basic("alice", "wrong"))
    assert_error(resp.status, await resp.json(), 401, "CAPTCHA")


async def test_unreachable_upstream_is_502(make_world: MakeWorld) -> None:
    world = await make_world(config={"upstream": {"url": "http://127.0.0.1:9"}})
    resp = await world.client.get(f"{API}/user/token", headers=ALICE)
    assert_error(resp.status, await resp.json(), 502, "cannot be reached")


# List, rename, delete -------------------------------------------------------


@pytest.mark.parametrize("path", ["/user/token", "/user/token/"])
async def test_list_has_the_seed_fields(jira: World, path: str) -> None:
    mine = await token_for(jira, ALICE)
    await token_for(jira, BOB)
    resp = await jira.client.get(API + path, headers=ALICE)
    assert resp.status == 200
    assert await resp.json() == [
        {
            "created": START_MS,
            "description": "test token",
            "id": mine["id"],
            "lastAccessed": 0,
            "validUntil": mine["validUntil"],
        }
    ]


async def test_rename_own_token_only(jira: World) -> None:
    mine = await token_for(jira, ALICE)
    theirs = await token_for(jira, BOB)
    resp = await jira.client.patch(
        f"{API}/user/token/{mine['id']}",
        json={"tokenDescription": "Updated token description"},
        headers=ALICE,
    )
    assert resp.status == 200
    assert (await resp.json())["description"] == "Updated token description"

    for token_id in (theirs["id"], 424242):
        resp = await jira.client.patch(
            f"{API}/user/token/{token_id}", json={"tokenDescription": "mine now"}, headers=ALICE
        )
        assert_error(resp.status, await resp.json(), 404, f"no token with id {token_id}")
    record = await jira.client.app[COMPONENTS].store.get(theirs["id"])
    assert record is not None and record.description == "test token"


@pytest.mark.parametrize("bad_id", ["abc", "0", "-1", "1.5", "99999999999999999999", "%C2%B2"])
async def test_non_numeric_ids_are_400(jira: World, bad_id: str) -> None:
    for method in ("PATCH", "DELETE"):
        resp = await jira.client.request(
            method, f"{API}/user/token/{bad_id}", json={"tokenDescription": "x"}, headers=ALICE
        )
        assert_error(resp.status, await resp.json(), 400, "positive whole number")


async def test_delete_own_and_admin_deletes_any(jira: World) -> None:
    a1 = await token_for(jira, ALICE)
    b1 = await token_for(jira, BOB)
    b2 = await token_for(jira, BOB)
    assert (await jira.client.delete(f"{API}/user/token/{a1['id']}", headers=ALICE)).status == 204
    resp = await jira.client.delete(f"{API}/user/token/{b1['id']}", headers=ALICE)
    assert_error(resp.status, await resp.json(), 404, "no token")
    assert (await jira.client.delete(f"{API}/user/token/{b1['id']}", headers=ADMIN)).status == 204
    resp = await jira.client.delete(f"{API}/user/token/{b1['id']}", headers=ADMIN)
    assert resp.status == 404
    remaining = await jira.client.app[COMPONENTS].store.find_by_expiry(None, 0, 50)
    assert [r.id for r in remaining.items] == [b2["id"]]


async def test_delete_all_for_is_for_sysadmins(jira: World) -> None:
    for _ in range(3):
        await token_for(jira, BOB)
    await token_for(jira, ALICE)
    resp = await jira.client.delete(f"{API}/user/token/deleteAllFor/JIRAUSER10105", headers=ALICE)
    assert_error(resp.status, await resp.json(), 403, "administrators")
    resp = await jira.client.delete(f"{API}/user/token/deleteAllFor/JIRAUSER10105", headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == {"deletedTokens": 3}
    assert (await jira.client.app[COMPONENTS].store.find_by_expiry(None, 0, 50)).total == 1


async def test_no_answer_of_the_token_api_may_be_stored_by_a_cache(jira: World) -> None:
    """Issue 18, item 13: create and rotate answer with ``plainTextToken``, and a browser
    or proxy cache must never keep it; the other answers list tokens, owners and
    addresses, and a session caller's (a cookie, no Authorization) could be kept by a
    shared cache and shown to the next user. So every answer says ``no-store``."""
    made = await jira.client.post(
        f"{API}/user/token", json={"tokenDescription": "t"}, headers=ADMIN
    )
    token_id = (await made.json())["id"]
    await token_for(jira, BOB)
    answers = [made]
    for method, path, body in [
        ("POST", f"/user/token/{token_id}/rotate", {}),
        ("GET", "/user/token", None),
        ("PATCH", f"/user/token/{token_id}", {"tokenDescription": "renamed"}),
        ("GET", "/user/tokensByFilter?notValidAfter=-1", None),
        ("GET", "/audit", None),
        ("DELETE", "/user/token/deleteAllFor/JIRAUSER10105", None),
        ("DELETE", f"/user/token/{token_id}", None),
    ]:
        answers.append(await jira.client.request(method, API + path, json=body, headers=ADMIN))
    reader = await token_for(jira, ALICE)
    answers.append(
        await jira.client.get(f"{API}/user/token/current", headers=bearer(reader["plainTextToken"]))
    )
    for resp in answers:
        deleted_one = resp.method == "DELETE" and "deleteAllFor" not in resp.url.path
        assert resp.status == (204 if deleted_one else 200), (resp.url, await resp.text())
        assert resp.headers.getall("Cache-Control") == ["no-store"], resp.url
        assert resp.headers.getall("Pragma") == ["no-cache"], resp.url  # HTTP/1.0 caches


async def test_admin_user_keys_from_config_are_sysadmins(make_world: MakeWorld) -> None:
    world = await make_world(config={"auth": {"admin_user_keys": ["JIRAUSER10100"]}})
    resp = await world.client.delete(f"{API}/user/token/deleteAllFor/JIRAUSER10105", headers=ALICE)
    assert resp.status == 200


async def test_last_accessed_is_recorded(jira: World) -> None:
    data = await token_for(jira, ALICE)
    jira.clock.advance(5_000)
    resp = await jira.client.get(f"{API}/user/token", headers=bearer(data["plainTextToken"]))
    assert resp.status == 200
    await jira.client.app[COMPONENTS].last_accessed.flush()
    listed = await (await jira.client.get(f"{API}/user/token", headers=ALICE)).json()
    assert listed[0]["lastAccessed"] == START_MS + 5_000


# tokensByFilter ---------------------------------------------------------------


async def _seed_tokens(world: World) -> list[dict[str, Any]]:
    """Four tokens whose validUntil order differs from their id order, as in the seed."""
    made = []
    for months, auth, extra in [
        (12, ADMIN, {}),
        (6, ADMIN, {}),
        (12, ADMIN, {}),
        (12, ADMIN, {"tokenForUserKey": "JIRAUSER10105"}),
    ]:
        made.append(await token_for(world, auth, tokenValidityTimeInMonths=months, **extra))
        world.clock.advance(1000)
    return made


async def test_filter_returns_the_seed_envelope(jira: World) -> None:
    made = await _seed_tokens(jira)
    resp = await jira.client.get(
        f"{API}/user/tokensByFilter?notValidAfter=4102444800000", headers=ADMIN
    )
    assert resp.status == 200
    data = await resp.json()
    base = str(jira.client.make_url("")).rstrip("/")
    assert [t["id"] for t in data["content"]] == [made[i]["id"] for i in (1, 0, 2, 3)]
    assert set(data["content"][0]) == {
        "created", "description", "id", "lastAccessed",
        "tokenCreatedByUserKey", "tokenForUserKey", "validUntil",
    }  # fmt: skip
    assert data["content"][3]["tokenForUserKey"] == "JIRAUSER10105"
    assert data["content"][3]["tokenCreatedByUserKey"] == "admin"
    assert {k: v for k, v in data.items() if k != "content"} == {
        "currentPage": 0,
        "limit": 50,
        "offset": 0,
        "paginationLinks": {"baseUrl": base, "nextPage": "", "previousPage": ""},
        "total": 4,
        "totalPages": 1,
    }


async def test_filter_pages_like_the_seed(jira: World) -> None:
    made = await _seed_tokens(jira)
    nva = 4102444800000
    url = f"{API}/user/tokensByFilter?page=0&limit=1&notValidAfter={nva}"
    resp = await jira.client.get(url, headers=ADMIN)
    data = await resp.json()
    base = str(jira.client.make_url("")).rstrip("/")
    assert [t["id"] for t in data["content"]] == [made[1]["id"]]
    assert data["paginationLinks"] == {
        "baseUrl": base,
        "nextPage": f"{base}{API}/user/tokensByFilter?page=1&limit=1&notValidAfter={nva}",
        "previousPage": "",
    }
    assert (data["total"], data["totalPages"], data["limit"]) == (4, 4, 1)

    # Follow nextPage to the end.
    seen = [t["id"] for t in data["content"]]
    while data["paginationLinks"]["nextPage"]:
        next_path = data["paginationLinks"]["nextPage"].removeprefix(base)
        data = await (await jira.client.get(next_path, headers=ADMIN)).json()
        seen += [t["id"] for t in data["content"]]
    assert seen == [made[i]["id"] for i in (1, 0, 2, 3)]
    assert data["currentPage"] == 3
    assert data["paginationLinks"]["previousPage"].endswith(f"page=2&limit=1&notValidAfter={nva}")


async def test_filter_by_time_and_minus_one(jira: World) -> None:
    made = await _seed_tokens(jira)
    cutoff = made[1]["validUntil"]  # the 6-month token, exactly at its validUntil
    data = await (
        await jira.client.get(f"{API}/user/tokensByFilter?notValidAfter={cutoff}", headers=ADMIN)
    ).json()
    assert [t["id"] for t in data["content"]] == [made[1]["id"]]
    data = await (
        await jira.client.get(
            f"{API}/user/tokensByFilter?notValidAfter={cutoff - 1}", headers=ADMIN
        )
    ).json()
    assert data["total"] == 0 and data["totalPages"] == 0
    data = await (
        await jira.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ADMIN)
    ).json()
    assert data["total"] == 4


async def test_filter_caps_limit_at_50(jira: World) -> None:
    resp = await jira.client.get(
        f"{API}/user/tokensByFilter?notValidAfter=-1&limit=500", headers=ADMIN
    )
    assert (await resp.json())["limit"] == 50


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "notValidAfter is required"),
        ("notValidAfter=soon", "notValidAfter must be a whole number"),
        ("notValidAfter=-2", "notValidAfter must be a whole number"),
        ("notValidAfter=-1&page=x", "page must be"),
        ("notValidAfter=-1&page=-1", "page must be"),
        ("notValidAfter=-1&limit=0", "limit must be"),
        ("notValidAfter=-1&limit=1e3", "limit must be"),
    ],
)
async def test_filter_rejects_bad_queries(jira: World, query: str, fragment: str) -> None:
    resp = await jira.client.get(f"{API}/user/tokensByFilter?{query}", headers=ADMIN)
    assert_error(resp.status, await resp.json(), 400, fragment)


async def test_filter_is_for_sysadmins(jira: World) -> None:
    resp = await jira.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ALICE)
    assert_error(resp.status, await resp.json(), 403, "administrators")


async def test_public_url_sets_the_links(make_world: MakeWorld) -> None:
    world = await make_world(config={"listen": {"public_url": "https://jira.example.com/"}})
    for _ in range(2):
        await token_for(world, ADMIN)
    data = await (
        await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1&limit=1", headers=ADMIN)
    ).json()
    assert data["paginationLinks"]["baseUrl"] == "https://jira.example.com"
    assert data["paginationLinks"]["nextPage"].startswith("https://jira.example.com/rest/")


# Unknown paths and methods ------------------------------------------------------


async def test_unknown_api_path_is_json_404(jira: World) -> None:
    resp = await jira.client.get(f"{API}/user/nothing", headers=ALICE)
    assert_error(resp.status, await resp.json(), 404, "has no GET")


# Confluence -------------------------------------------------------------------


async def test_confluence_flows(confluence: World) -> None:
    alice_key = "e4fc80a46ebbdf4c016fa42e69be01f8"
    own = await token_for(confluence, ALICE)
    assert own["tokenForUserKey"] == alice_key

    data = await create(
        confluence, ALICE, {"tokenDescription": "x", "tokenForUserKey": "4028b8817d5a1c2e"}, 403
    )
    assert "administrators" in data["message"]

    other = await create(
        confluence,
        ADMIN,
        {"tokenDescription": "for bob", "tokenForUserKey": "4028b8817d5a1c2e"},
    )
    assert other["tokenForUserKey"] == "4028b8817d5a1c2e"
    assert other["tokenCreatedByUserKey"] == "8a7f808a7c1d"
    await create(confluence, ADMIN, {"tokenDescription": "x", "tokenForUserKey": "nope"}, 404)

    resp = await confluence.client.get(
        f"{API}/user/tokensByFilter?notValidAfter=-1", headers=bearer(other["plainTextToken"])
    )
    assert resp.status == 403  # bob is not in confluence-administrators
    resp = await confluence.client.delete(
        f"{API}/user/token/deleteAllFor/{alice_key}", headers=ADMIN
    )
    assert await resp.json() == {"deletedTokens": 1}


async def test_confluence_admin_groups_are_configurable(make_world: MakeWorld) -> None:
    world = await make_world("confluence", config={"auth": {"admin_groups": ["ops-admins"]}})
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=BOB)
    assert resp.status == 200
    resp = await world.client.get(f"{API}/user/tokensByFilter?notValidAfter=-1", headers=ADMIN)
    assert resp.status == 403


async def test_confluence_wrong_password_is_401(confluence: World) -> None:
    resp = await confluence.client.get(f"{API}/user/token", headers=basic("alice", "nope"))
    assert resp.status == 401
