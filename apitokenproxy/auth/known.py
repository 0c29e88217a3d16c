"""What this worker's argon2 checks have settled, so that a bad token is not judged twice.

Argon2 is the one expensive step of a token check, and a flood of bad tokens
must not buy it at will. Two facts learnt from earlier checks settle many
secrets without it, and each stays true once learnt, because every hash in a
row is of a fresh random secret:

- *verified*: the secret behind keyed digest ``D`` matches the row's hash
  ``H`` (kept per token id: ``(H, D)``);
- *refused*: the secret behind ``D`` matched none of the hashes its row had
  (kept per digest: the row's hash, and the replaced one if its grace ran).

``settled_wrong`` applies them to a row just read from the store. A secret is
wrong without argon2 when it was refused before against the same hashes, or
when another secret is verified against the row's current hash and no
replaced secret is in its rotation grace: such a row accepts exactly one
secret, and the digests differ (compared in constant time). A secret that
could be the replaced one of a rotation still in its grace is never settled
by the first fact. The row is read fresh for every check, so after a
rotation, restore or copy anywhere the facts simply stop applying (the hash
differs): nothing needs invalidating for correctness. ``forget`` drops what
is known of revoked and changed tokens all the same, and memory is bounded:
at most ``size`` facts of each kind, each for ``ttl_seconds``.

What the timing of such a refusal tells: that this worker verified the token's
current secret within ``ttl_seconds`` (someone used it), or that the same bad
token was tried before; never anything about the secret presented.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from ..store import TokenRecord
from .cache import TTLCache

# The row's current hash and the secret's digest that matched it.
Verified = tuple[str, bytes]
# The hashes a refused secret was tried against: the row's, and the replaced one in grace.
Refused = tuple[str, str | None]


def replaced_in_grace(record: TokenRecord, now_ms: int) -> str | None:
    """The hash of the secret a rotation replaced, while its grace runs; else None."""
    if record.previous_until is not None and now_ms < record.previous_until:
        return record.previous_hash
    return None


def settled_wrong(
    record: TokenRecord,
    digest: bytes,
    now_ms: int,
    verified: Verified | None,
    refused: Refused | None,
) -> bool:
    """Whether the secret behind ``digest`` is certainly wrong for ``record`` now,
    by what earlier checks of this row (``verified``) and of this digest
    (``refused``) found; False when only argon2 can tell."""
    previous = replaced_in_grace(record, now_ms)
    # Refused against today's hash; a replaced secret still in grace must have
    # been tried too (a grace that ended since needs nothing more).
    if (
        refused is not None
        and refused[0] == record.secret_hash
        and (previous is None or refused[1] == previous)
    ):
        return True
    if verified is None or previous is not None:
        return False
    known_hash, known_digest = verified
    return known_hash == record.secret_hash and not hmac.compare_digest(known_digest, digest)


class KnownSecrets:
    """The verified and refused facts of this worker's checks, bounded in size and age."""

    def __init__(self, size: int, ttl_seconds: float) -> None:
        self._verified: TTLCache[int, Verified] = TTLCache(size, ttl_seconds)
        self._refused: TTLCache[bytes, tuple[int, Refused]] = TTLCache(size, ttl_seconds)

    def verified(self, record: TokenRecord, digest: bytes) -> None:
        """Argon2 found the secret behind ``digest`` to be ``record``'s current one."""
        self._verified.put(record.id, (record.secret_hash, digest))

    def refused(self, record: TokenRecord, digest: bytes, now_ms: int) -> None:
        """Argon2 found the secret behind ``digest`` to match none of ``record``'s hashes."""
        self._refused.put(
            digest, (record.id, (record.secret_hash, replaced_in_grace(record, now_ms)))
        )

    def wrong(self, record: TokenRecord, digest: bytes, now_ms: int) -> bool:
        """``settled_wrong`` with what is known of this row and this digest."""
        refused = self._refused.get(digest)
        return settled_wrong(
            record,
            digest,
            now_ms,
            self._verified.get(record.id),
            refused[1] if refused is not None and refused[0] == record.id else None,
        )

    def forget(self, token_ids: Iterable[int]) -> None:
        doomed = set(token_ids)
        for token_id in doomed:
            self._verified.discard(token_id)
        self._refused.discard_where(lambda fact: fact[0] in doomed)

    def clear(self) -> None:
        self._verified.clear()
        self._refused.clear()

    def __len__(self) -> int:
        return len(self._verified) + len(self._refused)
