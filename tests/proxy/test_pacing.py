"""How slowly a request body may come: the one rule both lanes apply."""

from __future__ import annotations

import pytest

from apitokenproxy.live import ClientTimeouts
from apitokenproxy.proxy.pacing import body_deadline, too_slow


@pytest.mark.parametrize(
    "started, last, received, idle, min_rate, deadline",
    [
        # Silent since it began: the idle timeout from its start.
        (0, 0, 0, 60, 500, 60),
        # Bytes keep the idle deadline moving; fast enough, the rate never binds.
        (0, 50, 100_000, 60, 500, 110),
        # A byte every five seconds: after the first minute, far below 500 B/s.
        (0, 55, 12, 60, 500, 60),
        # Slow but steady: 400 B/s for a while is under the rate once the minute is up.
        (0, 99, 40_000, 60, 500, 80),
        # Exactly the rate: the deadline keeps pace with the bytes.
        (0, 100, 50_000, 60, 500, 100),
        # No minimum rate: only the idle timeout.
        (0, 1000, 12, 60, 0, 1060),
        # Any clock: the rule is about differences.
        (1_000_000.5, 1_000_010.5, 0, 1, 1000, 1_000_001.5),
    ],
)
def test_body_deadline(
    started: float, last: float, received: int, idle: float, min_rate: int, deadline: float
) -> None:
    assert body_deadline(started, last, received, idle=idle, min_rate=min_rate) == pytest.approx(
        deadline
    )


def test_the_refusal_says_what_the_limits_are() -> None:
    error = too_slow(ClientTimeouts(30, 75, body=60, body_min_rate=500))
    assert (error.status, error.code, error.closes) == (408, "request_timeout", True)
    assert "60 s" in error.message and "500 bytes a second" in error.message
    assert "bytes a second" not in too_slow(ClientTimeouts(30, 75, body_min_rate=0)).message
