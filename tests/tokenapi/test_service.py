"""The token rules that are pure: a rotation's grace, which scope changes widen, and
what a caller who logged in with a token may do to tokens."""

from __future__ import annotations

import pytest

from apitokenproxy.auth.grant import Grant, grant_for
from apitokenproxy.store import TokenRecord
from apitokenproxy.tokenapi.service import (
    HARMLESS,
    MANAGE_WITH,
    Act,
    grace_seconds,
    management_refusal,
    widens,
)

from ..conftest import START_MS


@pytest.mark.parametrize(
    ("requested", "maximum", "grace"),
    [
        (None, 86_400, 86_400),  # absent: one day
        (None, 600, 600),  # ...or the maximum, if less
        (None, 7 * 86_400, 86_400),
        (60, 86_400, 60),
        (7 * 86_400, 86_400, 86_400),  # capped
        (7 * 86_400, 7 * 86_400, 7 * 86_400),
        (0, 86_400, 0),
        (60, 0, 0),  # the admin allows none
    ],
)
def test_grace(requested: int | None, maximum: int, grace: int) -> None:
    assert grace_seconds(requested, maximum) == grace


@pytest.mark.parametrize(
    ("current", "requested", "widened"),
    [("write", "read", False), ("read", "read", False), ("write", "write", False),
     ("read", "write", True)],
)  # fmt: skip
def test_a_scope_only_narrows(current: str, requested: str, widened: bool) -> None:
    assert widens(current, requested) is widened


def grant(limits: str = "", *, rotated: bool = False) -> Grant:
    record = TokenRecord(
        7, "key", "alice", "d", "h", START_MS, None, 0, "key",
        scope="read" if "read" in limits else "write",
        allowed_networks=("10.0.0.0/8",) if "addresses" in limits else (),
        previous_hash="old" if rotated else None,
        previous_until=START_MS + 1000 if rotated else None,
    )  # fmt: skip
    return grant_for(record, rotated=rotated)


EVERY = frozenset(Act)
NONE: frozenset[Act] = frozenset()


@pytest.mark.parametrize(
    ("caller", "may_manage", "allowed", "because"),
    [
        # A password or a browser session: this rule refuses nothing.
        (None, True, EVERY, ""),
        (None, False, EVERY, ""),
        # An unlimited token: everything, unless the site says tokens may not.
        (grant(), True, EVERY, ""),
        (grant(), False, HARMLESS, "API tokens may not"),
        # The secret a rotation replaced: only what takes away.
        (grant(rotated=True), True, HARMLESS, "replaced by a rotation"),
        (grant(rotated=True), False, HARMLESS, "replaced by a rotation"),
        # A limited token: nothing at all, renames and narrowing included (issue 18, item 7).
        (grant("read"), True, NONE, "this token has the read scope, and a limited token"),
        (grant("addresses"), True, NONE, "may be used only from its allowed addresses"),
        (grant("read addresses"), True, NONE,
         "has the read scope and may be used only from its allowed addresses"),
        (grant("addresses"), False, NONE, "allowed addresses"),
        (grant("addresses", rotated=True), True, NONE, "allowed addresses"),
    ],
    ids=["password", "password-site-off", "token", "token-site-off", "replaced",
         "replaced-site-off", "read", "addresses", "read-and-addresses", "addresses-site-off",
         "addresses-replaced"],
)  # fmt: skip
def test_who_may_manage_tokens(
    caller: Grant | None, may_manage: bool, allowed: frozenset[Act], because: str
) -> None:
    for act in Act:
        refusal = management_refusal(caller, act, tokens_may_manage_tokens=may_manage)
        if act in allowed:
            assert refusal is None, act
            continue
        assert refusal is not None, act
        assert refusal.status == 403
        assert because in refusal.message and act.value in refusal.message
        # Each refusal says what would do it instead.
        assert ("use the new secret" if "rotation" in because else MANAGE_WITH) in refusal.message
