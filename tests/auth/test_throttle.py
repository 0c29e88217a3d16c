"""Failure throttling: windows, keys, the 429, suspicion, turns, lanes, and bounded memory."""

from __future__ import annotations

import asyncio

import pytest

from apitokenproxy.auth.throttle import (
    FailureThrottle,
    Lanes,
    Turns,
    address_key,
    throttle_keys,
    too_many,
)
from apitokenproxy.config import ThrottleConfig
from apitokenproxy.live import Live, Settings


def limits(max_failures: int, window_seconds: int, max_tracked: int) -> Live:
    """The live settings with these ``auth.throttle`` limits."""
    return Live(Settings(throttle=ThrottleConfig(max_failures, window_seconds, max_tracked)))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_blocks_after_max_failures_until_the_window_ends() -> None:
    clock = Clock()
    throttle = FailureThrottle(limits(3, 60, 100), clock)
    for _ in range(2):
        await throttle.record_failure("a")
    assert throttle.retry_after("a") is None
    await throttle.record_failure("a")
    assert throttle.retry_after("a") == 60
    clock.now += 59.5
    assert throttle.retry_after("a") == 1
    clock.now += 0.5
    assert throttle.retry_after("a") is None
    assert throttle.retry_after("b") is None


async def test_a_new_window_starts_fresh() -> None:
    clock = Clock()
    throttle = FailureThrottle(limits(2, 10, 100), clock)
    await throttle.record_failure("a")
    clock.now += 11
    await throttle.record_failure("a")
    assert throttle.retry_after("a") is None


async def test_a_key_is_suspect_for_a_window_after_its_latest_failure() -> None:
    clock = Clock()
    throttle = FailureThrottle(limits(3, 60, 100), clock)
    assert not throttle.suspect("a")
    await throttle.record_failure("a")
    assert throttle.suspect("a") and throttle.retry_after("a") is None  # suspect, not throttled
    for _ in range(2):
        await throttle.record_failure("a")
    clock.now += 59
    await throttle.record_failure("a")  # throttled; the window still ends at 60 s
    clock.now += 1
    assert throttle.retry_after("a") is None
    # A source that kept failing stays suspect when its window starts afresh.
    assert throttle.suspect("a")
    clock.now += 58  # 59 s after the latest failure
    assert throttle.suspect("a")
    clock.now += 1
    assert not throttle.suspect("a")
    assert throttle.retry_after("a") is None
    assert len(throttle) == 0  # forgotten once neither


async def test_mark_suspect_makes_a_key_suspect_without_counting_a_failure() -> None:
    clock = Clock()
    throttle = FailureThrottle(limits(2, 60, 100), clock)
    throttle.mark_suspect("a")
    assert throttle.suspect("a")
    await throttle.record_failure("a")
    assert throttle.retry_after("a") is None  # one failure counted, of two allowed
    await throttle.record_failure("a")
    assert throttle.retry_after("a") == 60


