"""Failure throttling: windows, keys, the 429, turns, and bounded memory."""

from __future__ import annotations

import asyncio

import pytest

from apitokenproxy.auth.throttle import FailureThrottle, Turns, throttle_keys, too_many


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_blocks_after_max_failures_until_the_window_ends() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, 60, 100, clock)
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
    throttle = FailureThrottle(2, 10, 100, clock)
    await throttle.record_failure("a")
    clock.now += 11
    await throttle.record_failure("a")
    assert throttle.retry_after("a") is None


async def test_memory_is_bounded_under_a_flood_of_distinct_keys() -> None:
    throttle = FailureThrottle(3, 60, 1000, Clock())
    for i in range(100_000):
        await throttle.record_failure(f"address 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(throttle) == 1000


# Keys and the 429 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "username", "keys"),
    [
        ("10.0.0.1", "Alice", ["address 10.0.0.1", "user alice"]),
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
