"""The data path's authentication decision: what to do with a request's credentials.

``classify`` is pure and decides from the Authorization header alone:

- no credentials: forwarded as they are (the upstream decides);
- a token, as ``Basic user:TOKEN``, ``Bearer TOKEN`` or ``Basic TOKEN:`` (the
  token as user name, as tools with one "API key" field send it): checked here;
- a password in Basic: forwarded unchanged, or refused when
  ``auth.allow_password_basic_auth`` is false;
- anything else (Jira's own Bearer personal access tokens, OAuth, Kerberos):
  not ours, forwarded unchanged;
- a malformed or repeated Authorization header: refused, because the proxy
  and the upstream might read it differently.

``Gate.admit`` then checks a token and says whom to inject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import Unauthorized
from .credentials import BasicCredentials, TokenAttempt, read_credentials, token_in
from .verifier import TokenVerifier


@dataclass(frozen=True)
class Admission:
    """How to forward an admitted request."""

    user_name: str | None  # the token owner to inject as the trusted user, if any
    strip_authorization: bool


AS_IS = Admission(user_name=None, strip_authorization=False)

PASSWORDS_DISABLED = (
    "password login is disabled for REST calls: create an API token with "
    "POST /rest/de.resolution.apitokenauth/latest/user/token and use it instead of the password"
)


def classify(authorization: Sequence[str], *, allow_password: bool) -> TokenAttempt | Admission:
    credentials = read_credentials(authorization)
    attempt = token_in(credentials)
    if attempt is not None:
        return attempt
    if isinstance(credentials, BasicCredentials) and not allow_password:
        raise Unauthorized(PASSWORDS_DISABLED)
    # No credentials, a password, or a scheme that is not ours (Jira's own
    # personal access tokens, OAuth, Kerberos): the upstream's business.
    return AS_IS


Decision = TokenAttempt | Admission


class Gate:
    def __init__(self, verifier: TokenVerifier, *, allow_password: bool) -> None:
        self._verifier = verifier
        self._allow_password = allow_password

    def decide(self, authorization: Sequence[str]) -> Decision:
        """What the credentials call for, from the header alone (``classify``).

        Pure: a connection that sends the same header again may reuse the
        answer; the token it names is still checked on every request.
        """
        return classify(authorization, allow_password=self._allow_password)

    def admit_now(self, decision: Decision, client: str) -> Admission | None:
        """Admit without awaiting if possible (no token, or one verified and cached,
        so a revoked or expired token is refused here too); None when ``admit``
        must be awaited. ``client`` is the caller's address."""
        if isinstance(decision, Admission):
            return decision
        record = self._verifier.verify_cached(decision.token, decision.username, client)
        if record is None:
            return None
        return Admission(user_name=record.owner_name, strip_authorization=True)

    async def admit(self, decision: Decision, client: str) -> Admission:
        """Admit a request or raise Unauthorized/TooManyRequests/Busy/StoreUnavailable."""
        if isinstance(decision, Admission):
            return decision
        record = await self._verifier.verify(decision.token, decision.username, client=client)
        return Admission(user_name=record.owner_name, strip_authorization=True)
