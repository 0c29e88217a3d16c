"""The seed's paging envelope for ``tokensByFilter``, as a pure function.

Links repeat the query in the seed's order (``page``, ``limit``,
``notValidAfter``) and are empty strings when there is no such page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_LIMIT = 50


def offset(page: int, limit: int) -> int:
    return page * limit


def envelope(
    content: Sequence[dict[str, Any]],
    *,
    total: int,
    page: int,
    limit: int,
    base_url: str,
    path: str,
    not_valid_after: int,
    also: str = "",
) -> dict[str, Any]:
    """``also``: further query parameters the links carry (``&name=value``, encoded)."""
    total_pages = -(-total // limit)

    def link(target: int) -> str:
        return f"{base_url}{path}?page={target}&limit={limit}&notValidAfter={not_valid_after}{also}"

    return {
        "content": list(content),
        "currentPage": page,
        "limit": limit,
        "offset": offset(page, limit),
        "paginationLinks": {
            "baseUrl": base_url,
            "nextPage": link(page + 1) if page + 1 < total_pages else "",
            "previousPage": link(min(page, total_pages) - 1) if page > 0 and total else "",
        },
        "total": total,
        "totalPages": total_pages,
    }
