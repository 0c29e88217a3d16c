"""No log line, answer or audit row ever holds a full token, whatever shape it is sent in.

Issue 18, item 10: ``Basic base64(TOKEN_A:TOKEN_B)`` wrote TOKEN_A to the
access log as the user name, and a token put in the path was logged as it
was sent. Hypothesis builds requests from credential shapes (Basic, Bearer,
no scheme, another scheme; a token as user name and/or password, quoted,
padded, glued, upper-cased, two of them) and from tokens in other places
(``X-Request-Id``, the path, the query), sends them to the data path and the
token API of one proxy per lane and store, and then reads everything the
proxy wrote: the access log, Python's log records, the answer (the proxy's
own: what the upstream echoes of the path it was sent is the upstream's),
the audit trail, and the ``Authorization`` headers the upstream received.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apitokenproxy.app import COMPONENTS
from apitokenproxy.auth.tokens import PREFIX, format_token
from apitokenproxy.store.audit import AuditQuery

from ..conftest import MakeWorld, World
from ..fakes import basic

API = "/rest/de.resolution.apitokenauth/latest"
ISSUE = "/rest/api/2/issue/X-1"
# A well-formed token of no one: refused as unknown, after the same checks as a real one.
NOBODYS = format_token(424_242, "Z" * 32)

# A token in a shape: {A} is alice's, {B} bob's, {X} nobody's; ^ upper-cases it.
_PLACEHOLDER = re.compile(r"\{([ABX])(\^?)\}")
tokens = st.builds(
    lambda name, upper: "{" + name + ("^" if upper else "") + "}",
    st.sampled_from("ABX"),
    st.sampled_from([False, False, False, True]),
)
wrappers = st.text(alphabet=" \t\"'<>()[];,=:xX-", max_size=2)
wrapped = tokens | st.builds(lambda a, t, b: a + t + b, wrappers, tokens, wrappers)


@dataclass(frozen=True)
class Shape:
    scheme: str  # Basic, Bearer, bare (no scheme), Token (another scheme), none
    first: str  # the Basic user name, or the value after the scheme
    second: str  # the Basic password
    request_id: str | None
    in_path: str | None
    in_query: str | None
    endpoint: str  # data (the data path), list or create (the token API)


shapes = st.builds(
    Shape,
    st.sampled_from(["Basic", "Bearer", "bare", "Token", "none"]),
    st.sampled_from(["alice", "bob"]) | wrapped,
    st.sampled_from(["alice-pw", ""]) | wrapped,
    st.none() | wrapped,
    st.none() | wrapped,
    st.none() | wrapped,
    st.sampled_from(["data", "data", "list", "create"]),
)


@dataclass
class Leaky:
    world: World
    tokens: dict[str, str]

    def fill(self, text: str) -> str:
        def token(match: re.Match[str]) -> str:
            value = self.tokens[match.group(1)]
            return value.upper() if match.group(2) else value

        return _PLACEHOLDER.sub(token, text)

    def secrets(self) -> list[str]:
        """Each token whole, and its secret and checksum alone (past the last ``_``)."""
        return [piece for t in self.tokens.values() for piece in (t, t.rpartition("_")[2])]

    def access_log(self) -> str:
        log = self.world.client.server.app[COMPONENTS].access_log
        log.flush()
        assert isinstance(log.stream, io.StringIO)
        text = log.stream.getvalue()
        log.stream.seek(0)
        log.stream.truncate()
        return text


@pytest.fixture
async def leaky(make_world: MakeWorld) -> Leaky:
    world = await make_world(
        config={
            "logging": {"access_log": True, "format": "text"},
            "auth": {"throttle": {"max_failures": 100_000}},
        }
    )
    world.client.server.app[COMPONENTS].access_log.stream = io.StringIO()
    made = {}
    for name, user in (("A", "alice"), ("B", "bob")):
        resp = await world.client.post(
            f"{API}/user/token",
            json={"tokenDescription": "leak test"},
            headers=basic(user, f"{user}-pw"),
        )
        assert resp.status == 200, await resp.text()
        made[name] = (await resp.json())["plainTextToken"]
    return Leaky(world, {**made, "X": NOBODYS})


def authorization(shape: Shape, fill: Any) -> dict[str, str]:
    first, second = fill(shape.first), fill(shape.second)
    match shape.scheme:
        case "Basic":
            value = "Basic " + base64.b64encode(f"{first}:{second}".encode()).decode()
        case "Bearer":
            value = f"Bearer {first}"
        case "bare":
            value = first
        case "Token":
            value = f"Token {first}"
        case _:
            return {}
    return {"Authorization": value}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shape=shapes)
# Basic TOKEN_A:TOKEN_B: TOKEN_A was the access log's user name.
@example(shape=Shape("Basic", "{A}", "{B}", None, None, None, "data"))
@example(shape=Shape("Basic", "{A}", "{B}", None, None, None, "list"))
@example(
    shape=Shape("Basic", "alice", ' "{A}"', None, None, None, "create")
)  # once checked upstream
@example(shape=Shape("Bearer", "{A}", "", None, "{A}", "{B}", "data"))  # a token in the path
@example(shape=Shape("Bearer", "{A}", "", "{B}", None, None, "create"))  # in X-Request-Id
@example(shape=Shape("none", "", "", None, "x{B^}", None, "data"))
async def test_no_token_is_ever_logged_answered_or_audited(
    leaky: Leaky, shape: Shape, caplog: pytest.LogCaptureFixture
) -> None:
    world, fill = leaky.world, leaky.fill
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    world.upstream.received.clear()
    headers = authorization(shape, fill)
    if shape.request_id is not None:
        headers["X-Request-Id"] = fill(shape.request_id)
    query = "" if shape.in_query is None else "?jql=" + quote(fill(shape.in_query))
    if shape.endpoint == "data":
        path = ISSUE if shape.in_path is None else "/rest/api/2/issue/" + quote(fill(shape.in_path))
        resp = await world.client.get(path + query, headers=headers)
    elif shape.endpoint == "list":
        resp = await world.client.get(f"{API}/user/token{query}", headers=headers)
    else:
        resp = await world.client.post(
            f"{API}/user/token{query}", json={"tokenDescription": "made"}, headers=headers
        )
    body = await resp.text()
    # The upstream's answer echoes the path and query it was sent (forwarded as they
    # came, by design): only the proxy's own answers are read here.
    own = shape.endpoint != "data" or not world.upstream.for_clients()
    answer = repr(list(resp.headers.items())) + (body if own else "")
    store = world.client.server.app[COMPONENTS].store
    audit = repr((await store.audit_events(AuditQuery(), 0, 10_000)).items)
    # The fake upstream's own aiohttp access log shows what it was sent, path and query
    # as they came (forwarded by design): it is the upstream's log, not the proxy's.
    records = "\n".join(
        caplog.handler.format(r) for r in caplog.records if r.name != "aiohttp.access"
    )
    written = {
        "access log": leaky.access_log(),
        "log records": records,
        "answer": answer,
        "audit trail": audit,
    }
    for where, text in written.items():
        for secret in leaky.secrets():
            assert secret not in text, (where, shape, resp.status)
    # And no header carrying the prefix reached the upstream as credentials (item 9).
    for received in world.upstream.received:
        for name, value in received.headers:
            if name.lower() == "authorization":
                assert PREFIX not in value.lower(), (shape, value)


async def test_an_upstream_failure_logs_no_token_from_the_path_or_query(
    make_world: MakeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The proxy's own 5xx is logged with the request's path: without its query and
    its token-looking segments, as in the access log (the fast lane logged the whole
    target, the aiohttp lane the path with the token in it)."""
    world = await make_world()
    await world.upstream_server.close()
    caplog.set_level(logging.DEBUG)
    resp = await world.client.get(f"/rest/api/2/issue/{NOBODYS}/x?os_authType=any&t={NOBODYS}")
    assert resp.status == 502
    assert NOBODYS not in caplog.text and NOBODYS not in await resp.text()
    assert "/rest/api/2/issue/<token>/x -> 502" in caplog.text
