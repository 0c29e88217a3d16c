"""The audit resource's query, request ids and expansions: pure checks, as tables."""

from __future__ import annotations

import pytest

from apitokenproxy.errors import BadRequest
from apitokenproxy.store.audit import AuditQuery
from apitokenproxy.tokenapi.inputs import (
    AuditFilter,
    parse_audit_query,
    sane_request_id,
    wants_origin,
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, AuditFilter(AuditQuery(), 0, 50)),
        ({"userKey": "JIRAUSER1"}, AuditFilter(AuditQuery(user_key="JIRAUSER1"), 0, 50)),
        ({"since": "0", "page": "3", "limit": "500"}, AuditFilter(AuditQuery(since=0), 3, 50)),
        ({"since": "1763971200000", "limit": "7"}, AuditFilter(AuditQuery(since=1763971200000), 0, 7)),
    ],
)  # fmt: skip
def test_audit_queries(query: dict[str, str], expected: AuditFilter) -> None:
    assert parse_audit_query(query) == expected


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"userKey": " "}, "userKey must not be empty"),
        ({"since": "2026-11-24"}, "since must be a whole number between 0"),
        ({"since": "-1"}, "since must be a whole number between 0"),
        ({"page": "-1"}, "page must be a whole number"),
        ({"limit": "0"}, "limit must be a whole number between 1"),
    ],
)
def test_bad_audit_queries(query: dict[str, str], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_audit_query(query)


@pytest.mark.parametrize(
    ("values", "kept"),
    [
        (["3f2b8c1e-7a4d-4e1b-9c2a-0d5e6f7a8b9c"], "3f2b8c1e-7a4d-4e1b-9c2a-0d5e6f7a8b9c"),
        (["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        (["YWJj+ZGVm/Zw=="], "YWJj+ZGVm/Zw=="),
        (["r" * 128], "r" * 128),
        (["r" * 129], ""),
        ([], ""),
        ([""], ""),
        (["a", "b"], ""),
        (["has space"], ""),
        (["line\r\nbreak"], ""),
        (['quote"d'], ""),
        (["caf\u00e9"], ""),
        # A token in the wrong header is not kept, whatever its case or place.
        (["atpx_42_QvR3m9LkPz8WnT2xY7bC4dF6gH1jK5sA0a1b2c"], ""),
        (["trace-ATPX_42_abc"], ""),
    ],
)  # fmt: skip
def test_only_a_sane_request_id_is_kept(values: list[str], kept: str) -> None:
    assert sane_request_id(values) == kept


@pytest.mark.parametrize(
    ("query", "origin"),
    [
        ({}, False),
        ({"expand": "lastAccessedFrom"}, True),
        ({"expand": " lastAccessedFrom , "}, True),
        ({"expand": ""}, False),
    ],
)
def test_expand(query: dict[str, str], origin: bool) -> None:
    assert wants_origin(query) is origin


def test_an_unknown_expansion_is_refused() -> None:
    with pytest.raises(BadRequest, match="expand accepts lastAccessedFrom, not 'owner'"):
        wants_origin({"expand": "lastAccessedFrom,owner"})
