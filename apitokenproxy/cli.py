"""The ``apitokenproxy`` command: flags, then config, then validate, then run.

    apitokenproxy serve --config FILE
    apitokenproxy check-config --config FILE
    apitokenproxy migrate --config FILE
    apitokenproxy copy-store --from URL --to URL
    apitokenproxy demo [--port 8080]
    apitokenproxy tokens list|create|revoke|revoke-all --config FILE ...
    apitokenproxy audit --config FILE [--user-key K] [--since DATE] [--json]

``tokens`` works on the store directly, for operators. ``tokens create``
makes a token as the token API does (``TokenMaker``: the same checks of its
values, the site's token policy, the per-user cap, the audit event); it asks
the upstream only when ``tokens.allowed_groups`` or ``group_limits`` need
the owner's groups. A running proxy notices revocations made this way within
a second. Each change is in the audit trail as the operating-system user's,
authenticated by "cli".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib.metadata
import json
import logging
import re
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .app import create_app
from .auth.hashing import SecretHasher
from .auth.identity import ActingAs, UpstreamIdentity, User
from .config import Config, ConfigError, config_from_dict, load_config
from .demo import create_demo_upstream, seed_commands
from .errors import (
    BadRequest,
    NotFound,
    ProxyError,
    UpstreamBusy,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .live import Live, Settings, UpstreamLimits
from .proxy.headers import Injection
from .proxy.upstream import pool_for
from .server import StartupError, install_uvloop, run_until_signalled, setup_logging
from .store import opened
from .store.audit import Action, AuditEvent, AuditQuery, How
from .supervisor import serve
from .tokenapi.inputs import parse_create
from .tokenapi.service import GroupsOf, TokenMaker
from .tokenapi.shapes import audit_entry, audit_line, filtered

log = logging.getLogger("apitokenproxy")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ProxyError as exc:
        print(f"apitokenproxy: {exc.message}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"apitokenproxy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apitokenproxy",
        description="API-token authentication gateway for Jira and Confluence Data Center.",
    )
    parser.add_argument("--version", action="version", version=f"apitokenproxy {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--config", "-c", required=True, help="YAML configuration file")
        return sub

    with_config(command("serve", "run the proxy until SIGTERM/SIGINT", _serve))
    with_config(command("check-config", "validate a configuration file", _check_config))
    with_config(
        command("health", "ask the running proxy of this config if it is up (exit 0 or 1)", _health)
    )
    with_config(command("migrate", "apply the store's schema migrations, then exit", _migrate))
    copy = command(
        "copy-store", "copy every token from one store to another (safe to repeat)", _copy_store
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="store URL")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="store URL")
    demo = command("demo", "run against a built-in demo Jira, on an embedded store", _demo)
    demo.add_argument("--port", type=int, default=8080, help="proxy port (default 8080)")
    demo.add_argument("--host", default="127.0.0.1", help="proxy address (default 127.0.0.1)")

    tokens = commands.add_parser("tokens", help="administer tokens directly in the store")
    tokens_sub = tokens.add_subparsers(required=True, metavar="ACTION")

    def token_command(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        sub = tokens_sub.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return with_config(sub)

    listing = token_command("list", "list tokens (all, or one user's)", _tokens_list)
    listing.add_argument("--user-key", help="only this user's tokens")
    create = token_command(
        "create",
        "create a token for a user key, as POST /user/token would (its messages name that "
        "call's fields: tokenDescription, tokenValidityTimeInMonths, allowedAddresses)",
        _tokens_create,
    )
    create.add_argument("--user-key", required=True)
    create.add_argument("--user-name", required=True, help="the user's login name")
    create.add_argument("--description", required=True)
    create.add_argument("--months", type=int, help="validity in months (default: configured)")
    create.add_argument(
        "--scope", choices=("read", "write"), default="write", help="read: GET, HEAD, OPTIONS only"
    )
    create.add_argument(
        "--allowed-address",
        action="append",
        default=[],
        metavar="CIDR",
        help="a network the token may be used from (repeatable; default: anywhere)",
    )
    revoke = token_command("revoke", "delete one token", _tokens_revoke)
    revoke.add_argument("token_id", type=int)
    revoke_all = token_command("revoke-all", "delete every token of a user", _tokens_revoke_all)
    revoke_all.add_argument("--user-key", required=True)

    audit = with_config(command("audit", "show the audit trail, newest first", _audit))
    audit.add_argument("--user-key", help="only events this user acted in or owned the token of")
    audit.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="only events at or after DATE: 2026-11-24 or 2026-11-24T09:30 (UTC unless an "
        "offset is given)",
    )
    audit.add_argument("--json", action="store_true", help="a JSON array, as the REST API shows")
    return parser


def _since(text: str) -> int:
    """``--since``: an ISO date or date and time, UTC unless it says otherwise, as ms."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a date: {text!r} (use 2026-11-24 or 2026-11-24T09:30)"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _version() -> str:
    try:
        return importlib.metadata.version("apitokenproxy")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def _serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    serve(config, path=args.config)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: configuration is valid")
    print(f"store: {_redacted(config.store.url)}")
    return 0