class Store:
    """A shared counter as the store keeps it: one window and count per key."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, int]] = {}
        self.writes = 0

    async def add_failure(self, key: str, now_ms: int, window_ms: int) -> tuple[int, int]:
        self.writes += 1
        start, count = self.rows.get(key, (now_ms, 0))
        if start <= now_ms - window_ms:
            start, count = now_ms, 0
        self.rows[key] = (start, count + 1)
        return self.rows[key]


async def test_the_store_hears_failures_up_to_the_limit_and_other_instances_learn_it() -> None:
    clock, store = Clock(), Store()
    here = FailureThrottle(limits(3, 60, 100), clock, shared=store)
    there = FailureThrottle(limits(3, 60, 100), clock, shared=store)
    for _ in range(50):  # a flood from one address
        await here.record_failure("a")
    assert store.writes == 3  # beyond the limit a failure changes nothing elsewhere
    assert here.retry_after("a") == 60
    await there.record_failure("a")  # the other instance's first failure...
    assert there.retry_after("a") == 60  # ...finds the key throttled
    clock.now += 60
    await here.record_failure("a")  # a new window is written again
    assert store.writes == 5 and store.rows["a"][1] == 1


async def test_memory_is_bounded_under_a_flood_of_distinct_keys() -> None:
    throttle = FailureThrottle(limits(3, 60, 1000), Clock())
    for i in range(100_000):
        await throttle.record_failure(f"address 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(throttle) == 1000


# Keys and the 429 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("unknown", "unknown"),  # a Unix socket's peer
        # A host gets a whole /64: every address in it is one budget.
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64 is another host
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        # IPv6 forms of an IPv4 host count as that host.
        ("::ffff:192.0.2.1", "192.0.2.1"),  # IPv4-mapped: a dual-stack socket's IPv4 client
        ("::ffff:c000:201", "192.0.2.1"),
        ("64:ff9b::c000:201", "192.0.2.1"),  # NAT64's well-known prefix
        ("2002:c000:201:1::1", "192.0.2.1"),  # 6to4: the host owns the whole /48
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo: its client
        ("not an address", "not an address"),
        ("[2001:db8::1]", "[2001:db8::1]"),  # not an address as the proxy writes them
    ],
)
def test_address_key(client: str, key: str) -> None:
    assert address_key(client) == key


@pytest.mark.parametrize(
    ("client", "username", "keys"),
    [
        ("10.0.0.1", "Alice", ["address 10.0.0.1", "user alice"]),
        ("2001:db8::7", None, ["address 2001:db8::/64"]),
        ("::ffff:10.0.0.1", None, ["address 10.0.0.1"]),
        ("10.0.0.1", None, ["address 10.0.0.1"]),
        (None, "ALICE", ["user alice"]),
        ("", "", []),
        (None, None, []),
    ],
)
def test_throttle_keys(client: str | None, username: str | None, keys: list[str]) -> None:
    assert throttle_keys(client, username) == keys


@pytest.mark.parametrize(
    ("throttled", "message", "retry_after"),
    [
        ({}, None, None),
        (
            {"address 10.0.0.1": 42},
            "too many failed token attempts from 10.0.0.1; retry in 42 s",
            "42",
        ),
        ({"user alice": 7}, "too many failed token attempts for alice; retry in 7 s", "7"),
        # Both throttled: the one that lasts longer is named.
        (
            {"address 10.0.0.1": 5, "user alice": 30},
            "too many failed token attempts for alice; retry in 30 s",
            "30",
        ),
        # Retry-After is never 0, even in the window's last fraction of a second.
        ({"user alice": 0}, "too many failed token attempts for alice; retry in 0 s", "1"),
    ],
)
def test_too_many(throttled: dict[str, int], message: str | None, retry_after: str | None) -> None:
    refusal = too_many(throttled)
    if message is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert (refusal.status, refusal.message) == (429, message)
        assert refusal.headers["Retry-After"] == retry_after


# Turns -------------------------------------------------------------------------


async def test_turns_are_one_at_a_time_per_key_and_forgotten_when_unused() -> None:
    turns = Turns()
    order: list[str] = []

    async def work(name: str, keys: list[str]) -> None:
        end = await turns.take(keys)
        order.append(f"{name} in")
        await asyncio.sleep(0.01)
        order.append(f"{name} out")
        end()

    await asyncio.gather(work("a", ["k"]), work("b", ["k"]), work("c", ["other"]))
    assert order.index("a out") < order.index("b in")  # b waited for a
    assert order.index("c in") < order.index("a out")  # another key did not
    assert len(turns) == 0


async def test_turns_taken_in_any_order_never_deadlock() -> None:
    turns = Turns()

    async def work(keys: list[str]) -> None:
        end = await turns.take(keys)
        await asyncio.sleep(0.001)
        end()

    await asyncio.wait_for(
        asyncio.gather(*(work(["x", "y"] if i % 2 else ["y", "x"]) for i in range(20))), 5
    )
    assert len(turns) == 0


async def test_a_waiter_that_gives_up_leaves_no_trace() -> None:
    turns = Turns()
    end = await turns.take(["b"])
    waiter = asyncio.ensure_future(turns.take(["b", "a"]))  # takes a, then waits for b
    await asyncio.sleep(0)
    assert len(turns) == 2
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    end()
    assert len(turns) == 0
    await asyncio.wait_for(turns.take(["a", "b"]), 1)  # both free again


async def test_no_keys_means_no_wait() -> None:
    turns = Turns()
    end = await turns.take([])
    end()
    assert len(turns) == 0


# Lanes -------------------------------------------------------------------------


async def test_suspect_keys_share_the_budget_and_clean_ones_pass() -> None:
    clock = Clock()
    throttle = FailureThrottle(limits(10, 60, 100), clock)
    for key in ("s1", "s2", "s3"):
        throttle.mark_suspect(key)
    lanes = Lanes(throttle, 1)
    first = await lanes.take(["s1"])
    waiting = [asyncio.ensure_future(lanes.take([key])) for key in ("s2", "s3")]
    await asyncio.sleep(0.01)
    assert not any(waiter.done() for waiter in waiting)  # one place for every suspect key
    end = await asyncio.wait_for(lanes.take(["clean"]), 1)  # a clean key waits for nobody
    end()
    first()
    ends = [await waiting[0]]
    assert not waiting[1].done()
    ends[0]()
    ends.append(await waiting[1])
    ends[1]()
    assert len(lanes) == 0


async def test_suspicion_is_judged_once_the_turn_is_taken() -> None:
    throttle = FailureThrottle(limits(10, 60, 100), Clock())
    throttle.mark_suspect("other")
    lanes = Lanes(throttle, 1)
    held = await lanes.take(["other"])  # the one suspect place is taken
    first = await lanes.take(["a"])  # "a" is clean: only its turn
    second = asyncio.ensure_future(lanes.take(["a"]))
    await asyncio.sleep(0.01)
    throttle.mark_suspect("a")  # the first check of "a" failed
    first()
    await asyncio.sleep(0.01)
    assert not second.done()  # it now waits for the suspect place as well
    held()
    (await second)()
    assert len(lanes) == 0


async def test_a_lane_waiter_that_gives_up_leaves_no_trace() -> None:
    throttle = FailureThrottle(limits(10, 60, 100), Clock())
    for key in ("a", "b"):
        throttle.mark_suspect(key)
    lanes = Lanes(throttle, 1)
    end = await lanes.take(["a"])
    waiter = asyncio.ensure_future(lanes.take(["b"]))  # has b's turn, waits for the place
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    end()
    assert len(lanes) == 0
    (await asyncio.wait_for(lanes.take(["b"]), 1))()
