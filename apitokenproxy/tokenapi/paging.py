"""The seed's paging envelope for ``tokensByFilter``, as a pure function.

Links repeat the query in the seed's order (``page``, ``limit``, then the
resource's own parameters: ``notValidAfter`` for ``tokensByFilter``) and are
empty strings when there is no such page. The audit resource pages the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

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
    params: Sequence[tuple[str, str | int]],
) -> dict[str, Any]:
    """``params``: the resource's own query parameters, which the links carry encoded."""
    total_pages = -(-total // limit)
    rest = f"&{urlencode(params, safe='', quote_via=quote)}" if params else ""

    def link(target: int) -> str:
        return f"{base_url}{path}?page={target}&limit={limit}{rest}"

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
