"""The operator's commands on the store: ``tokens list|create|revoke|revoke-all``
and ``audit``, parsed by ``cli.py``.

They work on the store directly. ``tokens create`` makes a token as the
token API does (``TokenMaker``: the same checks of its values, the site's
token policy, the per-user cap, the audit event); it asks the upstream only
when ``tokens.allowed_groups`` or ``group_limits`` need the owner's groups. A
running proxy notices revocations made this way within a second. Each change
is in the audit trail as the operating-system user's, authenticated by "cli".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from .auth.hashing import SecretHasher
from .auth.identity import ActingAs, UpstreamIdentity, User
from .config import Config, load_config
from .errors import (
    BadRequest,
    NotFound,
    UpstreamBusy,
    UpstreamInvalid,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .live import Live, Settings, UpstreamLimits
from .proxy.headers import Injection
from .proxy.pool import pool_for
from .store import opened
from .store.audit import Action, AuditEvent, AuditQuery, How
from .tokenapi.inputs import parse_create
from .tokenapi.service import GroupsOf, TokenMaker
from .tokenapi.shapes import audit_entry, audit_line, filtered

# Who created a token from the command line, and who acts in its audit events.
CLI_KEY = "apitokenproxy-cli"


def _cli_action(at: int | None = None) -> Action:
    """A change made here: by the operating-system user, authenticated as "cli"."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        name = "unknown"
    return Action(
        at=time.time_ns() // 1_000_000 if at is None else at,
        actor_key=CLI_KEY,
        actor_name=name,
        how=How.CLI,
    )


AUDIT_BATCH = 500


def audit(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    query = AuditQuery(user_key=args.user_key, since=args.since)

    async def run() -> list[AuditEvent]:
        events: list[AuditEvent] = []
        async with opened(config.store) as store:
            while True:
                page = await store.audit_events(query, len(events), AUDIT_BATCH)
                events.extend(page.items)
                if len(page.items) < AUDIT_BATCH:
                    return events

    events = asyncio.run(run())
    if args.json:
        print(json.dumps([audit_entry(e) for e in events], indent=2, sort_keys=True))
    else:
        for event in events:
            print(audit_line(event))
    return 0


def tokens_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run() -> list[dict[str, Any]]:
        async with opened(config.store) as store:
            if args.user_key:
                records = await store.list_owned(args.user_key)
            else:
                records = (await store.find_by_expiry(None, 0, 2**62)).items
        return [filtered(r, origin=True) for r in records]

    print(json.dumps(asyncio.run(run()), indent=2, sort_keys=True))
    return 0


def tokens_create(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    # The token API's own checks, on the body it would have been sent.
    fields = {
        "tokenDescription": args.description,
        "tokenForUserKey": args.user_key,
        "tokenValidityTimeInMonths": args.months,
        "scope": args.scope,
        "allowedAddresses": args.allowed_address,
    }
    try:
        request = parse_create(fields, config.tokens.max_description_length)
    except BadRequest as exc:
        print(f"apitokenproxy: {exc.message}", file=sys.stderr)
        return 2
    owner = User(args.user_key, args.user_name)

    async def run() -> dict[str, Any]:
        hasher = SecretHasher(workers=1)
        try:
            async with opened(config.store) as store, _owners_groups(config) as groups_of:
                maker = TokenMaker(store, hasher, groups_of)
                created = await maker.create(owner, request, config.tokens, _cli_action())
        finally:
            hasher.close()
        return {**filtered(created.record), "plainTextToken": created.plaintext}

    print(json.dumps(asyncio.run(run()), indent=2, sort_keys=True))
    return 0


@contextlib.asynccontextmanager
async def _owners_groups(config: Config) -> AsyncIterator[GroupsOf]:
    """A token owner's groups, asked as the proxy asks: of the upstream, as the
    owner through the trusted header. Nothing is sent unless they are asked for."""
    upstream = config.upstream
    pool = pool_for(
        upstream.url,
        limit=2,
        ca_file=upstream.ca_file,
        verify_tls=upstream.verify_tls,
        # The CLI's calls are the proxy's own: no client address, no per-client cap.
        live=Live(
            Settings(
                upstream=UpstreamLimits(
                    upstream.connect_timeout_seconds, upstream.read_timeout_seconds
                )
            )
        ),
    )
    injection = Injection.from_config(upstream)
    identity = UpstreamIdentity(
        pool.fetch,
        upstream.url,
        upstream.product,
        admin_groups=config.auth.admin_groups,
        timeout_seconds=upstream.identity_timeout_seconds,
    )

    def acting(name: str) -> ActingAs:
        return ActingAs(dict(injection.identity(name)))

    async def groups_of(owner: User) -> frozenset[str]:
        try:
            # The name travels in the header: it must be the key's, or the
            # groups would be someone else's.
            found = await identity.find_user(owner.key, acting(owner.name))
            if found is not None and found.name.casefold() == owner.name.casefold():
                return await identity.groups(found, acting(found.name))
        except (UpstreamUnavailable, UpstreamTimeout, UpstreamBusy) as exc:
            raise UpstreamInvalid(
                f"cannot check the token policy for {owner.name}: {exc.message}"
            ) from exc
        if found is None:
            raise NotFound(f"no user has the user key {owner.key!r}")
        raise BadRequest(f"the user key {owner.key} is {found.name}'s, not {owner.name}'s")

    try:
        yield groups_of
    finally:
        pool.close()


def tokens_revoke(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run() -> bool:
        async with opened(config.store) as store:
            return await store.delete(args.token_id, _cli_action())

    if not asyncio.run(run()):
        print(f"apitokenproxy: no token with id {args.token_id}", file=sys.stderr)
        return 1
    print(f"token {args.token_id} revoked")
    return 0


def tokens_revoke_all(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run() -> int:
        async with opened(config.store) as store:
            return len(await store.delete_all_for(args.user_key, _cli_action()))

    print(f"{asyncio.run(run())} token(s) of {args.user_key} revoked")
    return 0
