"""The contract every TokenStore backend keeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace

import pytest

from apitokenproxy.errors import OwnerAtLimit, StoreUnavailable
from apitokenproxy.store import NewToken, Page, TokenStore, WarningKey, open_store
from apitokenproxy.store.audit import Action, AuditEvent, AuditQuery, How

BASE = NewToken(
    owner_key="JIRAUSER10100",
    owner_name="alice",
    description="Automation token",
    secret_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    created=1_700_000_000_000,
    valid_until=1_710_000_000_000,
    created_by_key="JIRAUSER10100",
)


ACT = Action(
    at=1_700_000_000_500,
    actor_key="JIRAUSER10000",
    actor_name="admin",
    how=How.PASSWORD,
    client="203.0.113.7",
    request_id="req-1",
)


def token(**changes: object) -> NewToken:
    return replace(BASE, **changes)  # type: ignore[arg-type]


async def test_create_then_get_returns_every_field(store: TokenStore) -> None:
    created = await store.create(BASE, ACT)
    fetched = await store.get(created.id)
    assert fetched == created
    assert created.last_accessed == 0
    assert (created.owner_key, created.owner_name, created.description) == (
        BASE.owner_key,
        BASE.owner_name,
        BASE.description,
    )
    assert (created.secret_hash, created.created, created.valid_until, created.created_by_key) == (
        BASE.secret_hash,
        BASE.created,
        BASE.valid_until,
        BASE.created_by_key,
    )
    assert await store.get(created.id + 1000) is None


async def test_ids_grow_and_are_never_reused(store: TokenStore) -> None:
    first = await store.create(BASE, ACT)
    second = await store.create(BASE, ACT)
    assert second.id > first.id
    assert await store.delete(second.id, ACT)
    third = await store.create(BASE, ACT)
    assert third.id > second.id


async def test_text_is_stored_verbatim(store: TokenStore) -> None:
    text = "Robert'); DROP TABLE tokens;-- <b>ü</b> \U0001f600"
    created = await store.create(token(description=text, owner_name="jürgen"), ACT)
    fetched = await store.get(created.id)
    assert fetched is not None
    assert (fetched.description, fetched.owner_name) == (text, "jürgen")


async def test_list_owned_is_per_owner_and_oldest_first(store: TokenStore) -> None:
    a1 = await store.create(BASE, ACT)
    await store.create(token(owner_key="other"), ACT)
    a2 = await store.create(BASE, ACT)
    assert [t.id for t in await store.list_owned(BASE.owner_key)] == [a1.id, a2.id]
    assert await store.list_owned("nobody") == []


async def test_update_description(store: TokenStore) -> None:
    created = await store.create(BASE, ACT)
    updated = await store.update_description(created.id, "renamed", ACT)
    assert updated == replace(created, description="renamed")
    assert await store.update_description(created.id + 1000, "x", ACT) is None


async def test_delete_and_delete_all_for_announce_revocations(store: TokenStore) -> None:
    a1 = await store.create(BASE, ACT)
    b1 = await store.create(token(owner_key="bob"), ACT)
    b2 = await store.create(token(owner_key="bob"), ACT)
    last = await store.create(token(owner_key="carol"), ACT)
    seen: list[int] = []
    resets: list[bool] = []
    last_seen = asyncio.Event()

    def revoked(ids: Sequence[int]) -> None:
        seen.extend(ids)
        if last.id in ids:
            last_seen.set()

    watcher = asyncio.create_task(store.watch(revoked, lambda: resets.append(True)))
    try:
        await asyncio.sleep(0.3)  # the watcher is listening
        assert await store.delete(a1.id, ACT) is True
        assert await store.delete(a1.id, ACT) is False
        assert sorted(await store.delete_all_for("bob", ACT)) == [b1.id, b2.id]
        assert await store.delete_all_for("bob", ACT) == []
        assert await store.get(b1.id) is None
        # Announcements keep their order across statements: once the last
        # deletion is reported, every earlier one has been.
        assert await store.delete(last.id, ACT) is True
        async with asyncio.timeout(3):
            await last_seen.wait()
        assert sorted(seen) == sorted([a1.id, b1.id, b2.id, last.id])
        assert resets == []
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_find_by_expiry_orders_filters_and_pages(store: TokenStore) -> None:
    never = await store.create(token(valid_until=None), ACT)
    late = await store.create(token(valid_until=3000), ACT)
    early = await store.create(token(valid_until=1000), ACT)
    tie = await store.create(token(valid_until=3000), ACT)

    everything = await store.find_by_expiry(None, 0, 50)
    assert [t.id for t in everything.items] == [early.id, late.id, tie.id, never.id]
    assert everything.total == 4

    upto = await store.find_by_expiry(3000, 0, 50)
    assert [t.id for t in upto.items] == [early.id, late.id, tie.id]
    assert (await store.find_by_expiry(999, 0, 50)).total == 0

    page = await store.find_by_expiry(None, 1, 2)
    assert [t.id for t in page.items] == [late.id, tie.id]
    assert page.total == 4
    assert (await store.find_by_expiry(None, 10, 2)).items == []


async def test_find_by_expiry_filters_by_owner_and_description_text(store: TokenStore) -> None:
    a1 = await store.create(
        token(owner_key="A", description="Nightly BACKUP job", valid_until=2000), ACT
    )
    a2 = await store.create(token(owner_key="A", description="deploy", valid_until=1000), ACT)
    b1 = await store.create(
        token(owner_key="B", description="backup mirror", valid_until=None), ACT
    )
    odd = await store.create(token(owner_key="B", description="100% of_it", valid_until=500), ACT)

    def ids(page: Page) -> list[int]:
        return [t.id for t in page.items]

    assert ids(await store.find_by_expiry(None, 0, 50, owner_key="A")) == [a2.id, a1.id]
    assert ids(await store.find_by_expiry(None, 0, 50, description="backup")) == [a1.id, b1.id]
    both = await store.find_by_expiry(None, 0, 50, owner_key="B", description="BACK")
    assert (ids(both), both.total) == ([b1.id], 1)
    assert ids(await store.find_by_expiry(1500, 0, 50, owner_key="A")) == [a2.id]
    # LIKE's wildcards in the text are matched literally.
    assert ids(await store.find_by_expiry(None, 0, 50, description="0% of_")) == [odd.id]
    assert (await store.find_by_expiry(None, 0, 50, description="%")).total == 1
    assert (await store.find_by_expiry(None, 0, 50, description="_")).total == 1
    paged = await store.find_by_expiry(None, 1, 1, owner_key="A")
    assert (ids(paged), paged.total) == ([a1.id], 2)


async def test_record_access_keeps_the_latest_time_and_its_address(store: TokenStore) -> None:
    a = await store.create(BASE, ACT)
    b = await store.create(BASE, ACT)
    assert a.last_accessed_from == ""
    await store.record_access(
        {a.id: (500, "192.0.2.5"), b.id: (700, "2001:db8::7"), 999_999: (1, "x")}
    )
    await store.record_access({a.id: (400, "198.51.100.4")})  # older: changes nothing
    fetched_a, fetched_b = await store.get(a.id), await store.get(b.id)
    assert fetched_a is not None
    assert (fetched_a.last_accessed, fetched_a.last_accessed_from) == (500, "192.0.2.5")
    assert fetched_b is not None
    assert (fetched_b.last_accessed, fetched_b.last_accessed_from) == (700, "2001:db8::7")
    await store.record_access({a.id: (900, "198.51.100.9")})
    fetched_a = await store.get(a.id)
    assert fetched_a is not None
    assert (fetched_a.last_accessed, fetched_a.last_accessed_from) == (900, "198.51.100.9")
    await store.record_access({})


async def test_concurrent_writes_all_land(store: TokenStore) -> None:
    made = await asyncio.gather(*(store.create(token(description=f"t{i}"), ACT) for i in range(50)))
    assert len({t.id for t in made}) == 50
    assert (await store.find_by_expiry(None, 0, 100)).total == 50


async def test_ping_and_closed_store(store: TokenStore) -> None:
    await store.ping()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get(1)


async def test_failures_count_within_a_window_and_restart_after_it(store: TokenStore) -> None:
    assert await store.add_failure("address 1.2.3.4", 10_000, 60_000) == (10_000, 1)
    assert await store.add_failure("address 1.2.3.4", 20_000, 60_000) == (10_000, 2)
    assert await store.add_failure("user alice", 20_000, 60_000) == (20_000, 1)
    assert await store.add_failure("address 1.2.3.4", 70_000, 60_000) == (70_000, 1)


async def test_upsert_copies_tokens_exactly_and_is_idempotent(store: TokenStore) -> None:
    original = await store.create(BASE, ACT)
    copied = replace(
        original,
        id=original.id + 100,
        last_accessed=12345,
        last_accessed_from="192.0.2.12",
        description="copied",
        scope="read",
        allowed_networks=("10.0.0.0/8", "::1/128"),
        previous_hash="$argon2id$old",
        previous_until=777,
    )
    assert await store.upsert([copied]) == 1
    assert await store.upsert([copied]) == 1
    assert await store.get(copied.id) == copied
    # Ids allocated afterwards never collide with copied ones.
    later = await store.create(BASE, ACT)
    assert later.id > copied.id
    # Upserting an older lastAccessed never moves it back, nor its address.
    await store.upsert([replace(copied, last_accessed=12345, last_accessed_from="192.0.2.1")])
    await store.upsert([replace(copied, last_accessed=1, last_accessed_from="192.0.2.99")])
    fetched = await store.get(copied.id)
    assert fetched is not None
    assert (fetched.last_accessed, fetched.last_accessed_from) == (12345, "192.0.2.1")


async def test_watch_reports_revocations_from_another_connection(
    store: TokenStore, store_url: str
) -> None:
    other = await open_store(store_url)
    seen: list[int] = []
    arrived = asyncio.Event()
    resets: list[bool] = []

    def revoked(ids: Sequence[int]) -> None:
        seen.extend(ids)
        arrived.set()

    watcher = asyncio.create_task(store.watch(revoked, lambda: resets.append(True)))
    try:
        await asyncio.sleep(0.3)  # the watcher is listening
        doomed = await other.create(BASE, ACT)
        await other.delete(doomed.id, ACT)
        async with asyncio.timeout(2):
            await arrived.wait()
        assert seen == [doomed.id]
        assert resets == []
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await other.close()


# The audit trail ---------------------------------------------------------------


def by(name: str, how: How = How.TOKEN, at: int = ACT.at) -> Action:
    return Action(
        at=at, actor_key=f"key-{name}", actor_name=name, how=how, client="192.0.2.9", request_id=""
    )


async def events(store: TokenStore, query: AuditQuery | None = None) -> list[AuditEvent]:
    page = await store.audit_events(query or AuditQuery(), 0, 1000)
    assert page.total == len(page.items)
    return list(page.items)


def summary(found: Sequence[AuditEvent]) -> list[tuple[object, ...]]:
    """(kind, actor name, how, owner, token id, description), newest first."""
    return [(e.kind, e.actor_name, e.how, e.owner_key, e.token_id, e.description) for e in found]


async def test_every_change_is_one_event_with_its_actor(store: TokenStore) -> None:
    a1 = await store.create(BASE, ACT)
    b1 = await store.create(token(owner_key="bob", description="CI"), by("bob"))
    b2 = await store.create(token(owner_key="bob", description="nightly"), by("bob"))
    await store.update_description(a1.id, "renamed", by("alice", How.PASSWORD))
    assert await store.delete(a1.id, by("admin", How.SESSION))
    assert sorted(await store.delete_all_for("bob", by("ops", How.CLI))) == [b1.id, b2.id]
    found = await events(store)
    assert summary(found) == [
        ("revoked-all", "ops", "cli", "bob", b2.id, "nightly"),
        ("revoked-all", "ops", "cli", "bob", b1.id, "CI"),
        ("revoked", "admin", "session", BASE.owner_key, a1.id, "renamed"),
        ("renamed", "alice", "password", BASE.owner_key, a1.id, "renamed"),
        ("created", "bob", "token", "bob", b2.id, "nightly"),
        ("created", "bob", "token", "bob", b1.id, "CI"),
        ("created", "admin", "password", BASE.owner_key, a1.id, BASE.description),
    ]
    assert [e.id for e in found] == sorted((e.id for e in found), reverse=True)
    first = found[-1]
    assert (first.at, first.actor_key, first.client, first.request_id) == (
        ACT.at,
        ACT.actor_key,
        ACT.client,
        ACT.request_id,
    )


async def test_changes_that_change_nothing_leave_no_event(store: TokenStore) -> None:
    assert await store.update_description(12345, "x", ACT) is None
    assert await store.delete(12345, ACT) is False
    assert await store.delete_all_for("nobody", ACT) == []
    assert await events(store) == []


async def test_copies_and_uses_are_not_audited(store: TokenStore) -> None:
    made = await store.create(BASE, ACT)
    await store.upsert([replace(made, id=made.id + 10)])
    await store.record_access({made.id: (5, "192.0.2.1")})
    assert [e.kind for e in await events(store)] == ["created"]


async def test_audit_filters_by_user_and_time_and_pages(store: TokenStore) -> None:
    alice = await store.create(BASE, by("alice", at=1000))
    await store.create(token(owner_key="bob"), by("bob", at=2000))
    # An admin acting on alice's token: found under both keys.
    await store.delete(alice.id, by("admin", at=3000))
    query = AuditQuery(user_key="key-admin")
    assert [e.kind for e in await events(store, query)] == ["revoked"]
    owner = AuditQuery(user_key=BASE.owner_key)
    assert [e.at for e in await events(store, owner)] == [3000, 1000]
    assert [e.at for e in await events(store, AuditQuery(user_key="key-alice"))] == [1000]
    assert [e.at for e in await events(store, AuditQuery(since=2000))] == [3000, 2000]
    both = AuditQuery(user_key="bob", since=2001)
    assert await events(store, both) == []
    page = await store.audit_events(AuditQuery(), 1, 1)
    assert ([e.at for e in page.items], page.total) == ([2000], 3)
    assert (await store.audit_events(AuditQuery(), 5, 1)).items == []


async def test_prune_deletes_only_old_events_a_batch_at_a_time(store: TokenStore) -> None:
    for at in (100, 200, 300, 400, 500):
        await store.create(BASE, by("alice", at=at))
    assert await store.prune_audit(400, 2) == 2
    assert [e.at for e in await events(store)] == [500, 400, 300]
    assert await store.prune_audit(400, 2) == 1
    assert await store.prune_audit(400, 2) == 0
    assert [e.at for e in await events(store)] == [500, 400]
    assert len(await store.list_owned(BASE.owner_key)) == 5  # tokens are untouched


async def refuse_audit_events(store_url: str) -> None:
    """Make every insert into the audit trail fail, behind the store's back."""
    if store_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events"
                " BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
            )
        return
    import asyncpg

    conn = await asyncpg.connect(store_url)
    try:
        await conn.execute(
            "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$"
        )
        await conn.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events"
            " FOR EACH ROW EXECUTE FUNCTION no_audit()"
        )
    finally:
        await conn.close()


