"""Validity arithmetic: the seed's own numbers, calendar edge cases and capping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apitokenproxy.tokenapi.validity import effective_months, valid_until


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("created", "months", "expected"),
    [
        # The seed's tokensByFilter example, created/validUntil pairs.
        (1580832062985, 6, 1596556862985),
        (1580832051168, 12, 1612454451168),
        (1580893252170, 12, 1612515652170),
        (ms("2024-01-31T10:00:00.123"), 1, ms("2024-02-29T10:00:00.123")),
        (ms("2023-01-31T10:00:00"), 1, ms("2023-02-28T10:00:00")),
        (ms("2024-02-29T00:00:00"), 12, ms("2025-02-28T00:00:00")),
        (ms("2024-11-15T23:59:59.999"), 2, ms("2025-01-15T23:59:59.999")),
        (ms("2024-05-01T00:00:00"), 120, ms("2034-05-01T00:00:00")),
        (ms("2024-05-01T00:00:00"), 0, None),
    ],
)
def test_valid_until(created: int, months: int, expected: int | None) -> None:
    assert valid_until(created, months) == expected


@pytest.mark.parametrize(
    ("requested", "default", "maximum", "expected"),
    [
        (None, 6, 12, 6),
        (3, 6, 12, 3),
        (12, 6, 12, 12),
        (24, 6, 12, 12),
        (24, 6, 0, 24),
        (None, 0, 0, 0),
        (None, 0, 12, 12),
    ],
)
def test_effective_months(requested: int | None, default: int, maximum: int, expected: int) -> None:
    assert effective_months(requested, default, maximum) == expected
