"""The API token format: making tokens and reading them back, without I/O.

A token looks like ``atpx_42_<32 base62 secret><6 base62 checksum>``:

- ``atpx_`` is a fixed prefix, so secret scanners (and people) recognise a
  leaked token at a glance;
- ``42`` is the token's id in the store, so checking a token reads one row by
  primary key, never scans;
- the secret is 32 characters of base62 from ``secrets`` (about 190 bits);
- the checksum is CRC-32 over everything before it, so a mistyped or random
  string is rejected before the store is asked.

Only an argon2id hash of the secret is stored (see ``hashing.py``); the
plaintext exists once, in the answer to the create request.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

from ..errors import MalformedToken

PREFIX = "atpx_"
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
MAX_ID_DIGITS = 18  # fits a signed 64-bit column

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHAPE = re.compile(
    rf"{PREFIX}([1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}})_"
    rf"([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


@dataclass(frozen=True, repr=False)
class ParsedToken:
    """A token whose shape and checksum are right; whether it exists is the store's business."""

    token_id: int
    secret: str

    def __repr__(self) -> str:
        # Tokens end up in tracebacks and debug logs; the secret must not.
        return f"ParsedToken(token_id={self.token_id}, secret=<hidden>)"


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def format_token(token_id: int, secret: str) -> str:
    body = f"{PREFIX}{token_id}_{secret}"
    return body + _checksum(body)


def looks_like_token(value: str) -> bool:
    """True for anything that claims to be one of our tokens, valid or not.

    Used to tell a token from a password in ``Basic user:secret``: a password
    that happens to start with the prefix is treated as a (bad) token, which
    is the safe side: it is refused, never sent upstream as a password.
    """
    return value.startswith(PREFIX)


def parse_token(value: str) -> ParsedToken:
    """Check shape and checksum; raise MalformedToken with a reason otherwise."""
    match = _SHAPE.fullmatch(value)
    if match is None:
        raise MalformedToken("the token is not in the expected format")
    body_end = len(value) - CHECKSUM_LENGTH
    if not secrets.compare_digest(_checksum(value[:body_end]), match.group(3)):
        raise MalformedToken(
            "the token's checksum does not match; it was mistyped or cut short", checksum=True
        )
    return ParsedToken(int(match.group(1)), match.group(2))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii"))
    chars = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))