async def test_a_change_whose_event_cannot_be_written_is_not_made(
    store: TokenStore, store_url: str
) -> None:
    kept = await store.create(BASE, ACT)
    await refuse_audit_events(store_url)
    with pytest.raises(StoreUnavailable, match="audit refused"):
        await store.create(BASE, ACT)
    with pytest.raises(StoreUnavailable, match="audit refused"):
        await store.update_description(kept.id, "renamed", ACT)
    with pytest.raises(StoreUnavailable, match="audit refused"):
        await store.delete(kept.id, ACT)
    with pytest.raises(StoreUnavailable, match="audit refused"):
        await store.delete_all_for(BASE.owner_key, ACT)
    with pytest.raises(StoreUnavailable, match="audit refused"):
        await store.rotate(kept.id, "$argon2id$new", 5_000, ACT)
    with pytest.raises(StoreUnavailable, match="audit refused"):
        await store.update_policy(kept.id, ACT, scope="read", allowed_networks=("10.0.0.0/8",))
    assert await store.list_owned(BASE.owner_key) == [kept]
    assert len(await events(store)) == 1


async def test_rotations_and_policy_changes_are_events_with_their_actor(
    store: TokenStore,
) -> None:
    made = await store.create(BASE, by("alice", How.PASSWORD, at=1000))
    await store.rotate(made.id, "$argon2id$new", 5_000, by("alice", How.SESSION, at=2000))
    await store.update_policy(made.id, by("bob", at=3000), scope="read")
    await store.update_policy(made.id, by("carol", at=4000), allowed_networks=("10.0.0.0/8",))
    # A description with a policy change is both a rename and a policy change.
    await store.update_policy(
        made.id, by("dave", How.PASSWORD, at=5000), description="CI", allowed_networks=()
    )
    await store.update_policy(made.id, by("erin", at=6000), description="CI nightly")
    owner = BASE.owner_key
    found = await events(store)
    assert summary(found) == [
        ("renamed", "erin", "token", owner, made.id, "CI nightly"),
        ("policy_changed", "dave", "password", owner, made.id, "CI"),
        ("renamed", "dave", "password", owner, made.id, "CI"),
        ("policy_changed", "carol", "token", owner, made.id, BASE.description),
        ("policy_changed", "bob", "token", owner, made.id, BASE.description),
        ("rotated", "alice", "session", owner, made.id, BASE.description),
        ("created", "alice", "password", owner, made.id, BASE.description),
    ]
    assert [e.at for e in found] == [6000, 5000, 5000, 4000, 3000, 2000, 1000]
    assert {(e.client, e.request_id) for e in found} == {("192.0.2.9", "")}


