"""The tokensByFilter envelope, computed without a server."""

from __future__ import annotations

import pytest

from apitokenproxy.tokenapi.paging import envelope

BASE = "https://your-jira-or-confluence"
PATH = "/rest/de.resolution.apitokenauth/latest/user/tokensByFilter"


def links(total: int, page: int, limit: int) -> tuple[str, str, int]:
    data = envelope(
        [],
        total=total,
        page=page,
        limit=limit,
        base_url=BASE,
        path=PATH,
        params=[("notValidAfter", 1688918956972)],
    )
    pl = data["paginationLinks"]
    return pl["previousPage"], pl["nextPage"], data["totalPages"]


def url(page: int, limit: int) -> str:
    return f"{BASE}{PATH}?page={page}&limit={limit}&notValidAfter=1688918956972"


@pytest.mark.parametrize(
    ("total", "page", "limit", "expected"),
    [
        (4, 0, 50, ("", "", 1)),
        (4, 0, 1, ("", url(1, 1), 4)),  # the seed's second example
        (4, 1, 1, (url(0, 1), url(2, 1), 4)),
        (4, 3, 1, (url(2, 1), "", 4)),
        (4, 9, 1, (url(3, 1), "", 4)),  # past the end: back to the last page
        (0, 0, 50, ("", "", 0)),
        (0, 2, 50, ("", "", 0)),
        (101, 1, 50, (url(0, 50), url(2, 50), 3)),
    ],
)
def test_links(total: int, page: int, limit: int, expected: tuple[str, str, int]) -> None:
    assert links(total, page, limit) == expected


def test_envelope_fields_match_the_seed() -> None:
    data = envelope(
        [], total=4, page=0, limit=50, base_url=BASE, path=PATH, params=[("notValidAfter", -1)]
    )
    assert sorted(data) == [
        "content", "currentPage", "limit", "offset", "paginationLinks", "total", "totalPages",
    ]  # fmt: skip
    assert data["offset"] == 0
