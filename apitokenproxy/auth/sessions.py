"""Session sign-in: a browser's upstream session cookie, vouched for by the upstream.

A token-API call with no ``Authorization`` header but with cookies is
identified by asking Jira or Confluence who the session belongs to
(``IdentityProvider.session_user``, which forwards only the ``Cookie``
header). The answer is cached briefly under a keyed digest of the cookie,
never the cookie itself, so logging out of the upstream ends access within
``auth.session_cache_seconds``. Anonymous answers are not cached: signing in
takes effect at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import Unauthorized
from .cache import KeyedDigest, TTLCache
from .identity import IdentityProvider, User

SIGNED_OUT = (
    "authentication required: the session cookie is not signed in to the site; "
    "sign in again, or use Basic user:password or a token"
)


class SessionSignIn:
    """Who a session cookie belongs to, as the upstream says, remembered briefly."""

    def __init__(
        self,
        identity: IdentityProvider,
        *,
        cache_seconds: float,
        cache_size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._identity = identity
        self._digest = KeyedDigest()
        self._users: TTLCache[bytes, User] = TTLCache(cache_size, cache_seconds, clock)

    async def user(self, cookie: str) -> User:
        """The signed-in user of ``cookie``; Unauthorized when the upstream knows none."""
        key = self._digest("session", cookie)
        user = self._users.get(key)
        if user is None:
            user = await self._identity.session_user(cookie)
            if user is None:
                raise Unauthorized(SIGNED_OUT)
            self._users.put(key, user)
        return user

    def __len__(self) -> int:
        return len(self._users)
