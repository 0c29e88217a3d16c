"""The rule each configuration key's value must keep, one pure function per kind of value.

``config/model.py`` names a key's rule beside its default, in the field's
metadata (``checked``); ``config/loading.py`` applies it (``rule_of``) once the
value has the right type, and checks the rules between keys itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import Field
from typing import Any
from urllib.parse import urlsplit

from ..networks import parse_network

# A key's rule: None if the value is good, else what is wrong with it.
Check = Callable[[Any], str | None]


def checked(fn: Check) -> dict[str, Check]:
    """A field's metadata naming its rule (``field(default=..., metadata=checked(positive))``)."""
    return {"check": fn}


def rule_of(fld: Field[Any]) -> Check | None:
    """The rule ``checked`` gave a field, if any."""
    rule: Check | None = fld.metadata.get("check")
    return rule


def positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def not_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def a_port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number between 0 and 65535"


def an_http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host name"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def optional_http_url(value: str) -> str | None:
    return None if value == "" else an_http_url(value)


_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def a_header_name(value: str) -> str | None:
    return None if _TOKEN_CHARS.match(value) else "must be a valid HTTP header name"


def optional_header_name(value: str) -> str | None:
    return None if value == "" else a_header_name(value)


def a_store_url(value: str) -> str | None:
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return None
    if value.startswith(("postgresql://", "postgres://")):
        return None
    return (
        "must be sqlite:////ABSOLUTE/PATH, sqlite:///RELATIVE/PATH (to the config file's "
        "folder) or postgresql://user:pass@host:port/db"
    )


def ip_networks(value: tuple[str, ...]) -> str | None:
    bad = []
    for item in value:
        try:
            parse_network(item)
        except ValueError:
            bad.append(item)
    return f"not IP networks: {', '.join(bad)}" if bad else None


def not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def distinct_positive_days(value: tuple[int, ...]) -> str | None:
    if any(day <= 0 for day in value):
        return "every day count must be greater than 0"
    return None if len(set(value)) == len(value) else "must not repeat a day count"


_PAGES_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def a_pages_path(value: str) -> str | None:
    if not _PAGES_PATH.match(value):
        return "must be a path like /apitokens: segments of letters, digits, . _ ~ -"
    if value.lower().startswith(("/rest/", "/__apitokenproxy", "/plugins/", "/secure/")):
        return "must not be under a path Jira, Confluence or the proxy already uses"
    return None


def a_log_level(value: str) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    return None if value.upper() in levels else f"must be one of {', '.join(levels)}"
