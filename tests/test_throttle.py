"""Failure throttling: windows, blocking, and bounded memory."""

from __future__ import annotations

from apitokenproxy.throttle import FailureThrottle


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
