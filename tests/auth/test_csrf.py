"""The cross-site request rule for session-authenticated calls: a table."""

from __future__ import annotations

import pytest

from apitokenproxy.auth.csrf import csrf_refusal

OWN = "https://jira.example.com"

CASES = [
    # method, X-Atlassian-Token, Origin, accepted
    ("GET", None, None, True),
    ("GET", None, "https://evil.example", True),  # reading is not forging
    ("HEAD", None, None, True),
    ("POST", "no-check", None, True),
    ("POST", "no-check", OWN, True),
    ("post", "No-Check", "HTTPS://JIRA.example.com", True),
    ("PATCH", "no-check", OWN + "/", True),
    ("DELETE", "no-check", OWN, True),
    ("POST", None, None, False),  # a plain cross-site form
    ("POST", None, OWN, False),
    ("POST", "", OWN, False),
    ("POST", "nocheck", OWN, False),
    ("DELETE", None, None, False),
    ("PATCH", None, None, False),
    ("PUT", None, None, False),
    ("POST", "no-check", "https://evil.example", False),
    ("POST", "no-check", "http://jira.example.com", False),  # scheme matters
    ("POST", "no-check", "https://jira.example.com:8443", False),  # port matters
    ("POST", "no-check", "https://jira.example.com.evil.example", False),
    ("DELETE", "no-check", "null", False),  # sandboxed frames, data: URLs
    ("PATCH", "no-check", "https://evil.example", False),
]


@pytest.mark.parametrize(("method", "xsrf", "origin", "accepted"), CASES)
def test_csrf_rule(method: str, xsrf: str | None, origin: str | None, accepted: bool) -> None:
    refusal = csrf_refusal(method, xsrf, origin, OWN)
    assert (refusal is None) == accepted, refusal
