"""schema.py: columns from the records, one history for both dialects, the migration loop."""

from __future__ import annotations

import dataclasses

import pytest

from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.store import NewToken, TokenRecord, schema
from apitokenproxy.store.audit import Action, EventKind, How, event

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


def test_an_event_round_trips_through_its_columns() -> None:
    action = Action(at=9, actor_key="a", actor_name="n", how=How.CLI, client="c", request_id="r")
    made = event(EventKind.RENAMED, action, owner_key="k", token_id=7, description="d")
    stored = dataclasses.replace(made, id=3)
    assert schema.audit_event((3, *schema.event_values(made))) == stored


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
