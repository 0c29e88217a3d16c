"""The token API's inputs, as tables: the policy fields (what is accepted, and
how it is read), the audit resource's query, request ids and expansions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apitokenproxy.errors import BadRequest
from apitokenproxy.ops.requestid import request_id, sane
from apitokenproxy.store.audit import AuditQuery
from apitokenproxy.tokenapi.inputs import (
    MAX_GRACE_SECONDS,
    AuditFilter,
    parse_audit_query,
    parse_create,
    parse_networks,
    parse_patch,
    parse_rotate,
    parse_scope,
    wants_origin,
)
from apitokenproxy.tokenapi.service import CreateRequest, PolicyChange


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], ()),
        (["10.0.0.0/8"], ("10.0.0.0/8",)),
        (["10.1.2.3/8"], ("10.0.0.0/8",)),  # host bits are dropped
        (["192.0.2.7"], ("192.0.2.7/32",)),  # an address is a network of one
        ([" 2001:DB8::/32 "], ("2001:db8::/32",)),
        (["::1"], ("::1/128",)),
        (["10.0.0.0/8", "10.0.0.0/8", "10.9.9.9/8"], ("10.0.0.0/8",)),
        # apitokenproxy/networks.py's form: mapped IPv6 as IPv4, no zone.
        (["::ffff:10.0.0.0/104", "10.0.0.0/8"], ("10.0.0.0/8",)),
        (["fe80::%eth0/10"], ("fe80::/10",)),
    ],
)
def test_networks_are_canonical(value: Any, expected: tuple[str, ...]) -> None:
    assert parse_networks(value) == expected


@pytest.mark.parametrize(
    "value",
    ["10.0.0.0/8", None, [None], [10], ["10.0.0.0/33"], ["host.example"], ["10.0.0.0/8", ""],
     [f"10.{i}.0.0/16" for i in range(65)]],
)  # fmt: skip
def test_bad_networks_are_400(value: Any) -> None:
    with pytest.raises(BadRequest, match="allowedAddresses"):
        parse_networks(value)


@pytest.mark.parametrize(("value", "ok"), [("read", True), ("write", True), ("READ", False),
                                             ("admin", False), (1, False), ("", False)])  # fmt: skip
def test_scope(value: Any, ok: bool) -> None:
    if ok:
        assert parse_scope(value) == value
    else:
        with pytest.raises(BadRequest, match="scope must be one of"):
            parse_scope(value)


def test_create_without_policy_fields_is_the_seeds() -> None:
    assert parse_create({"tokenDescription": "t"}, 255) == CreateRequest("t")
    assert parse_create(
        {"tokenDescription": "t", "scope": "read", "allowedAddresses": ["::1"]}, 255
    ) == CreateRequest("t", scope="read", allowed_networks=("::1/128",))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"tokenDescription": "d"}, PolicyChange(description="d")),
        ({"scope": "read"}, PolicyChange(scope="read")),
        ({"allowedAddresses": []}, PolicyChange(allowed_networks=())),
        (
            {"tokenDescription": "d", "scope": "read", "allowedAddresses": ["10.0.0.1"]},
            PolicyChange("d", "read", ("10.0.0.1/32",)),
        ),
        ({"scope": None, "tokenDescription": "d"}, PolicyChange(description="d")),
    ],
)
def test_patch(body: dict[str, Any], expected: PolicyChange) -> None:
    assert parse_patch(body, 255) == expected


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "tokenDescription is required"),  # the seed's answer, unchanged
        ({"scope": None}, "tokenDescription is required"),
        ({"scope": "read", "tokenDescription": ""}, "must not be empty"),
        ({"scope": "owner"}, "scope must be one of"),
    ],
)
def test_bad_patch(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_patch(body, 255)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", None),
        (b"  ", None),
        (b"{}", None),
        (b'{"gracePeriodSeconds": null}', None),
        (b'{"gracePeriodSeconds": 0}', 0),
        (b'{"gracePeriodSeconds": "3600"}', 3600),
        (b'{"gracePeriodSeconds": 60.0}', 60),
        (json.dumps({"gracePeriodSeconds": MAX_GRACE_SECONDS}).encode(), MAX_GRACE_SECONDS),
    ],
)
def test_rotate(body: bytes, expected: int | None) -> None:
    assert parse_rotate(body) == expected


@pytest.mark.parametrize(
    "body",
    [b"[]", b"nope", b'{"gracePeriodSeconds": -1}', b'{"gracePeriodSeconds": 1.5}',
     b'{"gracePeriodSeconds": true}', b'{"gracePeriodSeconds": "soon"}',
     json.dumps({"gracePeriodSeconds": MAX_GRACE_SECONDS + 1}).encode()],
)  # fmt: skip
def test_bad_rotate(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_rotate(body)


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
        # A token in the wrong header is not kept, whatever its case or place.
        (["atpx_42_QvR3m9LkPz8WnT2xY7bC4dF6gH1jK5sA0a1b2c"], None),
        (["trace-ATPX_42_abc"], None),
    ],
)  # fmt: skip
def test_the_request_id_is_kept_unless_it_carries_a_token(
    values: list[str], kept: str | None
) -> None:
    made = request_id(values)
    if kept is not None:
        assert made == kept
    else:
        assert made not in values and "atpx_" not in made.lower() and sane(made)


@pytest.mark.parametrize(
    "values",
    [
        ["r" * 129],
        [],
        [""],
        ["a", "b"],
        ["has space"],
        ["line\r\nbreak"],
        ['quote"d'],
        ["caf\u00e9"],
    ],
)
def test_an_insane_request_id_is_replaced_by_one_made_here(values: list[str]) -> None:
    kept = request_id(values)
    assert kept not in values
    assert sane(kept)


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
