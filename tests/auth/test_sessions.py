"""Session sign-in: the upstream's word on a session cookie, cached under a keyed digest."""

from __future__ import annotations

import pytest

from apitokenproxy.auth.identity import ActingAs, User
from apitokenproxy.auth.sessions import SessionSignIn
from apitokenproxy.errors import Unauthorized

ALICE = User("JIRAUSER10100", "alice")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """An IdentityProvider that knows some session cookies and counts the questions."""

    def __init__(self) -> None:
        self.sessions: dict[str, User] = {"JSESSIONID=s1": ALICE}
        self.asked: list[str] = []

    async def session_user(self, cookie: str) -> User | None:
        self.asked.append(cookie)
        return self.sessions.get(cookie)

    async def check_password(self, username: str, password: str) -> User:
        raise AssertionError("a session never sends a password")

    async def is_sysadmin(self, user: User, acting: ActingAs) -> bool:
        return False

    async def find_user(self, key: str, acting: ActingAs) -> User | None:
        return None


def make(seconds: float = 30) -> tuple[SessionSignIn, Upstream, Clock]:
    upstream, clock = Upstream(), Clock()
    return (
        SessionSignIn(upstream, cache_seconds=seconds, cache_size=100, clock=clock),
        upstream,
        clock,
    )


async def test_a_known_session_is_asked_once_within_the_cache_time() -> None:
    sessions, upstream, clock = make()
    assert await sessions.user("JSESSIONID=s1") == ALICE
    clock.now += 29
    assert await sessions.user("JSESSIONID=s1") == ALICE
    assert upstream.asked == ["JSESSIONID=s1"]


async def test_logging_out_upstream_ends_access_once_the_cache_time_has_passed() -> None:
    sessions, upstream, clock = make()
    await sessions.user("JSESSIONID=s1")
    del upstream.sessions["JSESSIONID=s1"]  # the user logged out of Jira
    clock.now += 29.9
    assert await sessions.user("JSESSIONID=s1") == ALICE
    clock.now += 0.1
    with pytest.raises(Unauthorized, match="sign in"):
        await sessions.user("JSESSIONID=s1")


async def test_anonymous_answers_are_not_cached_so_signing_in_takes_effect_at_once() -> None:
    sessions, upstream, _ = make()
    with pytest.raises(Unauthorized):
        await sessions.user("JSESSIONID=s2")
    upstream.sessions["JSESSIONID=s2"] = ALICE
    assert await sessions.user("JSESSIONID=s2") == ALICE
    assert len(upstream.asked) == 2


async def test_zero_seconds_asks_every_time() -> None:
    sessions, upstream, _ = make(seconds=0)
    await sessions.user("JSESSIONID=s1")
    await sessions.user("JSESSIONID=s1")
    assert len(upstream.asked) == 2


async def test_the_cache_keeps_a_digest_never_the_cookie() -> None:
    sessions, _, _ = make()
    await sessions.user("JSESSIONID=s1")
    keys = list(sessions._users._entries)
    assert len(keys) == 1 and isinstance(keys[0], bytes) and len(keys[0]) == 32
    assert b"s1" not in keys[0]
    # Another process (another digest key) files the same cookie elsewhere.
    other, _, _ = make()
    await other.user("JSESSIONID=s1")
    assert list(other._users._entries) != keys