async def test_rotating_or_changing_a_missing_token_leaves_no_event(store: TokenStore) -> None:
    assert await store.rotate(12345, "$argon2id$new", None, ACT) is None
    assert await store.update_policy(12345, ACT, scope="read") is None
    assert await events(store) == []


async def test_copied_events_keep_their_ids_and_are_copied_once(store: TokenStore) -> None:
    made = await store.create(BASE, ACT)
    [original] = await events(store)
    copied = replace(original, id=original.id + 100, kind="rotated", description="from elsewhere")
    assert await store.copy_events([copied]) == 1
    await store.copy_events([copied, replace(copied, description="changed")])  # a repeat
    assert await events(store) == [copied, original]
    # Events written afterwards never collide with copied ones.
    await store.delete(made.id, ACT)
    newest = (await events(store))[0]
    assert (newest.kind, newest.id > copied.id) == ("revoked", True)


# Per-token policy and rotation ------------------------------------------------


async def test_policy_fields_are_stored_and_default_to_write_from_anywhere(
    store: TokenStore,
) -> None:
    plain = await store.create(BASE, ACT)
    assert (plain.scope, plain.allowed_networks) == ("write", ())
    assert (plain.previous_hash, plain.previous_until) == (None, None)
    networks = ("10.0.0.0/8", "2001:db8::/32")
    narrow = await store.create(token(scope="read", allowed_networks=networks), ACT)
    assert await store.get(narrow.id) == narrow
    assert (narrow.scope, narrow.allowed_networks) == ("read", networks)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"scope": "read"}, {"scope": "read"}),
        ({"allowed_networks": ("192.0.2.0/24",)}, {"allowed_networks": ("192.0.2.0/24",)}),
        ({"allowed_networks": ()}, {"allowed_networks": ()}),
        ({"description": "renamed", "scope": "read"}, {"description": "renamed", "scope": "read"}),
        ({}, {}),
    ],
)
async def test_update_policy_changes_only_what_is_given(
    store: TokenStore, changes: dict[str, object], expected: dict[str, object]
) -> None:
    created = await store.create(token(allowed_networks=("10.0.0.0/8",)), ACT)
    updated = await store.update_policy(created.id, ACT, **changes)  # type: ignore[arg-type]
    assert updated == replace(created, **expected)  # type: ignore[arg-type]
    assert await store.get(created.id) == updated
    assert await store.update_policy(created.id + 1000, ACT, scope="read") is None


