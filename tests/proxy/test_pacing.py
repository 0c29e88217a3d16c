"""How slowly a request body may come: the one rule both lanes apply."""

from __future__ import annotations

import pytest

from apitokenproxy.live import ClientTimeouts
from apitokenproxy.proxy.pacing import body_deadline, too_slow


@pytest.mark.parametrize(
    "deadline, now, received, idle, min_rate, expected",
    [
        # Bytes at the rate keep the deadline where it was...
        (60, 10, 5_000, 60, 500, 70),
        # ...and never more than the timeout ahead of the clock, however many came.
        (60, 0, 300 * 1024, 60, 500, 60),
        # A byte after a burst buys almost nothing: the burst bought no licence to trickle.
        (60, 5, 1, 60, 500, 60.002),
        # Slower than the rate: the deadline comes closer, relative to the clock.
        (100, 50, 400, 60, 500, 100.8),
        # Nothing new (a read that returned nothing): the deadline stands.
        (42, 41, 0, 60, 500, 42),
        # No minimum rate: only the silence counts.
        (60, 30, 1, 60, 0, 90),
        # Any clock: the rule is about differences.
        (1_000_001.5, 1_000_001.0, 0, 1, 1000, 1_000_001.5),
    ],
)
def test_body_deadline(
    deadline: float, now: float, received: int, idle: float, min_rate: int, expected: float
) -> None:
    assert body_deadline(deadline, now, received, idle=idle, min_rate=min_rate) == pytest.approx(
        expected
    )


def _run(rate: float, seconds: float, *, idle: float = 60, min_rate: int = 500) -> float | None:
    """When a body sent at ``rate`` bytes a second (in one-second steps) is cut, if it is."""
    deadline = idle
    for t in range(1, int(seconds) + 1):
        if t > deadline:
            return deadline
        deadline = body_deadline(deadline, t, int(rate), idle=idle, min_rate=min_rate)
    return None


@pytest.mark.parametrize(
    "rate, cut_after",
    [
        (1000, None),  # twice the rate: never
        (500, None),  # at the rate: never
        (400, 300),  # 80% of the rate: five times the timeout
        (0.2, 60),  # a byte every five seconds: the timeout
    ],
)
def test_how_long_a_steady_body_lasts(rate: float, cut_after: float | None) -> None:
    cut = _run(rate, 1000)
    assert cut == (None if cut_after is None else pytest.approx(cut_after, abs=5)), cut


def test_the_refusal_says_what_the_limits_are() -> None:
    error = too_slow(ClientTimeouts(30, 75, body=60, body_min_rate=500))
    assert (error.status, error.code, error.closes) == (408, "request_timeout", True)
    assert "60 s" in error.message and "500 bytes a second" in error.message
    assert "bytes a second" not in too_slow(ClientTimeouts(30, 75, body_min_rate=0)).message
