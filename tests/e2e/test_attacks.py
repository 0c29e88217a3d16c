"""Attacks that broke auth proxies before, one table row each, against the real server stack.

Every test talks to the proxy over a raw socket where HTTP client libraries
would tidy the attack away, and checks what reached the fake upstream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import statistics
import time
from typing import Any

import pytest

from apitokenproxy.auth.tokens import format_token

from ..conftest import Live, MakeLive
from ..fakes import USER_HEADER

API = "/rest/de.resolution.apitokenauth/latest"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def exchange(
    port: int, request: bytes, wait: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes, or Connection: close).

    A server that refuses early may reset the connection while a large request
    is still being sent; that comes back as status 0 with whatever was read.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    try:
        writer.write(request)
        with contextlib.suppress(ConnectionResetError):
            await writer.drain()
        with contextlib.suppress(ConnectionResetError):
            data = await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: jira.example.com", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def make_token(live: Live, user: str = "alice") -> dict[str, Any]:
    request = (
        f"POST {API}/user/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Basic {b64(f'{user}:{user}-pw'.encode())}\r\n"
        "Content-Type: application/json\r\nContent-Length: 27\r\n\r\n"
        '{"tokenDescription": "abc"}'
    ).encode()
    status, _, body = await exchange(live.port, request)
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def forwarded(live: Live, prefix: str = "/rest/api/2/issue") -> list[dict[str, str]]:
    """Headers of each request that reached the upstream under ``prefix``."""
    return [
        {k.lower(): v for k, v in r.headers}
        for r in live.upstream.received
        if r.path_qs.startswith(prefix)
    ]


def assert_json_error(status: int, body: bytes, expected: int) -> None:
    assert status == expected, body
    data = json.loads(body)
    assert data["status"] == expected
    assert data["message"]


@pytest.fixture
async def live(make_live: MakeLive) -> Live:
    return await make_live({"auth": {"throttle": {"max_failures": 1000}}})


# The user header, spoofed every way ----------------------------------------------------

SPOOFS = {
    "plain": ["X-Forwarded-User: admin"],
    "lower case": ["x-forwarded-user: admin"],
    "upper case": ["X-FORWARDED-USER: admin"],
    "underscores": ["X_Forwarded_User: admin"],
    "mixed separators": ["X-Forwarded_User: admin"],
    "repeated": ["X-Forwarded-User: admin", "X-Forwarded-User: root"],
    "empty": ["X-Forwarded-User: "],
    "named in Connection": ["Connection: X-Forwarded-User", "X-Forwarded-User: admin"],
    "comma list": ["X-Forwarded-User: admin, root"],
}


@pytest.mark.parametrize("spoof", SPOOFS.values(), ids=SPOOFS.keys())
@pytest.mark.parametrize("kind", ["anonymous", "password", "token", "failed token"])
async def test_the_upstream_never_sees_a_user_the_client_chose(
    live: Live, spoof: list[str], kind: str
) -> None:
    auth = {
        "anonymous": [],
        "password": [f"Authorization: Basic {b64(b'alice:alice-pw')}"],
        "token": [f"Authorization: Bearer {(await make_token(live))['plainTextToken']}"]
        if kind == "token"
        else [],
        "failed token": [f"Authorization: Bearer {format_token(99, 'X' * 32)}"],
    }[kind]
    status, _, _ = await exchange(live.port, get("/rest/api/2/issue/X-1", *auth, *spoof))
    seen = forwarded(live)
    if kind == "failed token":
        assert status == 401
        assert seen == []
        return
    assert status == 200
    assert [h.get(USER_HEADER.lower()) for h in seen] == ["alice" if kind == "token" else None]
    assert not any(
        k.replace("_", "-") == "x-forwarded-user" for k in seen[0] if k != "x-forwarded-user"
    )


@pytest.mark.parametrize(
    "raw_header",
    [
        "X-Forwarded-User : admin",  # space before the colon
        "X-Forwarded-User\t: admin",
        "X-Forwarded-User: alice\r\n admin",  # obs-fold: split across lines
        "X-Forwarded-User: a\x00dmin",
        " X-Forwarded-User: admin",  # a leading space folds onto the previous line
    ],
    ids=["space-before-colon", "tab-before-colon", "obs-fold", "nul-in-value", "leading-space"],
)
async def test_malformed_user_headers_are_refused_before_anything_is_forwarded(
    live: Live, raw_header: str
) -> None:
    status, _, body = await exchange(live.port, get("/rest/api/2/issue/X-1", raw_header))
    assert_json_error(status, body, 400)  # and the connection is closed: exchange() read to EOF
    assert forwarded(live) == []


# Authorization tricks -------------------------------------------------------------------


async def test_authorization_table(live: Live) -> None:
    made = await make_token(live)
    token = made["plainTextToken"]
    bob_token = (await make_token(live, "bob"))["plainTextToken"]
    rows: list[tuple[str, list[str], int, bool]] = [
        # (name, headers, status, reaches upstream); status 0: the connection was cut
        ("two Authorization headers", [f"Authorization: Bearer {token}",
                                       f"Authorization: Basic {b64(b'alice:alice-pw')}"], 401, False),
        ("Basic, bad base64", ["Authorization: Basic %%%"], 401, False),
        ("Basic, no colon", [f"Authorization: Basic {b64(b'alice')}"], 401, False),
        ("Basic, not UTF-8", [f"Authorization: Basic {b64(bytes([0xC3, 0x28]) + b':x')}"], 401, False),
        ("Basic, padded to 7 KB", [f"Authorization: Basic {b64(b'alice:' + b'A' * 5000)}"], 401, False),
        ("Basic, megabytes of padding", ["Authorization: Basic " + "A" * 2_000_000], 0, False),
        ("Bearer, two spaces", [f"Authorization: Bearer  {token}"], 200, True),
        ("Bearer, tab", [f"Authorization: Bearer\t{token}"], 200, True),
        ("Bearer, two tokens", [f"Authorization: Bearer {token} {token}"], 401, False),
        ("Bearer, comma", [f"Authorization: Bearer {token},{token}"], 401, False),
        ("Bearer, vertical tab", [f"Authorization: Bearer {token}\x0b"], 400, False),
        ("token under another user's name", [f"Authorization: Basic {b64(f'bob:{token}'.encode())}"], 401, False),
        ("token as the user name", [f"Authorization: Basic {b64(f'{token}:'.encode())}"], 200, True),
        ("someone else's token as the user name", [f"Authorization: Basic {b64(f'{bob_token}:alice'.encode())}"], 200, True),
    ]  # fmt: skip
    for name, headers, status, reaches in rows:
        live.upstream.received.clear()
        got, _, body = await exchange(live.port, get("/rest/api/2/issue/X-1", *headers))
        assert got == status or (status == 0 and got == 400), (name, body[:200])
        assert bool(forwarded(live)) == reaches, name
        if got >= 400:
            assert json.loads(body)["status"] == got, name
        for sent in forwarded(live):
            assert "authorization" not in sent, name


def wrapped_forms(token: str, other: str) -> dict[str, str]:
    """A valid token as scripts, templates and copy-paste mangle it (issue 18, item 9)."""
    return {
        "Bearer, quoted": f'Bearer "{token}"',
        "Bearer, angle brackets": f"Bearer <{token}>",
        "Bearer, glued after text": f"Bearer x{token}",
        "Bearer, upper case": f"Bearer {token.upper()}",
        "Basic, password after a space": "Basic " + b64(f"alice: {token}".encode()),
        "Basic, password before a space": "Basic " + b64(f"alice:{token} ".encode()),
        "Basic, password after a tab": "Basic " + b64(f"alice:\t{token}".encode()),
        "Basic, password quoted": "Basic " + b64(f'alice:"{token}"'.encode()),
        "Basic, password in brackets": "Basic " + b64(f"alice:<{token}>".encode()),
        "Basic, password glued": "Basic " + b64(f"alice:pw{token}".encode()),
        "Basic, user name after a space": "Basic " + b64(f" {token}:".encode()),
        "Basic, user name quoted": "Basic " + b64(f'"{token}":'.encode()),
        "Basic, two tokens": "Basic " + b64(f"{token}:{other}".encode()),
        "Basic, the same token twice": "Basic " + b64(f"{token}:{token}".encode()),
        "unknown scheme": f"Token {token}",
        "no scheme": token,
    }


@pytest.mark.parametrize("api", [False, True], ids=["data path", "token API"])
async def test_a_valid_token_in_a_wrapped_form_never_reaches_the_upstream(
    live: Live, api: bool
) -> None:
    """Every form is refused 401 by the proxy itself: not forwarded with the token in
    it (a failed login at Jira, the secret in its logs), not checked as a password."""
    token = (await make_token(live))["plainTextToken"]
    other = (await make_token(live, "bob"))["plainTextToken"]
    path = f"{API}/user/token" if api else "/rest/api/2/issue/X-1"
    for name, value in wrapped_forms(token, other).items():
        live.upstream.received.clear()
        status, _, body = await exchange(live.port, get(path, f"Authorization: {value}"))
        assert status == 401, (name, body[:200])
        assert "alone" in json.loads(body)["message"], name
        assert live.upstream.received == [], name
        assert token.encode() not in body and token.upper().encode() not in body, name


async def test_a_deleted_users_tokens_stop_at_once(live: Live) -> None:
    made = await make_token(live, "bob")
    admin = f"Authorization: Basic {b64(b'admin:admin-pw')}"
    request = f"DELETE {API}/user/token/deleteAllFor/JIRAUSER10105 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{admin}\r\n\r\n"
    status, _, _ = await exchange(live.port, request.encode())
    assert status == 200
    status, _, _ = await exchange(
        live.port, get("/rest/api/2/issue/X-1", f"Authorization: Bearer {made['plainTextToken']}")
    )
    assert status == 401


async def test_a_token_expires_to_the_millisecond(live: Live) -> None:
    made = await make_token(live)
    header = f"Authorization: Bearer {made['plainTextToken']}"
    live.clock.now = made["validUntil"] - 1
    assert (await exchange(live.port, get("/rest/api/2/issue/X-1", header)))[0] == 200
    live.clock.now = made["validUntil"]
    assert (await exchange(live.port, get("/rest/api/2/issue/X-1", header)))[0] == 401


# The token API under other spellings ------------------------------------------------------

PATHS = [
    "//rest/de.resolution.apitokenauth/latest/user/token",
    "/rest/de.resolution.apitokenauth/latest/user%2Ftoken",
    "/rest/de.resolution.apitokenauth/latest/user/%74oken",
    "/rest/de.resolution.apitokenauth/latest/user/./token",
    "/rest/x/../de.resolution.apitokenauth/latest/user/token",
    "/rest/x/%2e%2e/de.resolution.apitokenauth/latest/user/token",
    "/REST/DE.RESOLUTION.APITOKENAUTH/LATEST/USER/TOKEN",
    "/rest/de.resolution.apitokenauth/latest/user/token;jsessionid=ABC",
    "/rest/de.resolution.apitokenauth./latest/user/token",
    "/rest/de.resolution.apitokenauth/latest/user/token.",
    "/rest/api/2/issue?/rest/de.resolution.apitokenauth/latest/user/token",
    "/__apitokenproxy/../rest/de.resolution.apitokenauth/latest/user/token",
    "/__apitokenproxy/health/../../rest/api/2/issue/X-1",
]


@pytest.mark.parametrize("path", PATHS)
async def test_management_path_spellings_grant_nothing(live: Live, path: str) -> None:
    """Each spelling is served by the token API with its authentication, or forwarded
    like any other path; neither way does an unauthenticated or spoofed call get data."""
    await make_token(live)
    live.upstream.received.clear()
    status, _, body = await exchange(live.port, get(path, "X-Forwarded-User: admin"))
    reached = [r for r in live.upstream.received if r.method == "GET"]
    if reached:
        # Forwarded as an ordinary request: anonymous, spoofed header stripped.
        assert status == 200
        assert USER_HEADER.lower() not in {k.lower() for k, _ in reached[0].headers}
        assert json.loads(body)["raw_path"] == path
    else:
        # Served by the proxy itself: the token API wants credentials where the
        # spelling decodes to its path; the other spellings name no route of it.
        assert status == (401 if path.endswith("/%74oken") else 404), body
        assert "plainTextToken" not in body.decode() and "description" not in body.decode()


# Request framing -----------------------------------------------------------------------------

FRAMING = {
    "Content-Length with Transfer-Encoding": b"POST /rest/api/2/issue HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    "two Content-Lengths": b"POST /rest/api/2/issue HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nbody",
    "Transfer-Encoding not chunked last": b"POST /rest/api/2/issue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET /rest/api/2/issue HTTP/1.1\r\nHost: x\r\nX-Custom: a\r\n b\r\n\r\n",
    "oversized header line": b"GET /rest/api/2/issue HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    "oversized request line": b"GET /rest/api/2/issue?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "too many headers": b"GET /rest/api/2/issue HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
    "negative Content-Length": b"POST /rest/api/2/issue HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "garbage request line": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
}  # fmt: skip


@pytest.mark.parametrize("raw", FRAMING.values(), ids=FRAMING.keys())
async def test_bad_framing_is_refused_cleanly_and_others_are_served(live: Live, raw: bytes) -> None:
    status, _, body = await exchange(live.port, raw)
    assert status == 400, body[:200]
    assert json.loads(body)["status"] == status  # and closed: exchange() read to EOF
    assert not any(
        r.path_qs.startswith(("/rest/api/2/issue", "/smuggled")) for r in live.upstream.received
    )
    status, _, _ = await exchange(live.port, get("/rest/api/2/issue/X-1"))
    assert status == 200


async def test_a_slow_loris_is_cut_off_while_others_are_served(make_live: MakeLive) -> None:
    live = await make_live({"listen": {"header_timeout_seconds": 0.5}})
    slow = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.write(b"GET /rest/api/2/issue/X-1 HTTP/1.1\r\nHost: x\r\n")  # never finished
        slow.append((reader, writer))
    status, _, _ = await exchange(live.port, get("/rest/api/2/issue/X-1"))
    assert status == 200
    for reader, writer in slow:
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the proxy
        writer.close()


# Timing ------------------------------------------------------------------------------------


def bad_checksum(token: str) -> str:
    """The token with its last character changed: the right shape, the wrong checksum."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.real_argon2  # the time of a wrong secret's check is argon2's
