"""TokenVerifier: throttling that never refuses a correct token, one shared check per
token, argon2 only where nothing cheaper can decide, and a lane of their own for suspect
sources.

Built on the real SQLite store (its row reads counted); argon2 is replaced by
a fake hasher that counts its calls and how many ran at once, except where
the real one's bounded queue is the point.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from apitokenproxy.auth.emails import OwnerEmails
from apitokenproxy.auth.grant import Grant, grant_for
from apitokenproxy.auth.hashing import SecretHasher
from apitokenproxy.auth.identity import User
from apitokenproxy.auth.throttle import FailureThrottle
from apitokenproxy.auth.tokens import format_token, new_secret, parse_token
from apitokenproxy.auth.verifier import TokenVerifier, rejection
from apitokenproxy.errors import Busy, InvalidToken, NotFromHere, TooManyRequests, UpstreamRefused
from apitokenproxy.store import NewToken, TokenRecord, TokenStore, opened
from apitokenproxy.store.audit import Action, How
from apitokenproxy.store.lastaccessed import LastAccessed

from ..conftest import START_MS, FakeClock
from ..waiting import until
from .test_throttle import limits

LIMIT = 10
ACT = Action(at=START_MS, actor_key="key-admin", actor_name="admin", how=How.CLI)
ATTACKER = "203.0.113.9"
WRONG = "Q" * 32


class FakeHasher:
    """Stands in for SecretHasher: each verification takes a few milliseconds
    (or, for a secret on ``hold``, until its event is set), and the most that
    ran at once is kept."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most = 0
        self.holds: dict[str, asyncio.Event] = {}

    def hold(self, secret: str) -> asyncio.Event:
        """Verifications of ``secret`` wait until the event returned is set."""
        event = self.holds[secret] = asyncio.Event()
        return event

    async def hash(self, secret: str) -> str:
        return f"fake${secret}"

    async def verify(self, stored_hash: str, secret: str) -> bool:
        self.calls += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.002)
            if secret in self.holds:
                await self.holds[secret].wait()
        finally:
            self.running -= 1
        return stored_hash == f"fake${secret}"


class ReadCounter:
    """The real store, with its reads of one row counted."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store
        self.reads = 0

    async def get(self, token_id: int) -> TokenRecord | None:
        self.reads += 1
        return await self._store.get(token_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class SharedTally:
    """The store's shared failure counter, reduced to a list of the keys counted."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]:
        self.keys.append(key)
        return now_ms, 0  # no other instance has counted anything


@dataclass
class Rig:
    verifier: TokenVerifier
    store: TokenStore
    hasher: FakeHasher
    access: LastAccessed
    clock: FakeClock
    throttle: FailureThrottle
    shared: SharedTally
    emails_asked: list[str]
    rows: ReadCounter

    async def issue(
        self, owner: str = "alice", valid_until: int | None = None, networks: tuple[str, ...] = ()
    ) -> str:
        secret = new_secret()
        record = await self.store.create(
            NewToken(
                owner_key=f"key-{owner}",
                owner_name=owner,
                description="t",
                secret_hash=await self.hasher.hash(secret),
                created=self.clock(),
                valid_until=valid_until,
                created_by_key=f"key-{owner}",
                allowed_networks=networks,
            ),
            ACT,
        )
        return format_token(record.id, secret)

    async def fail(self, times: int, client: str | None, username: str | None = None) -> None:
        """``times`` failed attempts, each with an id no token has."""
        for i in range(times):
            with pytest.raises(InvalidToken):
                await self.verifier.verify(format_token(90_000 + i, WRONG), username, client=client)

    async def last_accessed(self, token: str) -> tuple[int, str]:
        """The token's lastAccessed and lastAccessedFrom, as stored."""
        await self.access.flush()
        record = await self.store.get(token_id(token))
        assert record is not None
        return record.last_accessed, record.last_accessed_from


def token_id(token: str) -> int:
    return parse_token(token).token_id


def secret_of(token: str) -> str:
    return parse_token(token).secret


def wrong_secret(token: str) -> str:
    return format_token(token_id(token), WRONG)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with opened(f"sqlite:///{tmp_path / 'tokens.db'}") as store:
        hasher = FakeHasher()
        access = LastAccessed(store, flush_seconds=10)
        clock = FakeClock()
        shared = SharedTally()
        throttle = FailureThrottle(limits(LIMIT, 60, 1000), shared=shared)
        asked: list[str] = []

        async def lookup(record: TokenRecord) -> str | None:
            asked.append(record.owner_key)  # as the upstream would say
            return f"{record.owner_name}@Example.com"

        rows = ReadCounter(store)
        verifier = TokenVerifier(
            cast(TokenStore, rows),
            cast(SecretHasher, hasher),
            access,
            clock,
            throttle,
            cache_seconds=300,
            cache_size=100,
            emails=OwnerEmails(lookup, ttl_seconds=60, size=100),
        )
        yield Rig(verifier, store, hasher, access, clock, throttle, shared, asked, rows)


