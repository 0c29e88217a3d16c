"""The application factory: configuration in, a wired aiohttp application out.

Following one request: ``errors_middleware`` guarantees a JSON answer;
``tokenapi/`` serves the token-management paths (``auth/`` decides who
calls, ``tokenapi/service.py`` applies the rules, ``store/`` remembers);
the browser pages (``pages/``) answer under ``pages.path``; every other
path goes to ``proxy/forwarder.py``. Health and readiness answer
under ``/__apitokenproxy/``, a prefix no Jira or Confluence path uses. In
production, plain requests never reach this application: the fast lane
(``proxy/fastlane.py``) serves them with the same gate, header rules and
upstream pool, and asks ``served_here`` which paths to hand on.

Resources live in one ``Components`` object (``components.py``), opened and
closed by one ``cleanup_ctx`` generator and kept under one AppKey.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from .auth.identity import IdentityProvider
from .components import Clock, Components, now_ms
from .config import Config, PagesConfig
from .errors import Forbidden, NotFound, ProxyError, StoreUnavailable, closing, error_response
from .networks import Networks, parse_networks
from .ops.accesslog import loggable_path
from .ops.exchange import Exchange, exchange_of
from .ops.requestid import HEADER as REQUEST_ID
from .proxy.client import came_through_a_proxy, client_of
from .proxy.handoff import ANSWERING, LaneConnection
from .proxy.headers import list_items
from .proxy.heads import refusal
from .tokenapi.routes import BASE_PATH, MAX_BODY_BYTES, ROUTES

log = logging.getLogger(__name__)

HEALTH_PREFIX = "/__apitokenproxy"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COMPONENTS: web.AppKey[Components] = web.AppKey("components", Components)


def served_here(path: str) -> bool:
    """Whether the application itself may answer ``path``: the token API, health or pages.

    Asked by the fast lane, which hands such requests on. Deliberately wide
    (any case, anywhere in the path): aiohttp decodes and matches paths its
    own way, and a request wrongly handed on costs only speed.
    """
    lowered = path.lower()
    return _API_MARK in lowered or _HEALTH_MARK in lowered


def served_here_with(pages: PagesConfig) -> Callable[[str], bool]:
    """``served_here``, and the pages' path when they are on."""
    if not pages.enabled:
        return served_here
    mark = pages.path.lower()

    # Asked for every request on the fast lane: one lowering, three substring tests.
    def here(path: str) -> bool:
        lowered = path.lower()
        return _API_MARK in lowered or _HEALTH_MARK in lowered or mark in lowered

    return here


_API_MARK = BASE_PATH.split("/")[2].lower()
_HEALTH_MARK = HEALTH_PREFIX.strip("/").lower()


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes the one JSON error shape; no stack trace leaves the process.

    Each request first gets its exchange record (``ops/exchange.py``): its id,
    its client, and later a refusal's reason, for its access-log line. The aiohttp
    lane's connection hears that a request is in flight (``proxy/handoff.py``).
    """
    record = exchange_of(request)
    components = request.app.get(COMPONENTS)
    if components is not None:
        record.client = client_of(request, components.forwarder.trusted).address
    connection = request.protocol
    if not isinstance(connection, LaneConnection):
        return await _answer(request, handler, record)
    connection.request_began()
    try:
        return await _answer(request, handler, record)
    finally:
        connection.request_ended()


async def _answer(request: web.Request, handler: Handler, record: Exchange) -> web.StreamResponse:
    try:
        _check_head(request)
        return await handler(request)
    except ProxyError as exc:
        if exc.reason is not None and record.auth != "refused":
            record.authenticated("refused", exc.reason, None, None)
        if exc.status >= 500:
            path = loggable_path(request.raw_path)
            log.warning("%s %s -> %d: %s", request.method, path, exc.status, exc.message)
        response = exc.to_response()
        return closing(response) if exc.closes else response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _slug(exc.reason), _explain_http(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, loggable_path(request.raw_path))
        return error_response(500, "internal_error", "internal error; see the proxy's log")


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries the request's id, the proxy's errors as much as the upstream's;
    from here on, an error can only cut the connection (``proxy/handoff.py``)."""
    response.headers[REQUEST_ID] = exchange_of(request).request_id
    request[ANSWERING] = True


