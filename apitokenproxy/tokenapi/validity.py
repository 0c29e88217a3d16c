"""How long a new token is valid: pure calendar arithmetic.

The seed adds calendar months (a token made on 4 February 2020 with 6 months
is valid until 4 August 2020, same time of day), in UTC. A day that does not
exist in the target month is clamped to its last day (31 January + 1 month is
28 or 29 February).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime


def effective_months(requested: int | None, default: int, maximum: int) -> int:
    """Months of validity to grant; 0 means the token never expires.

    Absent: the default. Present: capped to the maximum (0 = no maximum).
    ``requested`` has already been checked to be a positive integer.
    """
    months = default if requested is None else requested
    if maximum and (months == 0 or months > maximum):
        return maximum
    return months


def valid_until(created_ms: int, months: int) -> int | None:
    if months == 0:
        return None
    created = datetime.fromtimestamp(created_ms / 1000, tz=UTC)
    month_index = created.month - 1 + months
    year, month = created.year + month_index // 12, month_index % 12 + 1
    day = min(created.day, calendar.monthrange(year, month)[1])
    until = created.replace(year=year, month=month, day=day)
    # Work from whole seconds so float rounding never moves the milliseconds.
    whole_seconds = int(until.replace(microsecond=0).timestamp())
    return whole_seconds * 1000 + created_ms % 1000
