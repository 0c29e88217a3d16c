"""The token-management REST API, path for path and field for field the seed's.

Base path: ``{context}/rest/de.resolution.apitokenauth/latest``. Handlers only
translate HTTP to ``TokenService`` calls and back; input checks are pure
functions (``parse_create``, ``parse_description``, ``parse_token_id``,
``parse_filter_query``) raising ``BadRequest`` with a message that says what
was wrong.

Accepted leniencies, as the seed's Jackson-based API has them: unknown JSON
fields are ignored, and whole numbers may come as strings (``"12"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .authentication import Authenticator, Caller
from .errors import BadRequest
from .forwarding import client_of
from .paging import MAX_LIMIT, envelope, offset
from .service import CreateRequest, TokenService
from .store import TokenRecord

BASE_PATH = "/rest/de.resolution.apitokenauth/latest"
MAX_BODY_BYTES = 64 * 1024
MAX_MONTHS = 1200  # a century; beyond that dates stop meaning anything
MAX_ID = 2**63 - 1
MAX_PAGE = 2**31 - 1

SERVICE: web.AppKey[TokenService] = web.AppKey("service", TokenService)
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)
PUBLIC_URL: web.AppKey[str] = web.AppKey("public_url", str)
CONTEXT_PATH: web.AppKey[str] = web.AppKey("context_path", str)


@dataclass(frozen=True)
class FilterQuery:
    not_valid_after: int
    page: int
    limit: int


# Input checks, pure --------------------------------------------------------


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
    return CreateRequest(
        description=description,
        for_user_key=user_key,
        months=None if months is None else _months(months),
    )


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
    return FilterQuery(not_valid_after, page, min(limit, MAX_LIMIT))


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


def listed(record: TokenRecord) -> dict[str, Any]:
    return {
        "created": record.created,
        "description": record.description,
        "id": record.id,
        "lastAccessed": record.last_accessed,
        "validUntil": record.valid_until,
    }


def filtered(record: TokenRecord) -> dict[str, Any]:
    return {
        **listed(record),
        "tokenCreatedByUserKey": record.created_by_key,
        "tokenForUserKey": record.owner_key,
    }


def json_response(data: Any, status: int = 200) -> web.Response:
    # Sorted keys: the seed's examples list fields alphabetically.
    return web.Response(
        status=status, text=json.dumps(data, sort_keys=True), content_type="application/json"
    )


# Handlers ------------------------------------------------------------------


async def _caller(request: web.Request) -> Caller:
    return await request.app[AUTHENTICATOR].caller(
        request.headers.getall("Authorization", []), client_of(request).address
    )


async def _body(request: web.Request) -> dict[str, Any]:
    return parse_json_object(await request.read())


async def create_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    service = request.app[SERVICE]
    spec = parse_create(await _body(request), service.max_description_length)
    created = await service.create(caller, spec)
    return json_response({**filtered(created.record), "plainTextToken": created.plaintext})


async def rename_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    token_id = parse_token_id(request.match_info["id"])
    service = request.app[SERVICE]
    description = parse_description(await _body(request), service.max_description_length)
    return json_response(listed(await service.rename(caller, token_id, description)))


async def list_tokens(request: web.Request) -> web.Response:
    caller = await _caller(request)
    return json_response([listed(r) for r in await request.app[SERVICE].list_own(caller)])


async def delete_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    await request.app[SERVICE].delete(caller, parse_token_id(request.match_info["id"]))
    return web.Response(status=204)


async def delete_all_for(request: web.Request) -> web.Response:
    caller = await _caller(request)
    count = await request.app[SERVICE].delete_all_for(caller, request.match_info["userKey"])
    return json_response({"deletedTokens": count})


async def tokens_by_filter(request: web.Request) -> web.Response:
    caller = await _caller(request)
    query = parse_filter_query(request.query)
    page = await request.app[SERVICE].find_by_expiry(
        caller,
        None if query.not_valid_after == -1 else query.not_valid_after,
        offset(query.page, query.limit),
        query.limit,
    )
    base_url = request.app[PUBLIC_URL] or _request_base_url(request)
    return json_response(
        envelope(
            [filtered(r) for r in page.items],
            total=page.total,
            page=query.page,
            limit=query.limit,
            base_url=base_url,
            path=BASE_PATH + "/user/tokensByFilter",
            not_valid_after=query.not_valid_after,
        )
    )


def _request_base_url(request: web.Request) -> str:
    view = client_of(request)
    return f"{view.proto}://{view.host}{request.app[CONTEXT_PATH]}"


def add_routes(app: web.Application, context_path: str) -> None:
    """Register the management API under the upstream's context path."""
    base = context_path + BASE_PATH
    app.router.add_post(base + "/user/token", create_token)
    app.router.add_get(base + "/user/token", list_tokens)
    app.router.add_get(base + "/user/token/", list_tokens)
    app.router.add_patch(base + "/user/token/{id}", rename_token)
    app.router.add_delete(base + "/user/token/{id}", delete_token)
    app.router.add_delete(base + "/user/token/deleteAllFor/{userKey}", delete_all_for)
    app.router.add_get(base + "/user/tokensByFilter", tokens_by_filter)
