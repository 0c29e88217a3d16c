"""Who may hold tokens, and for how long: the site's token policy as pure decisions.

- ``tokens.allowed_groups``: only members of one of these upstream groups may
  hold a token (empty: everyone). Checked when a token is created, for the
  user who will own it.
- ``tokens.group_limits``: a user in one or more listed groups gets the most
  generous of their rules, both for the longest validity (0 = no limit) and
  for whether a token may never expire. A user in none of them gets the
  site's ``tokens.max_validity_months``, as before.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from ..config import TokensConfig
from ..errors import BadRequest, Forbidden
from .validity import effective_months


@dataclass(frozen=True)
class ValidityRule:
    maximum_months: int  # 0 = no limit
    never_expires_allowed: bool


def needs_groups(config: TokensConfig) -> bool:
    """Whether deciding a creation needs the owner's groups from the upstream."""
    return bool(config.allowed_groups or config.group_limits)


def check_may_hold(owner_name: str, groups: Set[str], config: TokensConfig) -> None:
    """Raise Forbidden unless the user may hold tokens."""
    allowed = config.allowed_groups
    if allowed and not groups & set(allowed):
        raise Forbidden(
            f"{owner_name} may not hold API tokens: only members of "
            f"{', '.join(sorted(allowed))} may"
        )


def validity_rule(groups: Set[str], config: TokensConfig) -> ValidityRule:
    """The rule for a user in ``groups``: the longest of their groups' limits."""
    limits = [limit for limit in config.group_limits if limit.group in groups]
    if not limits:
        return ValidityRule(config.max_validity_months, never_expires_allowed=True)
    maxima = [limit.max_validity_months for limit in limits]
    return ValidityRule(
        maximum_months=0 if 0 in maxima else max(maxima),
        never_expires_allowed=any(limit.allow_never_expires for limit in limits),
    )


def granted_months(requested: int | None, groups: Set[str], config: TokensConfig) -> int:
    """Months of validity for a new token (0 = never expires), or BadRequest."""
    rule = validity_rule(groups, config)
    months = effective_months(requested, config.default_validity_months, rule.maximum_months)
    if months == 0 and not rule.never_expires_allowed:
        raise BadRequest(
            "tokens that never expire are not allowed for your groups: "
            "give tokenValidityTimeInMonths"
        )
    return months
