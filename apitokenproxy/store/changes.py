"""The changes to tokens both stores make, each one transaction with its audit events.

``SQLiteStore`` (``sqlite.py``) and ``PostgresStore`` (``postgres.py``) differ
in their drivers, not in what a creation, rename, policy change, rotation or
deletion does: ``Changes`` holds that algorithm once. A store supplies its
statements (``SQL``, from ``statements.py``), a transaction whose ``Session``
runs them, how it keeps an owner's concurrent creations apart while the limit
is counted, and how it tells other processes that a token changed.

Which events a change makes is decided by the pure functions at the top, so
it is tested without a database (``tests/store/test_changes.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Protocol

from ..errors import OwnerAtLimit
from . import schema
from .audit import Action, AuditEvent, EventKind, event
from .base import NewToken, TokenRecord
from .statements import Statements


def token_event(kind: EventKind, action: Action, record: TokenRecord) -> AuditEvent:
    """The event of ``action`` on a token whose record the statement returned."""
    return event(
        kind, action, owner_key=record.owner_key, token_id=record.id, description=record.description
    )


def deleted_event(kind: EventKind, action: Action, row: Iterable[Any]) -> AuditEvent:
    """The event of a deletion, from a row of a ``delete_*`` statement."""
    token_id, owner_key, description = row
    return event(
        kind, action, owner_key=str(owner_key), token_id=int(token_id), description=str(description)
    )


def policy_events(
    description: str | None, scope: str | None, allowed_networks: tuple[str, ...] | None
) -> tuple[EventKind, ...]:
    """The events of an ``update_policy``: one for each kind of thing it was given."""
    kinds: tuple[EventKind, ...] = () if description is None else (EventKind.RENAMED,)
    if scope is not None or allowed_networks is not None:
        kinds += (EventKind.POLICY_CHANGED,)
    return kinds


class Row(Protocol):
    """A result row of either driver (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, index: int, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Session(Protocol):
    """The connection of one transaction, asyncpg's way: the arguments follow the statement."""

    async def fetchrow(self, statement: str, *args: Any) -> Row | None: ...

    async def fetch(self, statement: str, *args: Any) -> Sequence[Row]: ...

    async def execute(self, statement: str, *args: Any) -> object: ...

    async def executemany(self, statement: str, args: Iterable[Sequence[Any]]) -> object: ...


class Changes(ABC):
    """``TokenStore``'s changing methods, on a store's primitives.

    Every change writes its events in the transaction that makes it, so a
    change whose event cannot be written is not made; every change but a
    creation or rename is announced like a deletion, so other processes stop
    trusting what they verified before.
    """

    SQL: ClassVar[Statements]

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[Session]:
        """One transaction; any error rolls it back and is ``StoreUnavailable``."""

    @abstractmethod
    async def _hold_owner(self, session: Session, owner_key: str) -> None:
        """Make the owner's other creations wait until this transaction ends."""

    @abstractmethod
    async def _notify(self, session: Session, ids: Sequence[int]) -> None:
        """Tell other processes, at commit, that these tokens changed or went."""

    async def create(self, token: NewToken, action: Action, *, limit: int = 0) -> TokenRecord:
        async with self._transaction() as session:
            if limit:
                await self._hold_owner(session, token.owner_key)
                counted = await session.fetchrow(self.SQL.count_owned, token.owner_key)
                count = int(counted[0]) if counted else 0
                if count >= limit:
                    raise OwnerAtLimit(count)
            row = await session.fetchrow(self.SQL.create, *schema.values(token))
            assert row is not None
            record = schema.record(row)
            await self._record_events(session, [token_event(EventKind.CREATED, action, record)])
        return record

    async def update_description(
        self, token_id: int, description: str, action: Action
    ) -> TokenRecord | None:
        # A new description changes no one's access: nothing to announce.
        async with self._transaction() as session:
            row = await session.fetchrow(self.SQL.update_description, token_id, description)
            if row is None:
                return None
            record = schema.record(row)
            await self._record_events(session, [token_event(EventKind.RENAMED, action, record)])
        return record

    async def update_policy(
        self,
        token_id: int,
        action: Action,
        *,
        description: str | None = None,
        scope: str | None = None,
        allowed_networks: tuple[str, ...] | None = None,
    ) -> TokenRecord | None:
        networks = None if allowed_networks is None else schema.encode_networks(allowed_networks)
        kinds = policy_events(description, scope, allowed_networks)
        return await self._change(
            self.SQL.update_policy, (token_id, description, scope, networks), kinds, action
        )

    async def rotate(
        self, token_id: int, secret_hash: str, previous_until: int | None, action: Action
    ) -> TokenRecord | None:
        return await self._change(
            self.SQL.rotate, (token_id, secret_hash, previous_until), (EventKind.ROTATED,), action
        )

    async def delete(self, token_id: int, action: Action) -> bool:
        return bool(await self._delete(self.SQL.delete_one, token_id, EventKind.REVOKED, action))

    async def delete_all_for(self, owner_key: str, action: Action) -> Sequence[int]:
        return await self._delete(self.SQL.delete_owned, owner_key, EventKind.REVOKED_ALL, action)

    async def _change(
        self,
        statement: str,
        args: tuple[Any, ...],
        kinds: Sequence[EventKind],
        action: Action,
    ) -> TokenRecord | None:
        """Run an UPDATE ... RETURNING, announce the change like a deletion, and
        write its events, all in one transaction."""
        async with self._transaction() as session:
            row = await session.fetchrow(statement, *args)
            if row is None:
                return None
            record = schema.record(row)
            await self._announce(session, [record.id])
            await self._record_events(session, [token_event(k, action, record) for k in kinds])
        return record

    async def _delete(
        self, statement: str, value: object, kind: EventKind, action: Action
    ) -> list[int]:
        async with self._transaction() as session:
            rows = await session.fetch(statement, value)
            ids = [int(r[0]) for r in rows]
            if ids:
                await self._announce(session, ids)
                await self._record_events(session, [deleted_event(kind, action, r) for r in rows])
        return ids

    async def _announce(self, session: Session, ids: Sequence[int]) -> None:
        """Record the revocations pollers read, forget old ones, and notify."""
        await session.executemany(self.SQL.record_revocation, [(i,) for i in ids])
        await session.execute(self.SQL.prune_revocations)
        await self._notify(session, ids)

    async def _record_events(self, session: Session, events: Sequence[AuditEvent]) -> None:
        await session.executemany(self.SQL.record_event, [schema.event_values(e) for e in events])
