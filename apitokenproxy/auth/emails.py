"""Token owners' e-mail addresses, as the upstream reports them, for ``email:TOKEN``.

Scripts written for Jira Cloud send ``Basic email:TOKEN``. The proxy keeps
no addresses: it asks the upstream for the owner (by user key, as the owner,
through the trusted user header) and remembers the answer for
``auth.password_cache_seconds``, like a sysadmin answer. A name with ``@``
that is not the owner's name is compared with that address, ignoring case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..store import TokenRecord
from .cache import TTLCache

# The owner's address, or None when the upstream shows none.
Lookup = Callable[[TokenRecord], Awaitable[str | None]]


def could_be_email(username: str | None, owner_name: str) -> bool:
    """Whether a Basic user name that is not the owner's name may be the owner's e-mail."""
    return username is not None and "@" in username and username.casefold() != owner_name.casefold()


class OwnerEmails:
    def __init__(self, lookup: Lookup, *, ttl_seconds: float, size: int) -> None:
        self._lookup = lookup
        # Keyed by user key; "" stands for "the upstream shows no address".
        self._known: TTLCache[str, str] = TTLCache(size, ttl_seconds)

    def known(self, owner_key: str) -> str | None:
        """The address remembered for this owner ("" for none); None if not remembered."""
        return self._known.get(owner_key)

    async def of(self, record: TokenRecord) -> str:
        """The owner's address, casefolded ("" for none), asking the upstream if not known."""
        found = self._known.get(record.owner_key)
        if found is None:
            found = ((await self._lookup(record)) or "").casefold()
            self._known.put(record.owner_key, found)
        return found