# Throttling never refuses a correct token -------------------------------------


async def test_a_throttled_address_gets_429_for_failures_only(rig: Rig) -> None:
    cached = await rig.issue()
    await rig.verifier.verify(cached, client=ATTACKER)
    fresh = await rig.issue()
    await rig.fail(LIMIT, ATTACKER)
    assert rig.throttle.retry_after(f"address {ATTACKER}") == 60

    calls = rig.hasher.calls
    assert (await rig.verifier.verify(cached, client=ATTACKER)).record.id == token_id(cached)
    assert rig.hasher.calls == calls  # the cache vouched for it: no argon2, no throttle
    assert (await rig.verifier.verify(fresh, client=ATTACKER)).record.id == token_id(fresh)
    assert (await rig.verifier.verify(fresh, "alice", client=ATTACKER)).record.owner_name == "alice"

    for refused in (wrong_secret(fresh), format_token(777, WRONG), "atpx_garbage"):
        with pytest.raises(TooManyRequests) as caught:
            await rig.verifier.verify(refused, client=ATTACKER)
        assert caught.value.retry_after == 60
        assert caught.value.headers["Retry-After"] == "60"
        assert ATTACKER in caught.value.message
    # A good token under the wrong user name is a failure like any other.
    with pytest.raises(TooManyRequests):
        await rig.verifier.verify(fresh, "bob", client=ATTACKER)


async def test_an_email_user_name_is_the_owners_address_asked_once(rig: Rig) -> None:
    token = await rig.issue("alice")
    # Not verified yet.
    assert rig.verifier.verify_cached(token, "alice@example.com", "192.0.2.1") is None
    grant = await rig.verifier.verify(token, "ALICE@example.com", client="192.0.2.1")
    assert grant.record.owner_name == "alice"
    assert rig.verifier.verify_cached(token, "alice@example.com", "192.0.2.1") is grant
    assert rig.verifier.verify_cached(token, "bob@example.com", "192.0.2.1") is None
    with pytest.raises(InvalidToken, match="does not belong"):
        await rig.verifier.verify(token, "bob@example.com", client="192.0.2.1")
    assert rig.emails_asked == ["key-alice"]
    # Names without "@" never ask.
    await rig.verifier.verify(await rig.issue("bob"), "bob", client="192.0.2.1")
    assert rig.emails_asked == ["key-alice"]


async def test_a_throttled_email_name_still_accepts_that_users_token(rig: Rig) -> None:
    alices = await rig.issue("alice")
    for i in range(LIMIT):  # from many addresses, so only the name is throttled
        await rig.fail(1, f"198.51.100.{i}", "alice@example.com")
    grant = await rig.verifier.verify(alices, "alice@example.com", client="192.0.2.1")
    assert grant.record.id == token_id(alices)
    with pytest.raises(TooManyRequests):
        await rig.verifier.verify(await rig.issue("bob"), "alice@example.com", client="192.0.2.2")


async def test_failures_of_a_throttled_key_are_still_counted(rig: Rig) -> None:
    await rig.fail(LIMIT, ATTACKER, "alice")
    for _ in range(5):
        with pytest.raises(TooManyRequests):
            await rig.verifier.verify(format_token(5, WRONG), "alice", client=ATTACKER)
    # In the shared store up to the limit, where every instance sees them; beyond
    # it they change nothing another instance decides, so they are not written.
    assert rig.shared.keys.count(f"address {ATTACKER}") == LIMIT
    assert rig.shared.keys.count("user alice") == LIMIT
    assert rig.throttle.retry_after(f"address {ATTACKER}") == 60


