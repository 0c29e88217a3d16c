"""Exchanges as tests make them: every field given by name, the rest the defaults."""

from __future__ import annotations

from typing import Any

from apitokenproxy.ops.exchange import Exchange


def exchange(request_id: str = "r", **fields: Any) -> Exchange:
    made = Exchange(request_id)
    for name, value in fields.items():
        if not hasattr(made, name):
            raise TypeError(f"an Exchange has no field {name!r}")
        setattr(made, name, value)
    return made
