"""statements.py: one text per statement, numbered and spelled for each dialect."""

from __future__ import annotations

import pytest

from apitokenproxy.store import schema
from apitokenproxy.store.audit import AuditQuery
from apitokenproxy.store.statements import for_dialect


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (schema.SQLITE, "UPDATE tokens SET description = ?2 WHERE id = ?1"),
        (schema.POSTGRES, "UPDATE tokens SET description = $2 WHERE id = $1"),
    ],
)
def test_placeholders_are_the_dialects(dialect: schema.Dialect, expected: str) -> None:
    assert for_dialect(dialect).update_description.startswith(expected)


def test_json_paths_are_not_placeholders() -> None:
    statement = for_dialect(schema.SQLITE).record_access
    assert "'$[0]'" in statement and "json_each(?1)" in statement


def test_expiring_numbers_limit_and_offset_after_the_filter() -> None:
    sql = for_dialect(schema.POSTGRES)
    count, page, args = sql.expiring(None)
    assert (count, args) == ("SELECT count(*) FROM tokens", ())
    assert page.endswith("LIMIT $1 OFFSET $2")
    count, page, args = sql.expiring(99)
    assert (count, args) == ("SELECT count(*) FROM tokens WHERE valid_until <= $1", (99,))
    assert page.endswith("LIMIT $2 OFFSET $3")


@pytest.mark.parametrize(
    ("query", "where", "args", "limit_at"),
    [
        (AuditQuery(), "", (), 1),
        (AuditQuery(user_key="k"), " WHERE (actor_key = $1 OR owner_key = $1)", ("k",), 2),
        (AuditQuery(since=5), " WHERE at >= $1", (5,), 2),
        (
            AuditQuery(user_key="k", since=5),
            " WHERE (actor_key = $1 OR owner_key = $1) AND at >= $2",
            ("k", 5),
            3,
        ),
    ],
)
def test_audit_statements_number_the_filter_then_limit_and_offset(
    query: AuditQuery, where: str, args: tuple[object, ...], limit_at: int
) -> None:
    count, page, bound = for_dialect(schema.POSTGRES).audit(query)
    assert (count, bound) == (f"SELECT count(*) FROM audit_events{where}", args)  # noqa: S608
    assert f"FROM audit_events{where} ORDER BY id DESC" in page
    assert page.endswith(f"LIMIT ${limit_at} OFFSET ${limit_at + 1}")