async def test_a_throttled_user_name_still_accepts_that_users_token(rig: Rig) -> None:
    alices = await rig.issue("alice")
    bobs = await rig.issue("bob")
    for i in range(LIMIT):  # from many addresses, so only the name is throttled
        await rig.fail(1, f"198.51.100.{i}", "alice")

    assert (await rig.verifier.verify(alices, "ALICE", client="192.0.2.1")).record.id == token_id(
        alices
    )

    calls = rig.hasher.calls
    # Cannot be alice's token: refused at once, without argon2.
    for refused, username in [
        (format_token(777, WRONG), "alice"),  # unknown id
        (bobs, "alice"),  # bob's token under alice's name
        ("atpx_garbage", "alice"),  # malformed
    ]:
        with pytest.raises(TooManyRequests) as caught:
            await rig.verifier.verify(refused, username, client="192.0.2.1")
        assert "for alice" in caught.value.message
    assert rig.hasher.calls == calls
    # Could be hers: argon2 decides, and the failure is a 429...
    unverified = await rig.issue("alice")
    with pytest.raises(TooManyRequests):
        await rig.verifier.verify(wrong_secret(unverified), "alice", client="192.0.2.1")
    assert rig.hasher.calls == calls + 1
    # ...unless this worker has verified the row's one secret: then it is settled.
    with pytest.raises(TooManyRequests):
        await rig.verifier.verify(wrong_secret(alices), "alice", client="192.0.2.1")
    assert rig.hasher.calls == calls + 1
    # Bob is not alice: his own token is fine.
    assert (await rig.verifier.verify(bobs, "bob", client="192.0.2.1")).record.owner_name == "bob"


async def test_a_throttled_address_runs_one_check_at_a_time(rig: Rig) -> None:
    good = await rig.issue()
    target = token_id(await rig.issue())  # never verified: only argon2 can judge its secrets
    await rig.fail(LIMIT, ATTACKER)
    rig.hasher.most = 0
    guesses = [format_token(target, f"{i:0>32}") for i in range(20)]
    outcomes = await asyncio.gather(
        *(rig.verifier.verify(guess, client=ATTACKER) for guess in guesses),
        rig.verifier.verify(good, client=ATTACKER),
        return_exceptions=True,
    )
    assert rig.hasher.most == 1
    assert rig.hasher.calls == 21  # the LIMIT failures (ids no token has) cost none
    assert all(isinstance(outcome, TooManyRequests) for outcome in outcomes[:-1])
    assert isinstance(outcomes[-1], Grant)
    assert rig.throttle.retry_after(f"address {ATTACKER}") == 60


async def test_a_throttled_user_name_runs_one_check_at_a_time(rig: Rig) -> None:
    alices = await rig.issue("alice")
    await rig.fail(LIMIT, ATTACKER, "alice")
    rig.hasher.most = 0
    # Guesses the guard lets through (alice's own id), from fresh addresses.
    guesses = [format_token(token_id(alices), f"{i:0>32}") for i in range(10)]
    outcomes = await asyncio.gather(
        *(rig.verifier.verify(guess, "alice", client=f"192.0.2.{i}")
          for i, guess in enumerate(guesses)),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(outcome, TooManyRequests) for outcome in outcomes)
    assert rig.hasher.most == 1


async def test_others_are_not_slowed_by_a_throttled_address(rig: Rig) -> None:
    tokens = [await rig.issue() for _ in range(5)]
    await rig.fail(LIMIT, ATTACKER)
    releases = [rig.hasher.hold(secret_of(token)) for token in tokens]
    checks = [
        asyncio.ensure_future(rig.verifier.verify(token, client=f"192.0.2.{i}"))
        for i, token in enumerate(tokens)
    ]
    await until(lambda: rig.hasher.running == 5)  # all at once, each in its own lane
    for release in releases:
        release.set()
    records = await asyncio.gather(*checks)
    assert [record.record.id for record in records] == [token_id(token) for token in tokens]


# A token used from outside its allowed networks: a bad token's cost and count ----


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "first-use"])
@pytest.mark.parametrize("secret", ["right", "wrong"])
async def test_a_use_from_outside_the_networks_costs_and_counts_as_a_bad_token(
    rig: Rig, cached: bool, secret: str
) -> None:
    token = await rig.issue(networks=("10.0.0.0/8",))
    if cached:
        await rig.verifier.verify(token, client="10.1.2.3")
    calls, reads = rig.hasher.calls, rig.rows.reads
    with pytest.raises(NotFromHere) as info:
        await rig.verifier.verify(
            token if secret == "right" else wrong_secret(token), "alice", client=ATTACKER
        )
    assert info.value.reason == "network"
    # The same work whatever the secret and whatever this worker knows of the
    # token: one read of its row, no argon2. The time tells a thief nothing.
    assert (rig.hasher.calls, rig.rows.reads) == (calls, reads + 1)
    assert rig.shared.keys == [f"address {ATTACKER}", "user alice"]

    await rig.fail(LIMIT - 1, ATTACKER)  # the LIMIT-th failure is still a 401...
    with pytest.raises(TooManyRequests):  # ...and the next outside use a 429
        await rig.verifier.verify(token, client=ATTACKER)
    # From inside its networks the token still works, throttled address or not.
    assert (await rig.verifier.verify(token, client="10.1.2.3")).record.id == token_id(token)


