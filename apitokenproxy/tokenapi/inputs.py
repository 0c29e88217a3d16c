"""What the token API accepts: pure checks of request bodies and queries.

Each raises ``BadRequest`` with a message that says what was wrong. Accepted
leniencies, as the seed's Jackson-based API has them: unknown JSON fields
are ignored, and whole numbers may come as strings (``"12"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest
from ..networks import parse_network
from ..store.audit import AuditQuery
from ..store.base import SCOPES
from .paging import MAX_LIMIT
from .service import CreateRequest, PolicyChange

MAX_MONTHS = 1200  # a century; beyond that dates stop meaning anything
MAX_ID = 2**63 - 1
MAX_PAGE = 2**31 - 1
# Far more than any build network needs; keeps a token's row and its checks small.
MAX_NETWORKS = 64
MAX_GRACE_SECONDS = 10 * 365 * 86_400
# The extension fields a PATCH may carry besides (or instead of) the seed's tokenDescription.
POLICY_FIELDS = ("scope", "allowedAddresses")
MAX_USER_KEY = 255  # also the longest description filter


@dataclass(frozen=True)
class FilterQuery:
    not_valid_after: int
    page: int
    limit: int
    # Extensions (the pages' filters); absent, the answer is the seed's.
    user_key: str | None = None
    description: str | None = None

    def params(self) -> list[tuple[str, str | int]]:
        """The query parameters, as pagination links repeat them (extensions last)."""
        extra = {"userKey": self.user_key, "description": self.description}
        return [("notValidAfter", self.not_valid_after)] + [
            (k, v) for k, v in extra.items() if v is not None
        ]


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise BadRequest("the JSON body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest(f"the JSON body must be an object, not {_json_type(data)}")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_description(data: Mapping[str, Any], max_length: int) -> str:
    value = data.get("tokenDescription")
    if value is None:
        raise BadRequest("tokenDescription is required")
    if not isinstance(value, str):
        raise BadRequest(f"tokenDescription must be a string, not {_json_type(value)}")
    if not value.strip():
        raise BadRequest("tokenDescription must not be empty")
    if len(value) > max_length:
        raise BadRequest(f"tokenDescription is longer than {max_length} characters")
    if "\x00" in value:
        raise BadRequest("tokenDescription must not contain NUL characters")
    return value


def parse_create(data: Mapping[str, Any], max_description_length: int) -> CreateRequest:
    description = parse_description(data, max_description_length)
    user_key = data.get("tokenForUserKey")
    if user_key is not None and (not isinstance(user_key, str) or not user_key.strip()):
        raise BadRequest("tokenForUserKey must be a non-empty string")
    months = data.get("tokenValidityTimeInMonths")
    scope = data.get("scope")
    networks = data.get("allowedAddresses")
    return CreateRequest(
        description=description,
        for_user_key=user_key,
        months=None if months is None else _months(months),
        scope="write" if scope is None else parse_scope(scope),
        allowed_networks=() if networks is None else parse_networks(networks),
    )


def parse_patch(data: Mapping[str, Any], max_description_length: int) -> PolicyChange:
    """A PATCH: the seed's ``tokenDescription``, required unless a policy field is given."""
    if not any(data.get(name) is not None for name in POLICY_FIELDS):
        return PolicyChange(description=parse_description(data, max_description_length))
    has_description = data.get("tokenDescription") is not None
    scope, networks = data.get("scope"), data.get("allowedAddresses")
    return PolicyChange(
        description=parse_description(data, max_description_length) if has_description else None,
        scope=None if scope is None else parse_scope(scope),
        allowed_networks=None if networks is None else parse_networks(networks),
    )


def parse_scope(value: Any) -> str:
    if value not in SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(map(repr, SCOPES))}, not {value!r}")
    return str(value)


