"""What both stores share: columns from the records, one spelling per dialect, the migration loop."""

from __future__ import annotations

import dataclasses

import pytest

from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.store import NewToken, TokenRecord, schema
from apitokenproxy.store.audit import Action, AuditQuery, EventKind, How

RECORD = TokenRecord(7, "k", "n", "d", "$argon2id$x", 1, None, 5, "c")


def test_columns_are_the_record_fields_and_round_trip() -> None:
    assert tuple(f.name for f in dataclasses.fields(TokenRecord)) == schema.COLUMNS
    assert set(schema.NEW_COLUMNS) == set(schema.COLUMNS) - {
        "id", "last_accessed", "last_accessed_from", "previous_hash", "previous_until"
    }  # fmt: skip
    assert schema.record(schema.values(RECORD)) == RECORD
    restricted = dataclasses.replace(RECORD, allowed_networks=("10.0.0.0/8", "2001:db8::/32"))
    assert schema.record(schema.values(restricted)) == restricted
    with pytest.raises(ValueError):
        schema.record(schema.values(RECORD)[:-1])


def test_new_token_values_follow_new_columns() -> None:
    new = NewToken("k", "n", "d", "h", 1, 2, "c", "read", ("10.0.0.0/8", "::1/128"))
    assert dict(zip(schema.NEW_COLUMNS, schema.values(new), strict=True)) == {
        **dataclasses.asdict(new),
        "allowed_networks": "10.0.0.0/8 ::1/128",
    }


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (schema.SQLITE, "UPDATE tokens SET description = ?2 WHERE id = ?1"),
        (schema.POSTGRES, "UPDATE tokens SET description = $2 WHERE id = $1"),
    ],
)
def test_placeholders_are_the_dialects(dialect: schema.Dialect, expected: str) -> None:
    assert schema.statements(dialect).update_description.startswith(expected)


def test_json_paths_are_not_placeholders() -> None:
    statement = schema.statements(schema.SQLITE).record_access
    assert "'$[0]'" in statement and "json_each(?1)" in statement


def test_expiring_numbers_limit_and_offset_after_the_filter() -> None:
    sql = schema.statements(schema.POSTGRES)
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
    count, page, bound = schema.statements(schema.POSTGRES).audit(query)
    assert (count, bound) == (f"SELECT count(*) FROM audit_events{where}", args)  # noqa: S608
    assert f"FROM audit_events{where} ORDER BY id DESC" in page
    assert page.endswith(f"LIMIT ${limit_at} OFFSET ${limit_at + 1}")


def test_an_event_round_trips_through_its_columns() -> None:
    action = Action(at=9, actor_key="a", actor_name="n", how=How.CLI, client="c", request_id="r")
    event = schema.token_event(EventKind.RENAMED, action, RECORD)
    assert (event.kind, event.how, event.token_id, event.owner_key) == ("renamed", "cli", 7, "k")
    stored = dataclasses.replace(event, id=3)
    assert schema.audit_event((3, *schema.event_values(event))) == stored
    deleted = schema.deleted_event(EventKind.REVOKED, action, (7, "k", "d"))
    assert deleted == dataclasses.replace(event, kind="revoked")


def test_both_dialects_have_the_same_history() -> None:
    # Databases record how many steps they applied: the numbering must agree.
    assert [len(s) for s in schema.migrations(schema.SQLITE)] == [
        len(s) for s in schema.migrations(schema.POSTGRES)
    ]


class Recorder:
    def __init__(self) -> None:
        self.log: list[object] = []

    async def execute(self, statement: str) -> None:
        self.log.append(statement)

    async def record_version(self, number: int) -> None:
        self.log.append(number)


STEPS = (("a1", "a2"), ("b1",), ("c1",))


@pytest.mark.parametrize(
    ("version", "applied"),
    [
        (0, ["a1", "a2", 1, "b1", 2, "c1", 3]),
        (2, ["c1", 3]),
        (3, []),
    ],
)
async def test_migrate_applies_pending_steps_and_records_each(
    version: int, applied: list[object]
) -> None:
    db = Recorder()
    now = await schema.migrate(STEPS, version, execute=db.execute, record_version=db.record_version)
    assert (now, db.log) == (3, applied)


async def test_migrate_refuses_a_newer_schema() -> None:
    db = Recorder()
    with pytest.raises(StoreUnavailable, match="version 4, newer than this apitokenproxy knows"):
        await schema.migrate(STEPS, 4, execute=db.execute, record_version=db.record_version)
    assert db.log == []
