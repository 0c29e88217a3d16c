"""Which expiry warning is due when, and the retry back-off: tables."""

from __future__ import annotations

import pytest

from apitokenproxy.notify.schedule import DAY_MS, due_days, retry_delay_ms

NOW = 1_000 * DAY_MS


@pytest.mark.parametrize(
    ("valid_until", "days"),
    [
        (None, None),
        (NOW, None),  # expired this very moment
        (NOW - 1, None),
        (NOW + 15 * DAY_MS, None),
        (NOW + 14 * DAY_MS + 1, None),
        (NOW + 14 * DAY_MS, 14),
        (NOW + 4 * DAY_MS, 14),
        (NOW + 3 * DAY_MS, 3),
        # Made with two days left: only the most urgent warning, never "14 days".
        (NOW + 2 * DAY_MS, 3),
        (NOW + 1, 3),
    ],
)
def test_due_days(valid_until: int | None, days: int | None) -> None:
    assert due_days(valid_until, NOW, (14, 3)) == days


def test_thresholds_in_any_order() -> None:
    assert due_days(NOW + DAY_MS, NOW, (3, 30, 7)) == 3
    assert due_days(NOW + 20 * DAY_MS, NOW, (3, 30, 7)) == 30


@pytest.mark.parametrize(("failed", "delay"), [(1, 60), (2, 120), (3, 240), (5, 960)])
def test_retries_back_off_doubling(failed: int, delay: int) -> None:
    assert retry_delay_ms(60, failed) == delay