async def test_rotate_keeps_the_old_hash_until_the_deadline_or_drops_it(
    store: TokenStore,
) -> None:
    created = await store.create(BASE, ACT)
    rotated = await store.rotate(created.id, "$argon2id$new", 5_000, ACT)
    assert rotated == replace(
        created, secret_hash="$argon2id$new", previous_hash=BASE.secret_hash, previous_until=5_000
    )
    assert await store.get(created.id) == rotated
    # A second rotation replaces the previous secret: only one old secret lives.
    again = await store.rotate(created.id, "$argon2id$newer", 9_000, ACT)
    assert again is not None
    assert (again.previous_hash, again.previous_until) == ("$argon2id$new", 9_000)
    # No grace: the replaced secret is gone at once.
    at_once = await store.rotate(created.id, "$argon2id$newest", None, ACT)
    assert at_once is not None
    assert (at_once.secret_hash, at_once.previous_hash, at_once.previous_until) == (
        "$argon2id$newest", None, None
    )  # fmt: skip
    assert await store.rotate(created.id + 1000, "$argon2id$x", None, ACT) is None


async def test_rotations_and_policy_changes_are_announced_like_revocations(
    store: TokenStore,
) -> None:
    rotated = await store.create(BASE, ACT)
    narrowed = await store.create(BASE, ACT)
    seen: list[int] = []
    both = asyncio.Event()

    def revoked(ids: Sequence[int]) -> None:
        seen.extend(ids)
        if narrowed.id in seen:
            both.set()

    watcher = asyncio.create_task(store.watch(revoked, lambda: None))
    try:
        await asyncio.sleep(0.3)  # the watcher is listening
        await store.rotate(rotated.id, "$argon2id$new", 1, ACT)
        await store.update_policy(narrowed.id, ACT, scope="read")
        async with asyncio.timeout(3):
            await both.wait()
        assert seen == [rotated.id, narrowed.id]
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_create_with_a_limit_counts_the_owners_tokens(store: TokenStore) -> None:
    await store.create(BASE, ACT, limit=2)
    await store.create(token(owner_key="bob"), ACT, limit=1)
    await store.create(BASE, ACT, limit=2)
    with pytest.raises(OwnerAtLimit) as refused:
        await store.create(BASE, ACT, limit=2)
    assert refused.value.count == 2
    # A limit lowered below what exists reports the real number; 0 is no limit.
    with pytest.raises(OwnerAtLimit) as refused:
        await store.create(BASE, ACT, limit=1)
    assert refused.value.count == 2
    await store.create(BASE, ACT, limit=0)
    assert len(await store.list_owned(BASE.owner_key)) == 3


