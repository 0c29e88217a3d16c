"""KnownSecrets: which secrets earlier argon2 checks settled as wrong, without an event loop."""

from __future__ import annotations

import pytest

from apitokenproxy.auth.known import KnownSecrets, Refused, Verified, settled_wrong
from apitokenproxy.store import TokenRecord

from ..conftest import START_MS

D_GOOD, D_OTHER = b"g" * 32, b"o" * 32


def row(hashed: str = "H", previous: str | None = None, until: int | None = None) -> TokenRecord:
    return TokenRecord(
        7, "key-alice", "alice", "t", hashed, START_MS, None, 0, "key-alice",
        previous_hash=previous, previous_until=until,
    )  # fmt: skip


GRACE = {"previous": "P", "until": START_MS + 1000}
OVER = {"previous": "P", "until": START_MS}


@pytest.mark.parametrize(
    ("record", "verified", "refused", "wrong"),
    [
        # Nothing known: only argon2 can tell.
        (row(), None, None, False),
        # The row's one secret is verified here: any other is wrong...
        (row(), ("H", D_GOOD), None, True),
        (row(**OVER), ("H", D_GOOD), None, True),  # (a grace that has ended changes nothing)
        # ...but not the verified one itself, nor when the hash is another (rotated,
        # restored, copied since), nor while a replaced secret is in its grace.
        (row(), ("H", D_OTHER), None, False),
        (row("H2"), ("H", D_GOOD), None, False),
        (row(**GRACE), ("H", D_GOOD), None, False),
        # Refused before against the same hashes: still wrong.
        (row(), None, ("H", None), True),
        (row(**GRACE), None, ("H", "P"), True),
        (row(**OVER), None, ("H", "P"), True),  # tried against more than is left
        # Refused against other hashes, or without the replaced one now in grace.
        (row("H2"), None, ("H", None), False),
        (row(**GRACE), None, ("H", None), False),
        (row("H", "P2", START_MS + 1000), None, ("H", "P"), False),
    ],
)
def test_settled_wrong(
    record: TokenRecord, verified: Verified | None, refused: Refused | None, wrong: bool
) -> None:
    assert settled_wrong(record, D_OTHER, START_MS, verified, refused) is wrong


def test_what_is_known_applies_to_its_own_row_and_digest_only() -> None:
    known = KnownSecrets(size=10, ttl_seconds=60)
    known.verified(row(), D_GOOD)
    assert known.wrong(row(), D_OTHER, START_MS)
    assert not known.wrong(row(), D_GOOD, START_MS)
    other_row = TokenRecord(8, "k", "bob", "t", "H", START_MS, None, 0, "k")
    assert not known.wrong(other_row, D_OTHER, START_MS)
    known.refused(row("H9"), D_OTHER, START_MS)
    assert known.wrong(row("H9"), D_OTHER, START_MS)
    # The same digest refused for token 7 says nothing of token 8's row.
    assert not known.wrong(TokenRecord(8, "k", "bob", "t", "H9", START_MS, None, 0, "k"),
                           D_OTHER, START_MS)  # fmt: skip


def test_forget_and_clear() -> None:
    known = KnownSecrets(size=10, ttl_seconds=60)
    known.verified(row(), D_GOOD)
    known.refused(row("H2"), D_OTHER, START_MS)
    known.forget([8])
    assert len(known) == 2
    known.forget([7])
    assert len(known) == 0
    assert not known.wrong(row(), D_OTHER, START_MS)
    known.verified(row(), D_GOOD)
    known.clear()
    assert len(known) == 0


def test_memory_is_bounded() -> None:
    known = KnownSecrets(size=100, ttl_seconds=60)
    for i in range(10_000):
        record = TokenRecord(i + 1, "k", "bob", "t", f"H{i}", START_MS, None, 0, "k")
        known.verified(record, i.to_bytes(32, "big"))
        known.refused(record, (i + 1).to_bytes(32, "little"), START_MS)
    assert len(known) == 200
