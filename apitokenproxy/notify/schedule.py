"""Which expiry warning a token is due now: a pure decision.

A token expiring in ``left`` milliseconds is due the warning of the
smallest configured day count ``d`` with ``left <= d days``. A token made
with less time left than the largest threshold gets only the most urgent
warning that applies, never a "14 days" message when 2 days remain.
"""

from __future__ import annotations

from collections.abc import Sequence

DAY_MS = 86_400_000


def due_days(valid_until: int | None, now_ms: int, warn_days: Sequence[int]) -> int | None:
    """The day count whose warning is due, or None (never expires, expired, not yet)."""
    if valid_until is None or valid_until <= now_ms:
        return None
    left = valid_until - now_ms
    due = [days for days in warn_days if left <= days * DAY_MS]
    return min(due) if due else None


def retry_delay_ms(first_ms: int, failed_attempts: int) -> int:
    """Back-off after the n-th failure: first_ms, then doubling."""
    return int(first_ms * 2 ** max(failed_attempts - 1, 0))
