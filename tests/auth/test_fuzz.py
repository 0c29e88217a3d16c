"""Property-based fuzzing of the credential and token parsers.

Whatever arrives in an Authorization header, the parsers either return a
result or raise their own documented error, never anything else. The
``@example`` rows are inputs that once mattered (found while building the
attack suite) and stay as regression seeds.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apitokenproxy.auth.credentials import (
    BasicCredentials,
    BearerCredentials,
    OtherCredentials,
    parse_authorization,
    token_in,
)
from apitokenproxy.auth.gate import Admission, classify
from apitokenproxy.auth.tokens import MAX_ID_DIGITS, PREFIX, format_token, parse_token
from apitokenproxy.errors import MalformedCredentials, MalformedToken, Unauthorized

TOKEN = format_token(7, "A" * 32)
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Header values as a server hands them over: any latin-1 text.
header_values = st.text(alphabet=st.characters(max_codepoint=255), max_size=300)
schemes = st.sampled_from(["Basic ", "basic ", "Bearer ", "bearer\t", "BASIC  ", "Negotiate ", ""])


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@settings(max_examples=500)
@given(st.lists(st.builds(str.__add__, schemes, header_values), max_size=3))
@example([f"Bearer\t{TOKEN}"])  # a tab once sent the token upstream as an unknown scheme
@example([f"Basic {b64(TOKEN.encode() + b':')}"])  # the token as the user name
@example(["Basic " + b64(b"\xff\xfe:\x00")])  # not UTF-8
@example(["Basic ="])  # padding only
@example(["Basic " + b64(b":" + TOKEN.encode())])  # empty user name
@example(["Basic " + b64(b"alice: " + TOKEN.encode())])  # once forwarded as a password
@example(["Bearer " + TOKEN + "\x0b"])  # vertical tab after the token
@example([f"Bearer {TOKEN}", f"Bearer {TOKEN}"])  # the same header twice
def test_authorization_parsing_never_fails_unexpectedly(values: list[str]) -> None:
    try:
        parsed = parse_authorization(values)
    except MalformedCredentials:
        return
    assert parsed is None or isinstance(
        parsed, BasicCredentials | BearerCredentials | OtherCredentials
    )
    attempt = token_in(parsed)
    if attempt is not None:
        assert attempt.token.startswith(PREFIX)
    # Whatever carries the prefix and was read is the one token the attempt checks.
    match parsed:
        case BasicCredentials(username=username, password=password):
            fields: tuple[str, ...] = (username, password)
        case BearerCredentials(token=token):
            fields = (token,)
        case _:
            fields = ()
    bearing = [f for f in fields if PREFIX in f.lower()]
    assert bearing == ([] if attempt is None else [attempt.token])
    try:
        decision = classify(values, allow_password=False)
    except Unauthorized:
        return
    # With passwords refused, nothing carrying a Basic password gets through as is.
    if isinstance(decision, Admission):
        assert not isinstance(parsed, BasicCredentials)


# Around a token: what a pasted token, a config template or a shell quote adds.
wrappers = st.text(alphabet=" \t\"'<>()[]{};,=:xX-", max_size=3)


@settings(max_examples=300)
@given(
    wrappers,
    wrappers,
    st.sampled_from(["bearer", "password", "user", "both"]),
    st.booleans(),
)
@example('"', '"', "bearer", False)
@example(" ", "", "password", False)
@example("", "", "both", False)  # two tokens
@example("", "", "password", True)  # the prefix in upper case
@example("", ":", "user", False)  # Basic TOKEN::pw is the token as the user name
def test_a_wrapped_token_is_refused_never_read_as_something_else(
    before: str, after: str, where: str, upper: bool
) -> None:
    token = TOKEN.upper() if upper else TOKEN
    wrapped = before + token + after
    value = {
        "bearer": f"Bearer {wrapped}",
        "password": "Basic " + b64(f"alice:{wrapped}".encode()),
        "user": "Basic " + b64(f"{wrapped}:pw".encode()),
        "both": "Basic " + b64(f"{wrapped}:{wrapped}".encode()),
    }[where]
    try:
        attempt = token_in(parse_authorization([value]))
    except MalformedCredentials:
        return
    # Read at all only as a token, never as a password or a foreign scheme's credential:
    # the value as sent (HTTP's own spaces around a Bearer value are not part of it),
    # which the verifier refuses unless it is exactly the token.
    assert attempt is not None, value
    if where == "user":
        # The first colon ends a Basic user name (RFC 7617): a wrapper's colon is the
        # separator, and what the token shares its field with is what was sent.
        user, _, password = f"{wrapped}:pw".partition(":")
        expected = user if PREFIX in user.lower() else password
    else:
        expected = wrapped.strip(" \t") if where == "bearer" else wrapped
    assert attempt.token == expected, value
    assert where != "both"
    if attempt.token != TOKEN:
        with pytest.raises(MalformedToken):
            parse_token(attempt.token)


@settings(max_examples=500)
@given(st.text(max_size=120))
@example("atpx_1_" + "A" * 38)  # the right shape, the wrong checksum
@example("atpx_٣_" + "A" * 38)  # a non-ASCII digit in the id
@example("atpx_0_" + "A" * 38)  # id 0 does not exist
@example("atpx_" + "9" * 19 + "_" + "A" * 38)  # an id beyond 64 bits
@example(TOKEN + "\n")
@example(TOKEN)  # a valid token: the round trip below must hold for it
def test_token_parsing_never_fails_unexpectedly(text: str) -> None:
    try:
        parsed = parse_token(text)
    except MalformedToken:
        return
    assert format_token(parsed.token_id, parsed.secret) == text
    assert 0 < parsed.token_id < 2**63


@settings(max_examples=300)
@given(
    st.integers(min_value=1, max_value=10**MAX_ID_DIGITS - 1),
    st.text(alphabet=ALPHABET, min_size=32, max_size=32),
)
def test_every_token_made_parses_back_to_its_parts(token_id: int, secret: str) -> None:
    # Random text almost never is a valid token, so the round trip gets its own inputs.
    parsed = parse_token(format_token(token_id, secret))
    assert (parsed.token_id, parsed.secret) == (token_id, secret)
