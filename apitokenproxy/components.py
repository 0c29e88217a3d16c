"""Everything one worker process runs on, opened in one place and closed in reverse.

``Components.opened`` is the composition root: it builds the store, the
argon2 pool, the one upstream pool, the verifier and gate, the token API,
both lanes and the audit trail's retention, each handed what it needs explicitly, and on the way out
stops taking uses, flushes ``lastAccessed`` and the access log, and closes
the upstream connections and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from .auth.callers import Authenticator
from .auth.gate import Gate
from .auth.hashing import SecretHasher
from .auth.identity import IdentityProvider, UpstreamIdentity
from .auth.throttle import FailureThrottle
from .auth.verifier import TokenVerifier
from .config import Config
from .ops.accesslog import AccessLog
from .proxy.client import parse_networks
from .proxy.fastlane import FastLane
from .proxy.forwardauth import ForwardAuth
from .proxy.forwarder import SKIP_AUTO_HEADERS, Forwarder
from .proxy.headers import Injection
from .proxy.upstream import UpstreamPool, pool_for
from .store import TokenStore, open_configured
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
    retention: AuditRetention
    verifier: TokenVerifier
    token_api: TokenApi
    forwarder: Forwarder
    fast_lane: FastLane
    forward_auth: ForwardAuth

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
            store = await open_configured(config.store)
            stack.push_async_callback(store.close)
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
            pool = pool_for(
                upstream.url,
                limit=upstream.max_connections,
                connect_timeout=upstream.connect_timeout_seconds,
                read_timeout=upstream.read_timeout_seconds,
                ca_file=upstream.ca_file,
                verify_tls=upstream.verify_tls,
            )
            stack.callback(pool.close)
            access_log = AccessLog(config.logging.access_log)
            stack.callback(access_log.flush)
            last_accessed = LastAccessed(store, config.proxy.last_accessed_flush_seconds)
            retention = AuditRetention(store, config.audit.retention_days, clock)
            throttle = config.auth.throttle
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
            )
            injection = Injection.from_config(upstream)
            provider = identity or UpstreamIdentity(
                pool.fetch,
                upstream.url,
                upstream.product,
                admin_groups=config.auth.admin_groups,
                timeout_seconds=upstream.identity_timeout_seconds,
            )
            authenticator = Authenticator(
                verifier, provider, config.auth, as_user=injection.identity
            )
            trusted = parse_networks(config.proxy.trusted_proxies)
            gate = Gate(verifier, allow_password=config.auth.allow_password_basic_auth)
            components = cls(
                config=config,
                store=store,
                pool=pool,
                last_accessed=last_accessed,
                access_log=access_log,
                retention=retention,
                verifier=verifier,
                token_api=TokenApi(
                    TokenService(
                        store, hasher, authenticator, provider, verifier, config.tokens, clock
                    ),
                    authenticator,
                    trusted,
                    context_path=urlsplit(upstream.url).path.rstrip("/"),
                    public_url=config.listen.public_url.rstrip("/"),
                ),
                forwarder=Forwarder(pool, websockets, gate, injection, config, trusted),
                forward_auth=ForwardAuth(gate, injection, trusted),
                fast_lane=FastLane(
                    gate=gate,
                    injection=injection,
                    pool=pool,
                    trusted=trusted,
                    served_here=served_here,
                    header_timeout=config.listen.header_timeout_seconds,
                    keepalive_timeout=config.listen.keepalive_timeout_seconds,
                    access_log=access_log,
                ),
            )
            last_accessed.start()
            stack.push_async_callback(last_accessed.stop)
            retention.start()
            stack.push_async_callback(retention.stop)
            watcher = asyncio.create_task(
                store.watch(verifier.forget, verifier.forget_all), name="revocations"
            )
            stack.push_async_callback(_stopped, watcher)
            yield components


async def _stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