def _health(args: argparse.Namespace) -> int:
    """For container health checks: follows the configured port and scheme."""
    config = load_config(args.config)
    listen = config.listen
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "", "::") else listen.host  # noqa: S104
    scheme = "https" if listen.tls.cert_file else "http"
    context = ssl.create_default_context()
    # Its own certificate names the public host, not 127.0.0.1: up is up.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"{scheme}://{host}:{listen.port}/__apitokenproxy/health"
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:  # noqa: S310
            healthy = response.status == 200
    except (OSError, ValueError) as exc:
        print(f"apitokenproxy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {'ok' if healthy else 'not ok'}")
    return 0 if healthy else 1


def _demo(args: argparse.Namespace) -> int:
    setup_logging("INFO")
    install_uvloop()
    return asyncio.run(_run_demo(args.host, args.port))


async def _run_demo(host: str, port: int) -> int:
    upstream = web.AppRunner(create_demo_upstream(), access_log=None)
    await upstream.setup()
    upstream_site = web.TCPSite(upstream, "127.0.0.1", 0)
    await upstream_site.start()
    upstream_port = upstream.addresses[0][1]
    with tempfile.TemporaryDirectory(prefix="apitokenproxy-demo-") as tmp:
        config = config_from_dict(
            {
                "listen": {"host": host, "port": port},
                "upstream": {"url": f"http://127.0.0.1:{upstream_port}", "product": "jira"},
                "store": {"url": f"sqlite:///{tmp}/tokens.db"},
                "proxy": {"last_accessed_flush_seconds": 2},
            }
        )

        def started(bound: int) -> None:
            base = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{bound}"  # noqa: S104
            print(
                f"\napitokenproxy demo: proxy on {base}, demo Jira on "
                f"http://127.0.0.1:{upstream_port}, tokens in {tmp}/tokens.db\n"
                "Users: alice/alice, bob/bob (key JIRAUSER10105), admin/admin (sysadmin).\n"
                "Paste these (Ctrl-C stops the demo):\n\n" + seed_commands(base) + "\n",
                flush=True,
            )

        try:
            await run_until_signalled(create_app(config), host, port, started=started)
        finally:
            await upstream.cleanup()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run() -> None:
        async with opened(config.store):
            pass  # opening a store applies its pending migrations

    asyncio.run(run())
    print(f"{_redacted(config.store.url)}: schema is up to date")
    return 0


COPY_BATCH = 500


def _copy_store(args: argparse.Namespace) -> int:
    """Copy every token and audit event between stores, ids, hashes and times
    intact; safe to repeat."""

    async def run() -> tuple[int, int]:
        tokens = events = 0
        async with opened(args.source) as source, opened(args.target) as target:
            while page := (await source.find_by_expiry(None, tokens, COPY_BATCH)).items:
                tokens += await target.upsert(page)
            query = AuditQuery()
            while trail := (await source.audit_events(query, events, COPY_BATCH)).items:
                events += await target.copy_events(trail)
        return tokens, events

    tokens, events = asyncio.run(run())
    print(
        f"copied {tokens} token(s) and {events} audit event(s) from {_redacted(args.source)}"
        f" to {_redacted(args.target)}"
    )
    return 0


def _redacted(url: str) -> str:
    """A store URL fit for a terminal: the password replaced."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


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


def _audit(args: argparse.Namespace) -> int:
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


def _tokens_list(args: argparse.Namespace) -> int:
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


def _tokens_create(args: argparse.Namespace) -> int:
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
            raise UpstreamUnavailable(
                f"cannot check the token policy for {owner.name}: {exc.message}"
            ) from exc
        if found is None:
            raise NotFound(f"no user has the user key {owner.key!r}")
        raise BadRequest(f"the user key {owner.key} is {found.name}'s, not {owner.name}'s")

    try:
        yield groups_of
    finally:
        pool.close()


def _tokens_revoke(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run() -> bool:
        async with opened(config.store) as store:
            return await store.delete(args.token_id, _cli_action())

    if not asyncio.run(run()):
        print(f"apitokenproxy: no token with id {args.token_id}", file=sys.stderr)
        return 1
    print(f"token {args.token_id} revoked")
    return 0


def _tokens_revoke_all(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def run() -> int:
        async with opened(config.store) as store:
            return len(await store.delete_all_for(args.user_key, _cli_action()))

    print(f"{asyncio.run(run())} token(s) of {args.user_key} revoked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
