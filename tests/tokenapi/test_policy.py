"""The site's token policy: who may hold tokens and for how long, as tables."""

from __future__ import annotations

import pytest

from apitokenproxy.config import GroupLimit, TokensConfig
from apitokenproxy.errors import BadRequest, Forbidden
from apitokenproxy.tokenapi.policy import (
    ValidityRule,
    check_may_hold,
    granted_months,
    needs_groups,
    validity_rule,
)

LIMITS = (
    GroupLimit("staff", max_validity_months=3),
    GroupLimit("ci", max_validity_months=24),
    GroupLimit("admins", max_validity_months=0, allow_never_expires=True),
    GroupLimit("contractors", max_validity_months=1),
)
SITE = TokensConfig(default_validity_months=6, max_validity_months=12, group_limits=LIMITS)


@pytest.mark.parametrize(
    ("groups", "rule"),
    [
        (set(), ValidityRule(12, never_expires_allowed=True)),
        ({"unlisted"}, ValidityRule(12, never_expires_allowed=True)),
        ({"staff"}, ValidityRule(3, never_expires_allowed=False)),
        ({"staff", "ci"}, ValidityRule(24, never_expires_allowed=False)),
        ({"contractors", "staff"}, ValidityRule(3, never_expires_allowed=False)),
        ({"staff", "admins"}, ValidityRule(0, never_expires_allowed=True)),
    ],
)
def test_the_longest_of_the_users_groups_applies(groups: set[str], rule: ValidityRule) -> None:
    assert validity_rule(groups, SITE) == rule


@pytest.mark.parametrize(
    ("requested", "groups", "default", "months"),
    [
        (None, {"staff"}, 6, 3),
        (2, {"staff"}, 6, 2),
        (36, {"ci"}, 6, 24),
        (None, {"admins"}, 0, 0),
        (None, set(), 0, 12),  # the site's cap applies to its own default
        (1200, {"admins"}, 6, 1200),
    ],
)
def test_granted_months(requested: int | None, groups: set[str], default: int, months: int) -> None:
    config = TokensConfig(
        default_validity_months=default, max_validity_months=12, group_limits=LIMITS
    )
    assert granted_months(requested, groups, config) == months


def test_never_expiring_refused_where_no_group_allows_it() -> None:
    config = TokensConfig(
        default_validity_months=0, max_validity_months=0, group_limits=(GroupLimit("ci"),)
    )
    with pytest.raises(BadRequest, match="never expire"):
        granted_months(None, {"ci"}, config)
    assert granted_months(40, {"ci"}, config) == 40


@pytest.mark.parametrize(
    ("allowed", "groups", "may"),
    [
        ((), set(), True),
        (("dev",), {"dev"}, True),
        (("dev", "ops"), {"ops", "x"}, True),
        (("dev",), {"Dev"}, False),  # group names are compared exactly
        (("dev",), set(), False),
    ],
)
def test_who_may_hold_tokens(allowed: tuple[str, ...], groups: set[str], may: bool) -> None:
    config = TokensConfig(allowed_groups=allowed)
    if may:
        check_may_hold("alice", groups, config)
    else:
        with pytest.raises(Forbidden, match="alice may not hold API tokens"):
            check_may_hold("alice", groups, config)


def test_groups_are_needed_only_with_group_rules() -> None:
    assert not needs_groups(TokensConfig())
    assert needs_groups(TokensConfig(allowed_groups=("dev",)))
    assert needs_groups(TokensConfig(group_limits=(GroupLimit("dev"),)))