async def test_the_limit_holds_across_connections_racing(store: TokenStore, store_url: str) -> None:
    others = [await open_store(store_url) for _ in range(3)]
    try:
        outcomes = await asyncio.gather(
            *(s.create(BASE, ACT, limit=4) for s in (store, *others) for _ in range(4)),
            return_exceptions=True,
        )
    finally:
        for other in others:
            await other.close()
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 4
    assert all(isinstance(o, OwnerAtLimit) for o in outcomes if isinstance(o, BaseException))
    assert len(await store.list_owned(BASE.owner_key)) == 4


async def test_expiring_lists_tokens_in_a_window_soonest_first(store: TokenStore) -> None:
    await store.create(token(valid_until=None), ACT)
    gone = await store.create(token(valid_until=1000), ACT)
    late = await store.create(token(valid_until=3000), ACT)
    early = await store.create(token(valid_until=2000), ACT)
    await store.create(token(valid_until=3001), ACT)
    assert [t.id for t in await store.expiring(1000, 3000)] == [early.id, late.id]
    assert [t.id for t in await store.expiring(999, 1000)] == [gone.id]


KEY = WarningKey(token_id=7, days=14, valid_until=90_000, channel="email")


async def test_a_warning_is_claimed_once_then_sent(store: TokenStore) -> None:
    assert await store.claim_warning(KEY, 1000, 500, 5) == 0
    # Held by its claimant until the lease ends...
    assert await store.claim_warning(KEY, 1499, 500, 5) is None
    # ...and another channel, threshold or expiry is another warning.
    assert await store.claim_warning(replace(KEY, channel="webhook"), 1000, 500, 5) == 0
    assert await store.claim_warning(replace(KEY, days=3), 1000, 500, 5) == 0
    assert await store.claim_warning(replace(KEY, valid_until=95_000), 1000, 500, 5) == 0
    # A claimant that died: the lease ends and someone else takes it over.
    assert await store.claim_warning(KEY, 1500, 500, 5) == 0
    await store.warning_sent(KEY, 1600)
    assert await store.claim_warning(KEY, 10_000_000, 500, 5) is None


