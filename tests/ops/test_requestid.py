"""Request ids: a client's sane one is kept, anything else replaced by one made here."""

from __future__ import annotations

import pytest

from apitokenproxy.ops.requestid import MAX_LENGTH, new_request_id, request_id

MADE = object()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["3f2a9c1e-7d4b-4a8e-9f00-1234567890ab"], "3f2a9c1e-7d4b-4a8e-9f00-1234567890ab"),
        (["Root=1-5759e988-bd862e3fe1be46a994272793"], "Root=1-5759e988-bd862e3fe1be46a994272793"),
        (["ci.job:42/step_7+x"], "ci.job:42/step_7+x"),
        (["a" * MAX_LENGTH], "a" * MAX_LENGTH),
        (["a" * (MAX_LENGTH + 1)], MADE),
        ([], MADE),
        ([""], MADE),
        (["two words"], MADE),
        (["a\nb"], MADE),
        (['a"b'], MADE),
        (["caf\u00e9"], MADE),
        (["Bearer atpx_1_secret"], MADE),
        (["one", "two"], MADE),  # which would the upstream believe?
    ],
)
def test_request_id(values: list[str], expected: object) -> None:
    got = request_id(values)
    if expected is MADE:
        assert got not in values and request_id([got]) == got  # made here, and sane
    else:
        assert got == expected


def test_made_ids_differ() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000


def test_the_token_prefix_is_the_tokens() -> None:
    # ops sits below auth, so the prefix is written twice; this keeps them one.
    from apitokenproxy.auth.tokens import PREFIX
    from apitokenproxy.ops.requestid import TOKEN_PREFIX

    assert TOKEN_PREFIX == PREFIX
