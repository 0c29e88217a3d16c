"""Everything one worker process runs on, opened in one place and closed in reverse.

``Components.opened`` is the composition root: it builds the store, the
argon2 pool, the one upstream pool, the verifier and gate, the token API,
both lanes and the audit trail's retention, each handed what it needs
explicitly, starts the expiry warnings when ``notify`` names a channel, and
on the way out stops taking uses, flushes ``lastAccessed`` and the access
log, and closes the upstream connections and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import aiohttp

from .auth.callers import Authenticator
from .auth.emails import OwnerEmails
from .auth.gate import Gate
from .auth.hashing import SecretHasher
from .auth.identity import ActingAs, IdentityProvider, UpstreamIdentity, User
from .auth.networks import AllowedNetworks
from .auth.throttle import FailureThrottle
from .auth.verifier import TokenVerifier
from .config import Config
from .live import ClientTimeouts
from .networks import parse_networks
from .notify.channel import Channel
from .notify.mail import MailChannel
from .notify.notifier import ExpiryNotifier
from .notify.webhook import WebhookChannel
from .ops.accesslog import AccessLog
from .ops.metrics import MeasuredStore, Metrics, Sources
from .pages.site import Pages
from .proxy.fastlane import FastLane
from .proxy.forwardauth import ForwardAuth
from .proxy.forwarder import SKIP_AUTO_HEADERS, Forwarder
from .proxy.headers import Injection
from .proxy.pool import UpstreamPool, pool_for
from .store import TokenRecord, TokenStore, open_configured
from .store.lastaccessed import LastAccessed
from .store.retention import AuditRetention
from .tokenapi.routes import TokenApi
from .tokenapi.service import TokenService

Clock = Callable[[], int]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Components:
    config: Config
    store: TokenStore
    pool: UpstreamPool
    last_accessed: LastAccessed
    access_log: AccessLog
    metrics: Metrics
    retention: AuditRetention
    verifier: TokenVerifier
    token_api: TokenApi
    forwarder: Forwarder
    fast_lane: FastLane
    forward_auth: ForwardAuth
    networks: AllowedNetworks
    notifier: ExpiryNotifier | None
    pages: Pages

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(
        cls,
        config: Config,
        *,
        identity: IdentityProvider | None = None,
        clock: Clock = now_ms,
        served_here: Callable[[str], bool],
    ) -> AsyncIterator[Components]:
        """Open every resource; ``identity`` replaces the upstream's REST API (tests, demo);
        ``served_here`` says which paths the application serves itself."""
        async with contextlib.AsyncExitStack() as stack:
            raw_store = await open_configured(config.store)
            stack.push_async_callback(raw_store.close)

            def listening() -> bool:
                return bool(getattr(raw_store, "listening", False))

            # Only PostgreSQL has a revocation listener; SQLite polls.
            sources = Sources(listener_up=listening if hasattr(raw_store, "listening") else None)
            metrics = Metrics(sources)
            store = cast(TokenStore, MeasuredStore(raw_store, metrics))
            hasher = SecretHasher(
                workers=config.auth.hash_workers, max_pending=config.auth.max_pending_verifications
            )
            stack.callback(hasher.close)
            upstream = config.upstream
            websockets = aiohttp.ClientSession(
                # Bodies pass through as the upstream sent them, compressed or not.
                auto_decompress=False,
                # One session serves every user: it must never keep cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=SKIP_AUTO_HEADERS,
            )
            stack.push_async_callback(websockets.close)
            # Read live by both lanes and the pool; a reload updates them in place.
            timeouts = ClientTimeouts.from_config(config.listen)
            pool = pool_for(
                upstream.url,
                limit=upstream.max_connections,
                connect_timeout=upstream.connect_timeout_seconds,
                read_timeout=upstream.read_timeout_seconds,
                ca_file=upstream.ca_file,
                verify_tls=upstream.verify_tls,
                per_client=upstream.max_connections_per_client,
                timeouts=timeouts,
            )
            stack.callback(pool.close)
            access_log = AccessLog(config.logging.access_log, format=config.logging.format)
            stack.callback(access_log.flush)
            last_accessed = LastAccessed(store, config.proxy.last_accessed_flush_seconds)
            retention = AuditRetention(store, config.audit.retention_days, clock)
            throttle = config.auth.throttle
            injection = Injection.from_config(upstream)
            provider = identity or UpstreamIdentity(
                pool.fetch,
                upstream.url,
                upstream.product,
                admin_groups=config.auth.admin_groups,
                timeout_seconds=upstream.identity_timeout_seconds,
            )

            async def owner_of(record: TokenRecord) -> User | None:
                # Asked as the owner, through the trusted header, as the data path would.
                acting = ActingAs(dict(injection.identity(record.owner_name)))
                return await provider.find_user(record.owner_key, acting)

            async def owner_email(record: TokenRecord) -> str | None:
                found = await owner_of(record)
                return None if found is None else found.email

            verifier = TokenVerifier(
                store,
                hasher,
                last_accessed,
                clock,
                FailureThrottle(
                    throttle.max_failures,
                    throttle.window_seconds,
                    throttle.max_tracked,
                    shared=store,
                ),
                cache_seconds=config.auth.token_cache_seconds,
                cache_size=config.auth.token_cache_size,
                emails=OwnerEmails(
                    owner_email,
                    ttl_seconds=config.auth.password_cache_seconds,
                    size=config.auth.token_cache_size,
                ),
                owner_of=owner_of,
                # Suspect sources share at most half the argon2 threads (one at least).
                suspect_checks=max(1, config.auth.hash_workers // 2),
            )
            networks = AllowedNetworks(config.auth.allowed_networks)
            authenticator = Authenticator(
                verifier, provider, config.auth, as_user=injection.identity, networks=networks
            )
            trusted = parse_networks(config.proxy.trusted_proxies)
            gate = Gate(
                verifier, allow_password=config.auth.allow_password_basic_auth, networks=networks
            )
            service = TokenService(
                store, hasher, authenticator, provider, verifier, config.tokens, clock
            )
            context_path = urlsplit(upstream.url).path.rstrip("/")
            token_api = TokenApi(
                service,
                authenticator,
                trusted,
                context_path=context_path,
                public_url=config.listen.public_url.rstrip("/"),
                timeouts=timeouts,
            )
            sources.cache_hits = lambda: verifier.hits
            sources.cache_misses = lambda: verifier.misses
            sources.cache_entries = lambda: verifier.cached
            sources.argon2 = lambda: (hasher.verified, hasher.queued, hasher.seconds)
            sources.upstream_in_use = lambda: pool.in_use
            sources.upstream_failures = lambda: pool.failures
            sources.flush_age = last_accessed.age
            components = cls(
                config=config,
                store=store,
                pool=pool,
                last_accessed=last_accessed,
                access_log=access_log,
                metrics=metrics,
                retention=retention,
                verifier=verifier,
                token_api=token_api,
                pages=Pages(
                    authenticator,
                    config.pages,
                    product=upstream.product,
                    context_path=context_path,
                    # Read at each page view: a reload changes the limits live.
                    tokens=lambda: service.config,
                    own_origin=token_api.own_origin,
                ),
                forwarder=Forwarder(pool, websockets, gate, injection, config, trusted, timeouts),
                forward_auth=ForwardAuth(gate, injection, trusted),
                fast_lane=FastLane(
                    gate=gate,
                    injection=injection,
                    pool=pool,
                    trusted=trusted,
                    served_here=served_here,
                    timeouts=timeouts,
                    access_log=access_log,
                    metrics=metrics,
                ),
                networks=networks,
                notifier=_notifier(config, store, clock, provider, authenticator),
            )
            last_accessed.start()
            stack.push_async_callback(last_accessed.stop)
            metrics.start()
            stack.push_async_callback(metrics.stop)
            retention.start()
            stack.push_async_callback(retention.stop)
            watcher = asyncio.create_task(
                store.watch(verifier.forget, verifier.forget_all), name="revocations"
            )
            stack.push_async_callback(_stopped, watcher)
            if components.notifier is not None:
                notifier = components.notifier
                sources.expiry_warnings = lambda: notifier.counts
                warnings = asyncio.create_task(notifier.run(), name="expiry warnings")
                stack.push_async_callback(_stopped, warnings)
            yield components


def _notifier(
    config: Config,
    store: TokenStore,
    clock: Clock,
    provider: IdentityProvider,
    authenticator: Authenticator,
) -> ExpiryNotifier | None:
    """The expiry warnings, if ``notify`` names a channel."""
    notify = config.notify
    channels: list[Channel] = []
    if notify.smtp.host:

        async def email_of(user_name: str) -> str | None:
            return await provider.email(authenticator.acting_for(user_name))

        channels.append(MailChannel(notify.smtp, email_of))
    if notify.webhook.url:
        channels.append(WebhookChannel(notify.webhook, clock))
    return ExpiryNotifier(store, notify, clock, channels) if channels else None


async def _stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