async def test_a_failed_warning_waits_for_its_retry_and_gives_up(store: TokenStore) -> None:
    assert await store.claim_warning(KEY, 0, 500, 2) == 0
    assert await store.warning_failed(KEY, retry_at=5000) == 1
    assert await store.claim_warning(KEY, 4999, 500, 2) is None
    assert await store.claim_warning(KEY, 5000, 500, 2) == 1
    assert await store.warning_failed(KEY, retry_at=9000) == 2
    # Two attempts failed: never again.
    assert await store.claim_warning(KEY, 99_000, 500, 2) is None


async def test_concurrent_claims_of_one_warning_have_one_winner(
    store: TokenStore, store_url: str
) -> None:
    others = [await open_store(store_url) for _ in range(3)]
    try:
        claims = await asyncio.gather(
            *(s.claim_warning(KEY, 1000, 60_000, 5) for s in (store, *others) for _ in range(3))
        )
    finally:
        for other in others:
            await other.close()
    assert sorted(claims, key=lambda c: c is None) == [0] + [None] * 11


async def test_warnings_of_long_expired_tokens_are_pruned(store: TokenStore) -> None:
    await store.claim_warning(KEY, 0, 500, 5)
    await store.warning_sent(KEY, 1)
    await store.prune_warnings(before=KEY.valid_until)
    assert await store.claim_warning(KEY, 2, 500, 5) is None
    await store.prune_warnings(before=KEY.valid_until + 1)
    # Forgotten: the row is new again (no token is ever that old when scanned).
    assert await store.claim_warning(KEY, 2, 500, 5) == 0
