"""The data path's authentication decision: what to do with a request's credentials.

``classify`` is pure and decides from the Authorization header alone:

- no credentials: forwarded as they are (the upstream decides);
- a token, as ``Basic user:TOKEN``, ``Bearer TOKEN`` or ``Basic TOKEN:`` (the
  token as user name, as tools with one "API key" field send it): checked here;
- a password in Basic: forwarded unchanged (an ``Admission`` marked ``password``), or refused when
  ``auth.allow_password_basic_auth`` is false;
- anything else (Jira's own Bearer personal access tokens, OAuth, Kerberos):
  not ours, forwarded unchanged;
- a malformed or repeated Authorization header: refused, because the proxy
  and the upstream might read it differently.

A password in the query (Seraph's ``os_password``, ``credentials.password_in_query``)
is a password login too, whatever the header says: refused when passwords are, and
subject to ``auth.allowed_networks``.

``Gate.admit`` then checks a token, applies its policy (``grant.enforce``:
scope and allowed networks, the same rule for both lanes) and says whom to
inject and which headers to add to the answer (the token's expiry).
Tokens and passwords are refused (403) from a client address outside
``auth.allowed_networks`` when that list is set (``networks.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import Unauthorized
from ..networks import inside
from .credentials import (
    BasicCredentials,
    TokenAttempt,
    password_in_query,
    read_credentials,
    token_in,
)
from .grant import Grant, enforce
from .networks import AllowedNetworks
from .verifier import TokenVerifier


@dataclass(frozen=True)
class Admission:
    """How to forward an admitted request, and what the access log says of it."""

    user_name: str | None  # the token owner to inject as the trusted user, if any
    strip_authorization: bool
    # Added to the upstream's answer: the token's expiry (``grant.EXPIRY_HEADER``).
    response_headers: tuple[tuple[str, str], ...] = ()
    # A Basic password forwarded as it is: subject to auth.allowed_networks.
    password: bool = False
    # How the caller authenticated (the access log's ``auth``): token, password
    # (for the upstream to check), anonymous, or other (a scheme the upstream judges).
    outcome: str = "anonymous"
    claimed_user: str | None = None  # the Basic user name sent with a password
    token_id: int | None = None
    # Authenticated by the proxy with a token: the upstream's answer then loses
    # its Set-Cookie (``proxy/headers.for_client``), so no session outlives the token.
    token: bool = False


AS_IS = Admission(user_name=None, strip_authorization=False)
OTHER_SCHEME = Admission(user_name=None, strip_authorization=False, outcome="other")

PASSWORDS_DISABLED = (
    "password login is disabled for REST calls: create an API token with "
    "POST /rest/de.resolution.apitokenauth/latest/user/token and use it instead of the password"
)


def classify(authorization: Sequence[str], *, allow_password: bool) -> TokenAttempt | Admission:
    credentials = read_credentials(authorization)
    attempt = token_in(credentials)
    if attempt is not None:
        return attempt
    if isinstance(credentials, BasicCredentials):
        if not allow_password:
            raise Unauthorized(PASSWORDS_DISABLED, reason="password_disabled")
        return Admission(
            None, False, password=True, outcome="password", claimed_user=credentials.username
        )
    # No credentials, or a scheme that is not ours (Jira's own personal access
    # tokens, OAuth, Kerberos): the upstream's business.
    return AS_IS if credentials is None else OTHER_SCHEME


Decision = TokenAttempt | Admission

# What the access log and the metrics say of a request's authentication.
Account = tuple[str | None, str | None, str | None, int | None]  # auth, reason, user, token id
UNDECIDED: Account = (None, None, None, None)


def account(decision: Decision | None, admission: Admission | None, refused: str | None) -> Account:
    """How a request authenticated, for both lanes' logs: ``(auth, reason, user, token_id)``.

    ``refused`` is the refusal's reason (``errors.REASONS``); the user name and
    token id of a refused token are those it claimed, so an operator can tell
    whose job fails and with which token.
    """
    if refused is not None:
        if isinstance(decision, TokenAttempt):
            return "refused", refused, decision.username, decision.token_id
        return "refused", refused, None, None
    if admission is None:
        return UNDECIDED
    return (
        admission.outcome,
        None,
        admission.user_name or admission.claimed_user,
        admission.token_id,
    )


class Gate:
    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        allow_password: bool,
        networks: AllowedNetworks | None = None,
    ) -> None:
        self._verifier = verifier
        self._allow_password = allow_password
        self._networks = networks or AllowedNetworks()
        # The admission of each cached grant, made once: a grant is immutable and
        # lives as long as its cache entry, so its admission can be shared by
        # every request it admits. Keyed by identity, checked by identity.
        self._admissions: dict[int, tuple[Grant, Admission]] = {}

    @property
    def judges_query(self) -> bool:
        """Whether a request's query can change its decision: a password in it
        (``os_password``) is refused, or held to ``auth.allowed_networks``."""
        return not self._allow_password or self._networks.restricted

    def decide(self, authorization: Sequence[str]) -> Decision:
        """What the credentials call for, from the header alone (``classify``).

        Pure: a connection that sends the same header again may reuse the
        answer; the token it names is still checked on every request. A token's
        cache key is made here, once for the header rather than once a request.
        """
        decision = classify(authorization, allow_password=self._allow_password)
        if isinstance(decision, TokenAttempt):
            token = decision.token
            return TokenAttempt(token, decision.username, self._verifier.digest(token))
        return decision

    def _check_network(self, decision: Decision, client: str, target: str) -> None:
        if password_in_query(target):
            if not self._allow_password:
                raise Unauthorized(PASSWORDS_DISABLED, reason="password_disabled")
            self._networks.check(client)
        if self._networks.restricted and (not isinstance(decision, Admission) or decision.password):
            self._networks.check(client)

    def admit_now(
        self,
        decision: Decision,
        method: str,
        client: str,
        *,
        upgrade: bool = False,
        target: str = "",
    ) -> Admission | None:
        """Admit without awaiting if possible (no token, or one verified and cached,
        so a revoked or expired token is refused here too); None when ``admit``
        must be awaited. Raises like ``admit`` for a token whose policy refuses
        the request. ``client`` is the caller's address (also the token's
        ``lastAccessedFrom``)."""
        self._check_network(decision, client, target)
        if isinstance(decision, Admission):
            return decision
        grant = self._verifier.verify_cached(
            decision.token, decision.username, client, decision.digest
        )
        if grant is None:
            return None
        if grant.restricted:
            if grant.networks and not inside(client, grant.networks):
                return None  # admit refuses it, at a bad token's cost (the verifier's)
            enforce(grant, method, client, upgrade=upgrade)
        return self._admitted(grant)

    async def admit(
        self,
        decision: Decision,
        method: str,
        client: str,
        *,
        upgrade: bool = False,
        target: str = "",
    ) -> Admission:
        """Admit a request or raise Unauthorized/Forbidden/TooManyRequests/Busy/StoreUnavailable.

        ``method`` and ``upgrade`` (a WebSocket or other protocol switch) are
        what the token's scope is checked against; ``client`` is the address
        its allowed networks and ``auth.allowed_networks`` are; ``target``
        (path and query) is where a password may ride in the query."""
        self._check_network(decision, client, target)
        if isinstance(decision, Admission):
            return decision
        grant = await self._verifier.verify(
            decision.token, decision.username, client=client, digest=decision.digest
        )
        if grant.restricted:
            enforce(grant, method, client, upgrade=upgrade)
        return self._admitted(grant)

    def _admitted(self, grant: Grant) -> Admission:
        found = self._admissions.get(id(grant))
        if found is not None and found[0] is grant:
            return found[1]
        admission = admitted(grant)
        if len(self._admissions) >= ADMISSIONS_MAX:
            self._admissions.clear()  # grants replaced since: forgotten together
        self._admissions[id(grant)] = (grant, admission)
        return admission


ADMISSIONS_MAX = 4096


def admitted(grant: Grant) -> Admission:
    """How a request with a token of this grant is forwarded."""
    record = grant.record
    return Admission(
        record.owner_name,
        True,
        response_headers=grant.response_headers,
        outcome="token",
        token_id=record.id,
        token=True,
    )