async def test_refusals_take_indistinguishable_time(make_live: MakeLive) -> None:
    """What a refusal's time could tell someone holding a candidate token: whether it is
    good. A good token used from outside its allowed addresses, never used before or
    verified and cached by a use from inside them, is refused in a wrong secret's time
    (one read of the row, no argon2). Malformed tokens, bad checksums and ids no token
    has tell nothing secret (the format and the CRC are public, ids are sequential) and
    cost no argon2: they are answered in a fraction of a wrong secret's check."""
    live = await make_live(
        {"auth": {"throttle": {"max_failures": 1000}}, "proxy": {"trusted_proxies": ["127.0.0.1"]}}
    )

    async def create(body: bytes) -> dict[str, Any]:
        status, _, answer = await exchange(
            live.port,
            (
                f"POST {API}/user/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Authorization: Basic {b64(b'alice:alice-pw')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body,
        )
        assert status == 200, answer
        return json.loads(answer)  # type: ignore[no-any-return]

    limited = b'{"tokenDescription": "ci", "allowedAddresses": ["10.0.0.0/8"]}'
    unused, cached = await create(limited), await create(limited)
    plain = await create(b'{"tokenDescription": "plain"}')

    async def use(token: str, client: str) -> tuple[int, float]:
        started = time.perf_counter()
        status, _, _ = await exchange(
            live.port,
            get("/rest/api/2/issue/X-1", f"Authorization: Bearer {token}",
                f"X-Forwarded-For: {client}"),
        )  # fmt: skip
        return status, time.perf_counter() - started

    assert (await use(cached["plainTextToken"], "10.1.2.3"))[0] == 200  # cached from inside
    outside = {
        "good, never used": lambda i: unused["plainTextToken"],
        "good, cached": lambda i: cached["plainTextToken"],
        "wrong secret, never used": lambda i: format_token(unused["id"], f"{i:032d}"),
        "wrong secret, cached": lambda i: format_token(cached["id"], f"{i:032d}"),
    }
    cheap = {
        "unknown id": lambda i: format_token(plain["id"] + 1000 + i, "A" * 32),
        "bad checksum": lambda i: bad_checksum(format_token(plain["id"], f"{i:032d}")),
        "malformed": lambda i: f"atpx_{i}_short",
    }
    times: dict[str, list[float]] = {name: [] for name in [*outside, *cheap, "wrong secret"]}
    for i in range(15):
        for name, make in {**outside, **cheap}.items():
            status, seconds = await use(make(i), "203.0.113.9")
            assert status == 401, name
            times[name].append(seconds)
    for i in range(9):  # apart: what an argon2 check leaves behind must not slow the others
        status, seconds = await use(format_token(plain["id"], f"{i:032d}"), "203.0.113.9")
        assert status == 401
        times["wrong secret"].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    apart = [medians[name] for name in outside]
    # A wide margin absorbs noise; the refusals compared cost the same work.
    assert max(apart) < 2 * min(apart), medians
    assert all(medians[name] < medians["wrong secret"] / 2 for name in cheap), medians