def parse_networks(value: Any) -> tuple[str, ...]:
    """``allowedAddresses``: IPv4 and IPv6 networks in CIDR notation (a bare address is a
    network of one), canonical (``apitokenproxy/networks.py``: an IPv4-mapped IPv6 network in
    its IPv4 form, no zone, no host bits) and without repeats; an empty list means anywhere."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest('allowedAddresses must be a list of IP networks such as "10.1.0.0/16"')
    if len(value) > MAX_NETWORKS:
        raise BadRequest(f"allowedAddresses may list at most {MAX_NETWORKS} networks")
    networks: list[str] = []
    for item in value:
        try:
            network = str(parse_network(item))
        except ValueError as exc:
            raise BadRequest(f"allowedAddresses: {item!r} is not an IP network") from exc
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def parse_rotate(body: bytes) -> int | None:
    """A rotation's optional ``{"gracePeriodSeconds": n}``; an empty body asks for the default."""
    if not body.strip():
        return None
    value = parse_json_object(body).get("gracePeriodSeconds")
    if value is None:
        return None
    number = _whole_number(value)
    if number is None or not 0 <= number <= MAX_GRACE_SECONDS:
        raise BadRequest(
            f"gracePeriodSeconds must be a whole number from 0 to {MAX_GRACE_SECONDS}, "
            f"not {value!r}"
        )
    return number


def _months(value: Any) -> int:
    number = _whole_number(value)
    if number is None or number < 1:
        raise BadRequest(
            f"tokenValidityTimeInMonths must be a positive whole number, not {value!r}"
        )
    if number > MAX_MONTHS:
        raise BadRequest(f"tokenValidityTimeInMonths must be at most {MAX_MONTHS}")
    return number


_DIGITS = re.compile(r"-?[0-9]{1,19}")


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    return None


def parse_token_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise BadRequest(f"a token id is a positive whole number, not {text!r}")
    return int(text)


def parse_filter_query(query: Mapping[str, str]) -> FilterQuery:
    raw = query.get("notValidAfter")
    if raw is None:
        raise BadRequest("notValidAfter is required: a time in milliseconds, or -1 for all")
    not_valid_after = _query_int("notValidAfter", raw, minimum=-1)
    page = _query_int("page", query.get("page", "0"), minimum=0, maximum=MAX_PAGE)
    limit = _query_int("limit", query.get("limit", str(MAX_LIMIT)), minimum=1)
    return FilterQuery(
        not_valid_after,
        page,
        min(limit, MAX_LIMIT),
        user_key=_query_text(query, "userKey", MAX_USER_KEY),
        description=_query_text(query, "description", MAX_USER_KEY),
    )


def _query_text(query: Mapping[str, str], name: str, max_length: int) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.strip() or len(value) > max_length or "\x00" in value:
        raise BadRequest(f"{name} must be non-empty text of at most {max_length} characters")
    return value


@dataclass(frozen=True)
class AuditFilter:
    query: AuditQuery
    page: int
    limit: int


def parse_audit_query(query: Mapping[str, str]) -> AuditFilter:
    """``userKey`` (acted or owned), ``since`` (ms, inclusive), ``page`` and ``limit``."""
    user_key = query.get("userKey")
    if user_key is not None and not user_key.strip():
        raise BadRequest("userKey must not be empty when given")
    since = query.get("since")
    page = _query_int("page", query.get("page", "0"), minimum=0, maximum=MAX_PAGE)
    limit = _query_int("limit", query.get("limit", str(MAX_LIMIT)), minimum=1)
    return AuditFilter(
        AuditQuery(
            user_key=user_key,
            since=None if since is None else _query_int("since", since, minimum=0),
        ),
        page,
        min(limit, MAX_LIMIT),
    )


EXPANSIONS = ("lastAccessedFrom",)


def wants_origin(query: Mapping[str, str]) -> bool:
    """Whether ``expand`` asks for ``lastAccessedFrom``; any other expansion is refused."""
    raw = query.get("expand")
    if raw is None:
        return False
    asked = {item.strip() for item in raw.split(",") if item.strip()}
    unknown = sorted(asked - set(EXPANSIONS))
    if unknown:
        raise BadRequest(
            f"expand accepts {', '.join(EXPANSIONS)}, not {', '.join(map(repr, unknown))}"
        )
    return "lastAccessedFrom" in asked


def _query_int(name: str, raw: str, *, minimum: int, maximum: int = MAX_ID) -> int:
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise BadRequest(
            f"{name} must be a whole number between {minimum} and {maximum}, not {raw!r}"
        )
    return int(raw)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


# Output shapes, as in the seed ---------------------------------------------
