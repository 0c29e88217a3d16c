"""The token rules that are pure: a rotation's grace, and which scope changes widen."""

from __future__ import annotations

import pytest

from apitokenproxy.tokenapi.service import grace_seconds, widens


@pytest.mark.parametrize(
    ("requested", "maximum", "grace"),
    [
        (None, 86_400, 86_400),  # absent: one day
        (None, 600, 600),  # ...or the maximum, if less
        (None, 7 * 86_400, 86_400),
        (60, 86_400, 60),
        (7 * 86_400, 86_400, 86_400),  # capped
        (7 * 86_400, 7 * 86_400, 7 * 86_400),
        (0, 86_400, 0),
        (60, 0, 0),  # the admin allows none
    ],
)
def test_grace(requested: int | None, maximum: int, grace: int) -> None:
    assert grace_seconds(requested, maximum) == grace


@pytest.mark.parametrize(
    ("current", "requested", "widened"),
    [("write", "read", False), ("read", "read", False), ("write", "write", False),
     ("read", "write", True)],
)  # fmt: skip
def test_a_scope_only_narrows(current: str, requested: str, widened: bool) -> None:
    assert widens(current, requested) is widened
