"""Reading the ``Authorization`` header, without I/O.

``parse_authorization`` answers None when there is nothing to read (no header)
and raises ``MalformedCredentials`` when the header is ours to read but broken.
Schemes the proxy does not handle (OAuth 1, Negotiate, ...) come back as
``OtherCredentials`` so the data path can forward them untouched.

Anything carrying the token prefix is ours (``misplaced_token``): a token is
read only when it stands alone in a token position (the Bearer value, the
Basic user name or password); the prefix anywhere else (quoted, in angle
brackets, padded, glued to other text, in another case, twice, under another
scheme) is a broken header, refused, never forwarded with the token in it.

``password_in_query`` finds the other place a password travels: Seraph (Jira's
and Confluence's authentication) logs a request in from its ``os_username`` and
``os_password`` parameters, so a query with ``os_password`` is a password login.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from ..errors import MalformedCredentials, MalformedToken, Unauthorized
from .tokens import PREFIX, looks_like_token, parse_token

# Far above any real user name plus token, far below what could hurt.
MAX_HEADER_LENGTH = 4096
_SEPARATOR = re.compile(r"[ \t]+")
# A credential that is one token and nothing else: the prefix, then the token's characters.
_ONE_TOKEN = re.compile(rf"{PREFIX}[0-9A-Za-z_]*")
_PREFIX_LOWER = PREFIX.lower()

MISPLACED = (
    "send the token alone, as Bearer TOKEN or Basic user:TOKEN, "
    "with nothing around it (no quotes, brackets, spaces or other text)"
)


@dataclass(frozen=True, repr=False)
class BasicCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"BasicCredentials(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, repr=False)
class BearerCredentials:
    token: str

    def __repr__(self) -> str:
        return "BearerCredentials(token=<hidden>)"


@dataclass(frozen=True)
class OtherCredentials:
    scheme: str


Credentials = BasicCredentials | BearerCredentials | OtherCredentials


def parse_authorization(values: Sequence[str]) -> Credentials | None:
    """Parse every Authorization header value of a request."""
    if not values:
        return None
    if len(values) > 1:
        raise MalformedCredentials("send exactly one Authorization header")
    value = values[0]
    if len(value) > MAX_HEADER_LENGTH:
        raise MalformedCredentials("the Authorization header is too long")
    # Any run of spaces or tabs separates the scheme, so "Bearer\tTOKEN" is
    # read as the token it is, never passed on as some unknown scheme.
    scheme, _, rest = _SEPARATOR.sub(" ", value.strip(" \t")).partition(" ")
    match scheme.lower():
        case "basic":
            credentials = _parse_basic(rest)
            positions: tuple[str, ...] = (credentials.username, credentials.password)
        case "bearer":
            if not rest or any(c in rest for c in " \t,"):
                raise MalformedCredentials("Bearer needs exactly one token after the scheme")
            return _alone(BearerCredentials(rest), (rest,))
        case "":
            raise MalformedCredentials("the Authorization header is empty")
        case _:
            # One of our tokens under no scheme ("TOKEN", "Token TOKEN"): refused
            # here, never passed on to end up in the upstream's logs.
            return _alone(OtherCredentials(scheme), (), value)
    return _alone(credentials, positions)


def _alone(
    credentials: Credentials, positions: tuple[str, ...], elsewhere: str = ""
) -> Credentials:
    if misplaced_token(positions, elsewhere):
        raise MalformedCredentials(MISPLACED)
    return credentials


def bears_prefix(value: str) -> bool:
    """Whether ``value`` carries the token prefix anywhere, in any case."""
    return "_" in value and _PREFIX_LOWER in value.lower()


def misplaced_token(positions: Sequence[str], elsewhere: str = "") -> bool:
    """Whether the token prefix (in any case) appears other than as exactly one
    token standing alone in one of ``positions``.

    ``positions`` are a credential's values a token may be: the Bearer value,
    or the Basic user name and password. ``elsewhere`` is text that never
    holds a token (the whole value of a scheme the proxy does not read).
    True means the credentials are ours but broken: a token quoted, in
    brackets, padded with spaces or tabs, glued to other text, spelt in
    another case, or two of them; they must be refused, never forwarded. A
    password that merely contains the prefix is refused too (the safe side).
    Pure, and costs a substring test for credentials without an underscore.
    """
    if elsewhere and bears_prefix(elsewhere):
        return True
    tokens = 0
    for value in positions:
        if "_" not in value:
            continue
        if _ONE_TOKEN.fullmatch(value) is not None:
            tokens += 1  # one token alone in this position
        elif _PREFIX_LOWER in value.lower():
            return True
    return tokens > 1


def _parse_basic(encoded: str) -> BasicCredentials:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCredentials("Basic credentials are not valid base64") from exc
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedCredentials("Basic credentials are not UTF-8") from exc
    username, colon, password = decoded.partition(":")
    if not colon:
        raise MalformedCredentials("Basic credentials need the form user:password")
    if not username:
        raise MalformedCredentials("Basic credentials have an empty user name")
    return BasicCredentials(username, password)


@dataclass(frozen=True, repr=False)
class TokenAttempt:
    """Credentials that carry one of our tokens."""

    token: str
    username: str | None  # from Basic user:TOKEN; must then match the owner
    # The verifier's keyed digest of the token, when the gate has made it
    # (Gate.decide): a connection that repeats its header reuses it.
    digest: bytes = field(default=b"", compare=False)

    def __repr__(self) -> str:
        return f"TokenAttempt(username={self.username!r}, token=<hidden>)"

    @property
    def token_id(self) -> int | None:
        """The id the token names, if it is well formed (for the log: never secret)."""
        try:
            return parse_token(self.token).token_id
        except MalformedToken:
            return None


def token_in(credentials: Credentials | None) -> TokenAttempt | None:
    """The token these credentials carry, if any: ``Basic user:TOKEN``,
    ``Bearer TOKEN``, or ``Basic TOKEN:`` (the token as user name, as tools
    with a single "API key" field send it)."""
    match credentials:
        case BasicCredentials(username=username, password=password) if looks_like_token(password):
            return TokenAttempt(password, username)
        case BasicCredentials(username=username) if looks_like_token(username):
            return TokenAttempt(username, None)
        case BearerCredentials(token=token) if looks_like_token(token):
            return TokenAttempt(token, None)
        case _:
            return None


def read_credentials(authorization: Sequence[str]) -> Credentials | None:
    """The request's credentials; a header that is ours to read but broken is a 401."""
    try:
        return parse_authorization(authorization)
    except MalformedCredentials as exc:
        raise Unauthorized(str(exc)) from exc


# Seraph's URL login parameter (com.atlassian.seraph.auth.DefaultAuthenticator).
PASSWORD_PARAMETER = "os_password"  # noqa: S105 -- a parameter name, not a secret


def password_in_query(target: str) -> bool:
    """Whether the request-target's query names ``os_password``, as Tomcat reads
    parameter names: split on ``&``, percent- and ``+``-decoded, case-sensitive."""
    # Checked on every request: most targets have neither the name nor an escape.
    if PASSWORD_PARAMETER not in target and "%" not in target:
        return False
    query = target.partition("?")[2]
    for parameter in query.split("&"):
        name = parameter.partition("=")[0]
        if name == PASSWORD_PARAMETER or ("%" in name and unquote_plus(name) == PASSWORD_PARAMETER):
            return True
    return False
