"""The token format: round trips, and every damaged token is caught by its shape or checksum."""

from __future__ import annotations

import math
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apitokenproxy.auth.tokens import (
    PREFIX,
    SECRET_LENGTH,
    format_token,
    looks_like_token,
    new_secret,
    parse_token,
)
from apitokenproxy.errors import MalformedToken

ids = st.integers(min_value=1, max_value=10**18 - 1)
secrets_ = st.text(
    alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    min_size=SECRET_LENGTH,
    max_size=SECRET_LENGTH,
)


@given(ids, secrets_)
def test_round_trip(token_id: int, secret: str) -> None:
    token = format_token(token_id, secret)
    assert looks_like_token(token)
    parsed = parse_token(token)
    assert (parsed.token_id, parsed.secret) == (token_id, secret)


@given(ids, secrets_, st.data())
def test_any_single_character_change_is_rejected(
    token_id: int, secret: str, data: st.DataObject
) -> None:
    token = format_token(token_id, secret)
    position = data.draw(st.integers(min_value=len(PREFIX), max_value=len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[position]))
    damaged = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(MalformedToken):
        parse_token(damaged)


@given(st.text(max_size=80))
def test_random_strings_never_parse(text: str) -> None:
    with pytest.raises(MalformedToken):
        parse_token(text)


@given(ids, secrets_)
def test_truncated_or_extended_tokens_are_rejected(token_id: int, secret: str) -> None:
    token = format_token(token_id, secret)
    for damaged in (token[:-1], token + "A", token[1:], " " + token):
        with pytest.raises(MalformedToken):
            parse_token(damaged)


def test_new_secrets_are_long_random_and_distinct() -> None:
    made = {new_secret() for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"[0-9A-Za-z]{32}", s) for s in made)
    # 32 base62 characters carry log2(62) * 32 ≈ 190 bits, above the 160 required,
    # provided every character is used: 32 000 draws must show all 62.
    assert set("".join(made)) == set(string.digits + string.ascii_letters)
    assert SECRET_LENGTH * math.log2(62) > 160


def test_the_secret_is_hidden_from_repr() -> None:
    token = format_token(7, new_secret())
    parsed = parse_token(token)
    assert parsed.secret not in repr(parsed)


@pytest.mark.parametrize(
    "text",
    [
        "atpx_0_" + "A" * 38,
        "atpx_01_" + "A" * 38,
        "ATPX_1_" + "A" * 38,
        "atpx_1_" + "A" * 37,
        "atpx__" + "A" * 38,
    ],
)
def test_shapes_that_are_not_tokens(text: str) -> None:
    with pytest.raises(MalformedToken, match="format"):
        parse_token(text)
