"""Everything one worker process runs on, opened in one place and closed in reverse.

``Components.opened`` is the composition root. Each resource is one small
context on one exit stack, in the order they open: the store, the argon2
pool, the WebSocket session, the one upstream pool, the access log's
flush, then the background jobs (``lastAccessed`` writes, the metrics
flush, the audit trail's retention, the revocation watcher, the expiry
warnings when ``notify`` names a channel). ``_wired`` builds the parts that
own nothing (the verifier and gate, the token API, both lanes), each handed
what it needs, the reloadable settings as one ``live.Live``. On the way out
the jobs stop (``lastAccessed`` written last), then the pool and the store
close.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast
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
from .config import Config, StoreConfig
from .live import Live
from .notify.channel import Channel
from .notify.mail import MailChannel
from .notify.notifier import ExpiryNotifier
from .notify.webhook import WebhookChannel
from .ops.accesslog import AccessLog
from .ops.exchange import Recorder
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
    live: Live  # the settings a reload swaps (reload.py)
    store: TokenStore
    pool: UpstreamPool
    last_accessed: LastAccessed
    access_log: AccessLog
    metrics: Metrics
    recorder: Recorder  # both lanes' finished exchanges, to the access log and the metrics
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
        ``served_here`` says which paths the application serves itself.

        Each resource is one context entered on one stack: they close in reverse
        order, those already open too when a later one fails to open.
        """
        async with contextlib.AsyncExitStack() as stack:
            live = Live.of(config)
            raw_store = await stack.enter_async_context(opened_store(config.store))
            listener = raw_store.listener_up
            sources = Sources(
                listener_up=(lambda: bool(listener())) if listener() is not None else None
            )
            metrics = Metrics(sources)
            store = cast(TokenStore, MeasuredStore(raw_store, metrics))
            hasher = stack.enter_context(
                contextlib.closing(
                    SecretHasher(
                        workers=config.auth.hash_workers,
                        max_pending=config.auth.max_pending_verifications,
                    )
                )
            )
            websockets = await stack.enter_async_context(
                aiohttp.ClientSession(
                    # Bodies pass through as the upstream sent them, compressed or not.
                    auto_decompress=False,
                    # One session serves every user: it must never keep cookies.
                    cookie_jar=aiohttp.DummyCookieJar(),
                    skip_auto_headers=SKIP_AUTO_HEADERS,
                )
            )
            upstream = config.upstream
            pool = stack.enter_context(
                contextlib.closing(
                    pool_for(
                        upstream.url,
                        limit=upstream.max_connections,
                        ca_file=upstream.ca_file,
                        verify_tls=upstream.verify_tls,
                        live=live,
                    )
                )
            )
            access_log = AccessLog(live)
            stack.callback(access_log.flush)
            components = _wired(
                config, live, store, hasher, websockets, pool, access_log, metrics,
                identity=identity, clock=clock, served_here=served_here,
            )  # fmt: skip
            verifier = components.verifier
            last_accessed = components.last_accessed
            sources.cache_hits = lambda: verifier.hits
            sources.cache_misses = lambda: verifier.misses
            sources.cache_entries = lambda: verifier.cached
            sources.argon2 = lambda: (hasher.verified, hasher.queued, hasher.seconds)
            sources.upstream_in_use = lambda: pool.in_use
            sources.upstream_failures = lambda: pool.failures
            sources.flush_age = last_accessed.age
            await stack.enter_async_context(running(last_accessed))
            await stack.enter_async_context(running(metrics))
            await stack.enter_async_context(running(components.retention))
            await stack.enter_async_context(
                watching(store.watch(verifier.forget, verifier.forget_all), "revocations")
            )
            notifier = components.notifier
            if notifier is not None:
                sources.expiry_warnings = lambda: notifier.counts
                await stack.enter_async_context(running(notifier))
            yield components


class Service(Protocol):
    """A background job that is started, and stopped (it may write out what it holds)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[None]:
    service.start()
    try:
        yield
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def watching(job: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """``job`` in a task for as long as the context lasts (it runs until cancelled)."""
    task = asyncio.create_task(job, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def opened_store(config: StoreConfig) -> AsyncIterator[TokenStore]:
    store = await open_configured(config)
    try:
        yield store
    finally:
        await store.close()


def _wired(
    config: Config,
    live: Live,
    store: TokenStore,
    hasher: SecretHasher,
    websockets: aiohttp.ClientSession,
    pool: UpstreamPool,
    access_log: AccessLog,
    metrics: Metrics,
    *,
    identity: IdentityProvider | None,
    clock: Clock,
    served_here: Callable[[str], bool],
) -> Components:
    """The parts that own no resource, each handed what it needs (nothing is started)."""
    upstream = config.upstream
    last_accessed = LastAccessed(store, config.proxy.last_accessed_flush_seconds)
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
        FailureThrottle(live, shared=store),
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
    authenticator = Authenticator(
        verifier, provider, config.auth, as_user=injection.identity, live=live
    )
    networks = authenticator.networks
    gate = Gate(verifier, allow_password=config.auth.allow_password_basic_auth, networks=networks)
    service = TokenService(store, hasher, authenticator, provider, verifier, live, clock)
    context_path = urlsplit(upstream.url).path.rstrip("/")
    token_api = TokenApi(
        service,
        authenticator,
        live,
        context_path=context_path,
        public_url=config.listen.public_url.rstrip("/"),
    )
    recorder = Recorder(access_log, metrics)
    return Components(
        config=config,
        live=live,
        store=store,
        pool=pool,
        last_accessed=last_accessed,
        access_log=access_log,
        metrics=metrics,
        recorder=recorder,
        retention=AuditRetention(store, config.audit.retention_days, clock),
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
        forwarder=Forwarder(pool, websockets, gate, injection, config, live),
        forward_auth=ForwardAuth(gate, injection, live),
        fast_lane=FastLane(
            gate=gate,
            injection=injection,
            pool=pool,
            live=live,
            served_here=served_here,
            recorder=recorder,
        ),
        networks=networks,
        notifier=_notifier(config, store, clock, provider, authenticator),
    )


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