def _check_head(request: web.BaseRequest) -> None:
    """The heads no lane serves (``proxy/heads.py``), refused here as the fast lane does."""
    version = f"{request.version.major}.{request.version.minor}"
    hosts = len(request.headers.getall("Host", ()))
    codings = [c.lower() for c in list_items(request.headers.getall("Transfer-Encoding", ()))]
    refused = refusal(version, hosts, codings)
    if refused is not None:
        raise refused


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
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY_BYTES)

    async def components(app: web.Application) -> AsyncIterator[None]:
        async with Components.opened(
            config, identity=identity, clock=clock, served_here=served_here_with(config.pages)
        ) as opened:
            app[COMPONENTS] = opened
            yield

    app.cleanup_ctx.append(components)
    app.on_response_prepare.append(_add_request_id)
    app.router.add_get(HEALTH_PREFIX + "/health", health)
    app.router.add_get(HEALTH_PREFIX + "/ready", ready)
    # Answered here in every case, never forwarded: elsewhere (metrics.port) or off is a 404.
    served = config.metrics.enabled and not config.metrics.port
    app.router.add_get(METRICS_PATH, _metrics(config, own_port=False) if served else no_metrics)
    # For sites that already run nginx, Traefik, Caddy or Envoy (proxy/forwardauth.py).
    app.router.add_route("*", HEALTH_PREFIX + "/auth", forward_auth)
    context = urlsplit(config.upstream.url).path.rstrip("/")
    if config.pages.enabled:
        pages = context + config.pages.path
        for path in (pages, pages + "/"):
            app.router.add_get(path, _pages("mine"))
        app.router.add_get(pages + "/manager", _pages("manager"))
        app.router.add_get(pages + "/static/{name}", _pages("asset"))
        # The whole path is the proxy's: nothing below it reaches the upstream.
        app.router.add_route("*", pages + "/{tail:.*}", unknown_page)
    base = context + BASE_PATH
    for method, path, name in ROUTES:
        app.router.add_route(method, base + path, _token_api(name))
    app.router.add_route("*", base + "/{tail:.*}", unknown_api_path)
    app.router.add_route("*", "/{tail:.*}", forward, expect_handler=expect_forward)
    return app


def _token_api(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        method: Handler = getattr(request.app[COMPONENTS].token_api, name)
        return await method(request)

    handler.__name__ = name
    return handler


def _pages(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        method: Handler = getattr(request.app[COMPONENTS].pages, name)
        return await method(request)

    handler.__name__ = f"pages_{name}"
    return handler


async def forward_auth(request: web.Request) -> web.StreamResponse:
    return await request.app[COMPONENTS].forward_auth.handle(request)


async def forward(request: web.Request) -> web.StreamResponse:
    return await request.app[COMPONENTS].forwarder.handle(request)


async def expect_forward(request: web.Request) -> web.StreamResponse | None:
    return await request.app[COMPONENTS].forwarder.expect(request)


METRICS_PATH = HEALTH_PREFIX + "/metrics"


def _metrics(config: Config, *, own_port: bool) -> Handler:
    """Every worker's metrics, summed, for a peer in ``metrics.allow``.

    On the proxy's own port, never to a request that came through a front
    proxy (``came_through_a_proxy``: it carries X-Forwarded-For or the like): a
    front proxy on the host connects from loopback, which the default allow
    list admits, on behalf of anyone.
    ``metrics.port`` (``own_port``) is the monitoring port: its allow list alone decides.
    """
    allow: Networks = parse_networks(config.metrics.allow)

    async def metrics(request: web.Request) -> web.Response:
        components = request.app[COMPONENTS]
        if not allow.holds(request.remote or "unknown"):
            raise Forbidden("the metrics may be read only from the addresses in metrics.allow")
        if not own_port and came_through_a_proxy(request.headers):
            raise Forbidden(
                "the metrics are not served through a front proxy; scrape the proxy's "
                "port directly, or serve them on a port of their own (metrics.port)"
            )
        body, content_type = components.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    return metrics


async def no_metrics(request: web.Request) -> web.Response:
    raise NotFound("the metrics are not served on this port")


def create_metrics_app(components: Components) -> web.Application:
    """The application of ``metrics.port``: the metrics and nothing else."""
    app = web.Application(middlewares=[errors_middleware])
    app[COMPONENTS] = components
    app.router.add_get(METRICS_PATH, _metrics(components.config, own_port=True))
    return app


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    try:
        await request.app[COMPONENTS].store.ping()
    except StoreUnavailable as exc:
        return error_response(503, "not_ready", exc.message)
    return web.json_response({"status": "ready"})


async def unknown_page(request: web.Request) -> web.Response:
    raise NotFound(f"no page at {request.path}")


async def unknown_api_path(request: web.Request) -> web.Response:
    raise NotFound(f"the token API has no {request.method} {request.path}")
