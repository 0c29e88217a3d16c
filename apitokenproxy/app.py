"""The application factory: configuration in, a wired aiohttp application out.

Following one request: ``errors_middleware`` guarantees a JSON answer,
``api.py`` serves the token-management paths (``authentication.py`` decides
who calls, ``service.py`` applies the rules, ``store/`` remembers), and every
other path goes to ``proxy/forwarder.py``. Health and readiness answer under
``/__apitokenproxy/``, a prefix no Jira or Confluence path uses. In
production, plain requests never reach this application at all:
``proxy/fastlane.py`` serves them with the same gate, header rules and
upstream pool, and hands everything else here (see ``server.py``).

Every resource is acquired and released in one ``cleanup_ctx`` generator, so
shutdown runs in reverse order: stop taking uses, flush ``lastAccessed``,
close the HTTP client, then the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from . import api
from .access import AccessLog
from .authentication import Authenticator, TokenVerifier
from .config import Config
from .errors import NotFound, ProxyError, StoreUnavailable, error_response
from .forwarding import TRUSTED_PROXIES, parse_networks
from .gate import Gate
from .hashing import SecretHasher
from .headers import Injection
from .identity import IdentityProvider, UpstreamIdentity
from .proxy.fastlane import FastLane
from .proxy.forwarder import SKIP_AUTO_HEADERS, Forwarder
from .proxy.requestlog import RequestLog
from .proxy.upstream import pool_for
from .service import TokenService
from .store import TokenStore, open_configured
from .throttle import FailureThrottle

log = logging.getLogger(__name__)

HEALTH_PREFIX = "/__apitokenproxy"
# Lower-case path fragments routed to this application's own handlers; the
# fast lane hands any request whose path contains one to aiohttp.
ROUTED_ELSEWHERE = (api.BASE_PATH.split("/")[2].lower(), HEALTH_PREFIX.strip("/").lower())

Clock = Callable[[], int]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
STORE: web.AppKey[TokenStore] = web.AppKey("store", TokenStore)
VERIFIER: web.AppKey[TokenVerifier] = web.AppKey("verifier", TokenVerifier)
ACCESS: web.AppKey[AccessLog] = web.AppKey("access", AccessLog)
FORWARDER: web.AppKey[Forwarder] = web.AppKey("forwarder", Forwarder)
GATE: web.AppKey[Gate] = web.AppKey("gate", Gate)
FAST_LANE: web.AppKey[FastLane] = web.AppKey("fast_lane", FastLane)
REQUESTS: web.AppKey[RequestLog] = web.AppKey("requests", RequestLog)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes the one JSON error shape; no stack trace leaves the process."""
    try:
        return await handler(request)
    except ProxyError as exc:
        if exc.status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.path, exc.status, exc.message)
        return exc.to_response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _slug(exc.reason), _explain_http(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; see the proxy's log")


def _slug(reason: str) -> str:
    return reason.lower().replace(" ", "_")


def _explain_http(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "no such resource"
    if exc.status == 405:
        return "method not allowed on this resource"
    if exc.status == 413:
        return "the request body is too large"
    return exc.reason


def create_app(
    config: Config,
    *,
    identity: IdentityProvider | None = None,
    clock: Clock = now_ms,
) -> web.Application:
    """Build the proxy. ``identity`` replaces the upstream's REST API (tests, demo)."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=api.MAX_BODY_BYTES)
    app[CONFIG] = config
    context_path = urlsplit(config.upstream.url).path.rstrip("/")
    app[api.CONTEXT_PATH] = context_path
    app[api.PUBLIC_URL] = config.listen.public_url.rstrip("/")
    app[TRUSTED_PROXIES] = parse_networks(config.proxy.trusted_proxies)
    app.cleanup_ctx.append(_components(config, identity, clock))
    app.router.add_get(HEALTH_PREFIX + "/health", health)
    app.router.add_get(HEALTH_PREFIX + "/ready", ready)
    api.add_routes(app, context_path)
    app.router.add_route("*", context_path + api.BASE_PATH + "/{tail:.*}", unknown_api_path)
    app.router.add_route("*", "/{tail:.*}", forward, expect_handler=expect_forward)
    return app


async def forward(request: web.Request) -> web.StreamResponse:
    return await request.app[FORWARDER].handle(request)


async def expect_forward(request: web.Request) -> web.StreamResponse | None:
    return await request.app[FORWARDER].expect(request)


def _components(
    config: Config, identity: IdentityProvider | None, clock: Clock
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def build(app: web.Application) -> AsyncIterator[None]:
        store = await open_configured(config.store)
        hasher = SecretHasher(
            workers=config.auth.hash_workers, max_pending=config.auth.max_pending_verifications
        )
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.upstream.max_connections),
            # Bodies pass through as the upstream sent them, compressed or not.
            auto_decompress=False,
            # One session serves every user: it must never keep cookies.
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=SKIP_AUTO_HEADERS,
        )
        pool = pool_for(
            config.upstream.url,
            limit=config.upstream.max_connections,
            connect_timeout=config.upstream.connect_timeout_seconds,
            read_timeout=config.upstream.read_timeout_seconds,
        )
        requests = RequestLog(config.logging.access_log)
        access = AccessLog(store, config.proxy.last_accessed_flush_seconds)
        throttle = config.auth.throttle
        verifier = TokenVerifier(
            store,
            hasher,
            access,
            clock,
            FailureThrottle(
                throttle.max_failures, throttle.window_seconds, throttle.max_tracked, shared=store
            ),
            cache_seconds=config.auth.token_cache_seconds,
            cache_size=config.auth.token_cache_size,
        )
        provider = identity or UpstreamIdentity(
            pool,
            config.upstream.url,
            config.upstream.product,
            admin_groups=config.auth.admin_groups,
            timeout_seconds=config.upstream.identity_timeout_seconds,
        )
        authenticator = Authenticator(
            verifier,
            provider,
            config.auth,
            user_header=config.upstream.user_header,
            shared_secret_header=config.upstream.shared_secret_header,
            shared_secret=config.upstream.shared_secret,
            user_header_encoding=config.upstream.user_header_encoding,
        )
        app[STORE] = store
        app[VERIFIER] = verifier
        app[ACCESS] = access
        app[api.AUTHENTICATOR] = authenticator
        app[api.SERVICE] = TokenService(
            store, hasher, authenticator, provider, verifier, config.tokens, clock
        )
        gate = Gate(verifier, allow_password=config.auth.allow_password_basic_auth)
        injection = Injection.from_config(config.upstream)
        app[GATE] = gate
        app[REQUESTS] = requests
        app[FORWARDER] = Forwarder(pool, session, gate, injection, config)
        app[FAST_LANE] = FastLane(
            gate=gate,
            injection=injection,
            pool=pool,
            trusted=app[TRUSTED_PROXIES],
            routed_elsewhere=ROUTED_ELSEWHERE,
            header_timeout=config.listen.header_timeout_seconds,
            keepalive_timeout=config.listen.keepalive_timeout_seconds,
            requests=requests,
        )
        access.start()
        watcher = asyncio.create_task(
            store.watch(verifier.forget, verifier.forget_all), name="revocations"
        )
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await access.stop()
            requests.flush()
            pool.close()
            await session.close()
            await store.close()
            hasher.close()

    return build


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except StoreUnavailable as exc:
        return error_response(503, "not_ready", exc.message)
    return web.json_response({"status": "ready"})


async def unknown_api_path(request: web.Request) -> web.Response:
    raise NotFound(f"the token API has no {request.method} {request.path}")
