"""The token API's policy fields, as tables: what is accepted, and how it is read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apitokenproxy.errors import BadRequest
from apitokenproxy.tokenapi.inputs import (
    MAX_GRACE_SECONDS,
    parse_create,
    parse_networks,
    parse_patch,
    parse_rotate,
    parse_scope,
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