async def test_a_use_from_outside_the_networks_is_not_a_use(rig: Rig) -> None:
    token = await rig.issue(networks=("10.0.0.0/8",))
    await rig.verifier.verify(token, client="10.1.2.3")
    first = await rig.last_accessed(token)
    rig.clock.advance(60_000)
    with pytest.raises(NotFromHere):
        await rig.verifier.verify(token, client=ATTACKER)
    assert await rig.last_accessed(token) == first


async def test_a_client_that_gives_up_keeps_its_turn_until_its_check_ends(rig: Rig) -> None:
    one, two = token_id(await rig.issue()), token_id(await rig.issue())
    await rig.fail(LIMIT, ATTACKER)
    held = rig.hasher.hold(WRONG)
    first = asyncio.ensure_future(rig.verifier.verify(format_token(one, WRONG), client=ATTACKER))
    await until(lambda: rig.hasher.running == 1)
    first.cancel()
    second = asyncio.ensure_future(rig.verifier.verify(format_token(two, WRONG), client=ATTACKER))
    await asyncio.sleep(0.02)
    assert rig.hasher.running == 1  # the second waits for the first one's check
    held.set()
    with pytest.raises(TooManyRequests):
        await second
    assert rig.hasher.most == 1
    assert first.cancelled()


async def test_a_throttled_client_joins_a_check_under_way_without_waiting_its_turn(
    rig: Rig,
) -> None:
    token = await rig.issue()
    await rig.fail(LIMIT, ATTACKER)
    guess_held, token_held = rig.hasher.hold(WRONG), rig.hasher.hold(secret_of(token))
    guess = asyncio.ensure_future(rig.verifier.verify(format_token(1, WRONG), client=ATTACKER))
    first_use = asyncio.ensure_future(rig.verifier.verify(token, client="192.0.2.1"))
    await until(lambda: rig.hasher.running == 2)
    # The attacker's address has its turn taken by the stuck guess, but joining
    # the check of this token already under way costs no argon2 of its own.
    joined = asyncio.ensure_future(rig.verifier.verify(token, client=ATTACKER))
    await asyncio.sleep(0.01)
    token_held.set()
    assert (
        (await first_use).record.id
        == (await asyncio.wait_for(joined, 1)).record.id
        == token_id(token)
    )
    assert not guess.done()
    guess_held.set()
    with pytest.raises(TooManyRequests):
        await guess
    assert rig.hasher.calls == 2


# Argon2 only where nothing cheaper can decide ---------------------------------------


def other_checksum(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.parametrize(
    ("make", "reads", "argon2"),
    [
        # The format and the CRC are public: nothing to hide, nothing to read.
        (lambda known, fresh: "atpx_garbage", 0, 0),
        (lambda known, fresh: other_checksum(fresh), 0, 0),
        # Ids are sequential, not secret: one read says there is no such token.
        (lambda known, fresh: format_token(99_999, WRONG), 1, 0),
        # This worker verified the row's one secret: any other is wrong.
        (lambda known, fresh: wrong_secret(known), 1, 0),
        # Nothing known of the row: only argon2 can tell.
        (lambda known, fresh: wrong_secret(fresh), 1, 1),
    ],
    ids=["malformed", "bad-checksum", "unknown-id", "row-verified-here", "row-not-verified"],
)
async def test_the_work_a_refusal_costs(
    rig: Rig, make: Callable[[str, str], str], reads: int, argon2: int
) -> None:
    known = await rig.issue()
    await rig.verifier.verify(known, client="192.0.2.1")
    fresh = await rig.issue()
    calls, before = rig.hasher.calls, rig.rows.reads
    with pytest.raises(InvalidToken) as refused:
        await rig.verifier.verify(make(known, fresh), client=ATTACKER)
    assert (rig.rows.reads - before, rig.hasher.calls - calls) == (reads, argon2)
    assert rig.shared.keys == [f"address {ATTACKER}"]  # counted all the same
    assert refused.value.reason in ("malformed", "checksum", "unknown")


async def test_a_bad_token_is_judged_once_however_often_it_comes(rig: Rig) -> None:
    wrong = wrong_secret(await rig.issue())
    for _ in range(5):
        with pytest.raises(InvalidToken):
            await rig.verifier.verify(wrong, client="192.0.2.1")
    assert rig.hasher.calls == 1


async def test_a_row_rotated_elsewhere_accepts_its_new_secret_at_once(rig: Rig) -> None:
    token = await rig.issue()
    await rig.verifier.verify(token, client="192.0.2.1")  # its one secret is known here
    new = new_secret()
    # Another process rotates it with a minute's grace; this one has not heard yet.
    assert await rig.store.rotate(
        token_id(token), await rig.hasher.hash(new), START_MS + 60_000, ACT
    )
    calls = rig.hasher.calls
    rotated = format_token(token_id(token), new)
    assert (await rig.verifier.verify(rotated, client="192.0.2.1")).record.id == token_id(token)
    assert rig.hasher.calls == calls + 1  # the hash differs: what was known does not apply
    rig.verifier.forget([token_id(token)])  # the news arrives
    # In the grace a wrong secret could be the replaced one: argon2 tries both.
    with pytest.raises(InvalidToken):
        await rig.verifier.verify(wrong_secret(token), client="192.0.2.1")
    assert rig.hasher.calls == calls + 3
    assert (await rig.verifier.verify(token, client="192.0.2.1")).rotated
    rig.clock.advance(60_000)  # the grace is over
    await rig.verifier.verify(rotated, client="192.0.2.1")
    calls = rig.hasher.calls
    for refused in (token, wrong_secret(token), format_token(token_id(token), "R" * 32)):
        with pytest.raises(InvalidToken):
            await rig.verifier.verify(refused, client="192.0.2.1")
    assert rig.hasher.calls == calls  # one secret again, and it is known


async def test_forget_drops_what_is_known_of_a_tokens_secrets(rig: Rig) -> None:
    known, fresh = await rig.issue(), await rig.issue()
    await rig.verifier.verify(known, client="192.0.2.1")
    bad = [wrong_secret(known), wrong_secret(fresh)]
    for _ in range(2):
        for token in bad:
            with pytest.raises(InvalidToken):
                await rig.verifier.verify(token, client="192.0.2.1")
    assert rig.hasher.calls == 2  # the known token's first use, and fresh's wrong secret once
    rig.verifier.forget([token_id(known), token_id(fresh)])
    for token in bad:
        with pytest.raises(InvalidToken):
            await rig.verifier.verify(token, client="192.0.2.1")
    assert rig.hasher.calls == 4
    rig.verifier.forget_all()
    for token in bad:
        with pytest.raises(InvalidToken):
            await rig.verifier.verify(token, client="192.0.2.1")
    assert rig.hasher.calls == 6


async def test_a_refusal_under_way_when_its_token_changes_is_not_remembered(rig: Rig) -> None:
    wrong = wrong_secret(await rig.issue())
    held = rig.hasher.hold(WRONG)
    started = asyncio.ensure_future(rig.verifier.verify(wrong, client="192.0.2.1"))
    await until(lambda: rig.hasher.running == 1)
    rig.verifier.forget([token_id(wrong)])
    held.set()
    with pytest.raises(InvalidToken):
        await started
    with pytest.raises(InvalidToken):
        await rig.verifier.verify(wrong, client="192.0.2.1")
    assert rig.hasher.calls == 2


# Suspect sources wait in a lane of their own -------------------------------------------


async def test_suspect_sources_share_one_lane_and_first_uses_pass_them(rig: Rig) -> None:
    target = token_id(await rig.issue())  # never verified: argon2 must judge its secrets
    fresh = [await rig.issue() for _ in range(3)]
    suspects = [f"198.51.100.{i}" for i in range(10)]
    for address in suspects:
        await rig.fail(1, address)  # one failure each: suspect, far from throttled
    guesses = [f"{i:0>32}" for i in range(len(suspects))]
    releases = [rig.hasher.hold(guess) for guess in guesses]
    waiting = [
        asyncio.ensure_future(rig.verifier.verify(format_token(target, guess), client=address))
        for guess, address in zip(guesses, suspects, strict=True)
    ]
    await until(lambda: rig.hasher.running == 1)
    await asyncio.sleep(0.02)
    assert rig.hasher.running == 1  # the nine others wait for the lane's one place
    # First uses from clean addresses go past the stuck lane.
    grants = await asyncio.gather(
        *(rig.verifier.verify(t, client=f"192.0.2.{i}") for i, t in enumerate(fresh))
    )
    assert [grant.record.id for grant in grants] == [token_id(t) for t in fresh]
    rig.hasher.most = 0
    for release in releases:
        release.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(type(outcome) is InvalidToken for outcome in outcomes)
    assert rig.hasher.most == 1  # the suspects' checks, one after another


async def test_a_token_revoked_while_its_check_waits_for_the_lane_is_refused(rig: Rig) -> None:
    target, token = token_id(await rig.issue()), await rig.issue()
    await rig.fail(1, ATTACKER)
    await rig.fail(1, "198.51.100.1")  # both suspect: one shared place between them
    held = rig.hasher.hold(WRONG)
    guess = asyncio.ensure_future(rig.verifier.verify(format_token(target, WRONG), client=ATTACKER))
    await until(lambda: rig.hasher.running == 1)
    waiting = asyncio.ensure_future(rig.verifier.verify(token, client="198.51.100.1"))
    await asyncio.sleep(0.01)  # it has read the row, and waits for the place
    assert await rig.store.delete(token_id(token), ACT)
    rig.verifier.forget([token_id(token)])
    held.set()
    with pytest.raises(InvalidToken) as refused:
        await waiting
    assert refused.value.reason == "revoked"
    with pytest.raises(InvalidToken):
        await guess


async def test_a_source_holds_one_check_at_a_time_however_many_connections_it_opens(
    rig: Rig,
) -> None:
    fresh = [await rig.issue() for _ in range(5)]
    grants = await asyncio.gather(*(rig.verifier.verify(t, client="192.0.2.1") for t in fresh))
    assert [grant.record.id for grant in grants] == [token_id(t) for t in fresh]
    assert rig.hasher.most == 1  # one after another: no address fills the hasher's queue


@pytest.mark.real_argon2
async def test_a_flood_through_the_real_hasher_never_makes_a_first_use_busy(rig: Rig) -> None:
    """Issue 18, item 11, in the small: twelve suspect addresses guessing secrets that
    argon2 must judge, with one argon2 thread and four pending checks. First uses from
    elsewhere are never Busy, and one from a flooding address is still accepted."""
    # Cheap parameters keep it short; the queue's bound is what matters.
    hasher = SecretHasher(workers=1, max_pending=4, time_cost=1, memory_cost=1024)
    try:
        verifier = TokenVerifier(
            rig.store,
            hasher,
            rig.access,
            rig.clock,
            rig.throttle,
            cache_seconds=300,
            cache_size=100,
        )

        async def issue() -> str:
            secret = new_secret()
            record = await rig.store.create(
                NewToken("key-alice", "alice", "t", await hasher.hash(secret), START_MS, None, "k"),
                ACT,
            )
            return format_token(record.id, secret)

        targets = [token_id(await issue()) for _ in range(3)]
        valid = [await issue() for _ in range(6)]
        flooders = [f"198.51.100.{i}" for i in range(12)]
        for address in flooders:
            await rig.fail(1, address)  # suspect from the start (fresh ones are first uses)
        stop = asyncio.Event()
        refusals: list[type[Exception]] = []

        async def guess(address: str, n: int) -> None:
            while not stop.is_set():
                n += 1000
                try:
                    await verifier.verify(format_token(targets[n % 3], f"{n:0>32}"), client=address)
                except (InvalidToken, TooManyRequests, Busy) as exc:
                    refusals.append(type(exc))

        flood = [asyncio.ensure_future(guess(address, i)) for i, address in enumerate(flooders)]
        try:
            await until(lambda: len(refusals) >= len(flooders))
            grants = [await verifier.verify(token, client="192.0.2.1") for token in valid[:-1]]
            from_flooder = await verifier.verify(valid[-1], client=flooders[0])
        finally:
            stop.set()
            await asyncio.gather(*flood)
        assert [grant.record.id for grant in grants] == [token_id(t) for t in valid[:-1]]
        assert from_flooder.record.id == token_id(valid[-1])
    finally:
        hasher.close()


# One check per token, however many ask at once --------------------------------


async def test_a_storm_of_first_uses_shares_one_check(rig: Rig) -> None:
    token = await rig.issue()
    records = await asyncio.gather(
        *(rig.verifier.verify(token, "alice", client=f"10.0.{i // 256}.{i % 256}")
          for i in range(150))
    )  # fmt: skip
    assert {record.record.id for record in records} == {token_id(token)}
    assert rig.hasher.calls == 1


@pytest.mark.real_argon2
async def test_a_storm_through_the_real_hasher_is_never_busy(rig: Rig) -> None:
    hasher = SecretHasher(workers=2, max_pending=64)
    try:
        verifier = TokenVerifier(
            rig.store, hasher, rig.access, rig.clock, rig.throttle, cache_seconds=300, cache_size=10
        )
        secret = new_secret()
        record = await rig.store.create(
            NewToken("key-alice", "alice", "t", await hasher.hash(secret), START_MS, None, "k"),
            ACT,
        )
        token = format_token(record.id, secret)
        records = await asyncio.gather(*(verifier.verify(token) for _ in range(150)))
        assert {r.record.id for r in records} == {record.id}
    finally:
        hasher.close()


async def test_a_storm_of_one_wrong_token_shares_one_check_and_counts_each_failure(
    rig: Rig,
) -> None:
    wrong = wrong_secret(await rig.issue())
    addresses = [f"10.1.0.{i}" for i in range(150)]
    outcomes = await asyncio.gather(
        *(rig.verifier.verify(wrong, client=address) for address in addresses),
        return_exceptions=True,
    )
    assert all(type(outcome) is InvalidToken for outcome in outcomes)
    assert rig.hasher.calls == 1
    assert len(rig.throttle) == 150  # each request counted its own address


async def test_waiters_on_one_check_each_count_their_own_failure(rig: Rig) -> None:
    wrong = wrong_secret(await rig.issue())
    outcomes = await asyncio.gather(
        *(rig.verifier.verify(wrong, client=ATTACKER) for _ in range(LIMIT + 5)),
        return_exceptions=True,
    )
    assert rig.hasher.calls == 1
    # Which waiters are the last five depends on the order the loop wakes them in.
    kinds = [type(outcome) for outcome in outcomes]
    assert (kinds.count(InvalidToken), kinds.count(TooManyRequests)) == (LIMIT, 5), kinds


async def test_waiters_on_one_check_each_apply_their_own_acceptance(rig: Rig) -> None:
    token = await rig.issue("alice")
    outcomes = await asyncio.gather(
        rig.verifier.verify(token, "alice", client="192.0.2.1"),
        rig.verifier.verify(token, "bob", client="192.0.2.2"),
        rig.verifier.verify(token, None, client="192.0.2.3"),
        return_exceptions=True,
    )
    assert [type(outcome) for outcome in outcomes] == [Grant, InvalidToken, Grant]
    assert rig.hasher.calls == 1
    assert rig.throttle.retry_after("user bob") is None
    assert len(rig.throttle) == 2  # bob's address and bob's name, nobody else


async def test_a_check_under_way_when_its_token_is_revoked_is_not_cached(rig: Rig) -> None:
    token = await rig.issue()
    held = rig.hasher.hold(secret_of(token))
    started = asyncio.ensure_future(rig.verifier.verify(token))
    await until(lambda: rig.hasher.running == 1)  # the store has been read
    assert await rig.store.delete(token_id(token), ACT)
    rig.verifier.forget([token_id(token)])
    held.set()
    assert (await started).record.id == token_id(token)  # it began before the revocation
    assert rig.verifier.verify_cached(token, None, "192.0.2.1") is None
    with pytest.raises(InvalidToken):
        await rig.verifier.verify(token)


# verify_cached: the hot path that never awaits ---------------------------------


async def test_verify_cached(rig: Rig) -> None:
    token = await rig.issue("alice", valid_until=START_MS + 60_000)
    assert rig.verifier.verify_cached(token, None, "192.0.2.1") is None  # not verified yet
    # With the cache key the gate made (Gate.decide): cached under that same key.
    await rig.verifier.verify(token, client="192.0.2.1", digest=rig.verifier.digest(token))
    assert await rig.last_accessed(token) == (START_MS, "192.0.2.1")

    rig.clock.advance(1000)
    for username in (None, "alice", "ALICE"):
        record = rig.verifier.verify_cached(token, username, "192.0.2.2")
        assert record is not None
        assert record.record.id == token_id(token)
    # Recorded as verify() does, with the address of the latest use.
    assert await rig.last_accessed(token) == (START_MS + 1000, "192.0.2.2")

    # With the cache key the gate made for the header: the same grant, and only its own.
    digest = rig.verifier.digest(token)
    assert digest == rig.verifier.digest(token) and token.encode() not in digest
    found = rig.verifier.verify_cached(token, "alice", "192.0.2.2", digest)
    assert found is not None and found.record.id == token_id(token)
    assert rig.verifier.verify_cached(token, None, "192.0.2.2", rig.verifier.digest("x")) is None

    rig.clock.advance(1000)
    assert rig.verifier.verify_cached(token, "bob", ATTACKER) is None
    assert rig.verifier.verify_cached(token, "bob", ATTACKER, digest) is None
    assert rig.verifier.verify_cached("atpx_garbage", None, ATTACKER) is None
    # Refusals are not uses.
    assert await rig.last_accessed(token) == (START_MS + 1000, "192.0.2.2")

    rig.clock.advance(60_000)  # expired
    assert rig.verifier.verify_cached(token, None, "192.0.2.2") is None
    assert len(rig.throttle) == 0  # no accounting here...
    with pytest.raises(InvalidToken, match="expired"):
        await rig.verifier.verify(token, client=ATTACKER)
    assert len(rig.throttle) == 1  # ...verify() does it


async def test_verify_cached_ignores_the_throttle(rig: Rig) -> None:
    token = await rig.issue()
    await rig.verifier.verify(token, "alice", client=ATTACKER)
    await rig.fail(LIMIT, ATTACKER, "alice")
    assert rig.verifier.verify_cached(token, "alice", ATTACKER) is not None


async def test_verify_cached_forgets_revoked_tokens(rig: Rig) -> None:
    token = await rig.issue()
    await rig.verifier.verify(token)
    rig.verifier.forget([token_id(token)])
    assert rig.verifier.verify_cached(token, None, "192.0.2.1") is None


# The acceptance rule, without an event loop ----------------------------------


def record(valid_until: int | None, previous_until: int | None = None) -> TokenRecord:
    return TokenRecord(
        1, "key-alice", "Alice", "t", "h", START_MS, valid_until, 0, "key-alice",
        previous_hash=None if previous_until is None else "old", previous_until=previous_until,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("valid_until", "previous_until", "username", "email", "now", "refused"),
    [
        # The replaced secret of a rotation: good until the earlier of the two deadlines.
        (None, START_MS + 5, None, "", START_MS + 4, None),
        (None, START_MS + 5, None, "", START_MS + 5, "replaced by a rotation"),
        (START_MS + 3, START_MS + 5, None, "", START_MS + 3, "replaced by a rotation"),
        # A user name with @ is the owner's only if it is the owner's address.
        (None, None, "alice@example.com", "alice@example.com", START_MS, None),
        (None, None, "ALICE@Example.COM", "alice@example.com", START_MS, None),
        (None, None, "bob@example.com", "alice@example.com", START_MS, "does not belong"),
        (None, None, "alice@example.com", "", START_MS, "does not belong"),
    ],
)
def test_rejection_of_rotated_secrets_and_email_names(
    valid_until: int | None,
    previous_until: int | None,
    username: str | None,
    email: str,
    now: int,
    refused: str | None,
) -> None:
    rotated = previous_until is not None
    grant = grant_for(record(valid_until, previous_until), rotated=rotated)
    problem = rejection(grant, username, now, email)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None
        assert refused in problem.message
        assert problem.reason == ("rotated" if "replaced" in refused else "wrong_owner")


@pytest.mark.parametrize(
    ("valid_until", "username", "now", "refused", "why"),
    [
        (None, None, START_MS, None, None),
        (None, "alice", START_MS, None, None),
        (None, "ALICE", START_MS, None, None),
        (None, "bob", START_MS, "does not belong", "wrong_owner"),
        (None, "", START_MS, "does not belong", "wrong_owner"),
        (START_MS + 1, None, START_MS, None, None),
        (START_MS + 1, None, START_MS + 1, "expired on 2026-01-15 12:00 UTC", "expired"),
        (START_MS + 1, "bob", START_MS + 1, "expired", "expired"),  # expiry is reported first
    ],
)
def test_rejection(
    valid_until: int | None, username: str | None, now: int, refused: str | None, why: str | None
) -> None:
    problem = rejection(grant_for(record(valid_until)), username, now)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None
        assert refused in problem.message
        assert problem.reason == why


# Who a token speaks for: its owner's key, under the name the upstream gives it now ---------


@pytest.mark.parametrize(
    ("upstream_says", "speaks_for"),
    [
        (User("key-alice", "alice"), "alice"),
        (User("key-alice", "ALICE"), "alice"),  # names compare as the upstream's do
        (User("key-alice", "alicia"), "alicia"),  # renamed: the token follows the key
        (None, None),  # the key is gone upstream: refused, whoever has the name now
        (UpstreamRefused("jira is down"), "alice"),  # cannot tell: the stored name
    ],
)
async def test_a_token_speaks_for_its_owners_key(
    rig: Rig, upstream_says: User | Exception | None, speaks_for: str | None
) -> None:
    asked: list[str] = []

    async def owner_of(record: TokenRecord) -> User | None:
        asked.append(record.owner_key)
        if isinstance(upstream_says, Exception):
            raise upstream_says
        return upstream_says

    verifier = TokenVerifier(
        rig.store,
        cast(SecretHasher, rig.hasher),
        rig.access,
        rig.clock,
        rig.throttle,
        cache_seconds=300,
        cache_size=10,
        owner_of=owner_of,
    )
    token = await rig.issue()
    for _ in range(3):
        if speaks_for is None:
            with pytest.raises(InvalidToken):
                await verifier.verify(token)
        else:
            assert (await verifier.verify(token)).record.owner_name == speaks_for
    # Asked once per check against the store; a cached grant asks nothing.
    assert asked == ["key-alice"] * (1 if speaks_for is not None else 3)
