"""Serving the application on a socket: the fast lane in front of aiohttp's handler.

``start_site`` listens (the fast lane first, aiohttp for what it hands on);
``run_until_signalled`` serves until SIGTERM or SIGINT, then stops
accepting, lets in-flight requests finish (up to ``SHUTDOWN_SECONDS``),
flushes ``lastAccessed`` and closes the store; a stop signal repeated
meanwhile changes nothing. Worker processes are ``supervisor.py``'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import ssl
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from .app import COMPONENTS, create_metrics_app
from .components import Components
from .config import TlsConfig
from .errors import ProxyError, error_response
from .live import Live
from .ops.accesslog import OBSERVED, Observed
from .ops.requestid import HEADER as REQUEST_ID
from .ops.requestid import new_request_id
from .proxy.client import client_of
from .proxy.fastlane import FastLane, FastSite
from .proxy.framing import MALFORMED
from .reload import Reloader

log = logging.getLogger("apitokenproxy")

SHUTDOWN_SECONDS = 30.0
# Connections the kernel queues before the proxy accepts them. aiohttp's 128
# drops the rest of a burst (150 CI jobs starting at once), and a dropped SYN
# is retried only a second later.
BACKLOG = 2048


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    )


def install_uvloop() -> bool:
    """Use uvloop where it is installed (everywhere but Windows)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class GatewayRequestHandler(RequestHandler):
    """aiohttp's connection handler, with two changes a gateway needs.

    - Requests that do not parse as HTTP (smuggling attempts, oversized or
      folded headers) get the proxy's JSON error, and one log line without a
      traceback, so a flood of garbage cannot fill the log with stacks.
    - A connection that has not sent a complete request head within the
      header timeout is closed (slow-loris). Between requests, aiohttp's
      keep-alive timeout does the same. Both are read from ``live.Live`` when
      the connection opens, so a reload reaches every
      connection opened after it.
    - During shutdown, the body of a request in flight is still read, so an
      upload under way finishes instead of stalling.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Done when the client goes: the forwarder stops waiting for the upstream.
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._header_timeout = cast(GatewayServer, self._manager).live.now.client.header
        self._head_deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self._header_timeout, self._drop_if_silent
        )

    def _drop_if_silent(self) -> None:
        self._head_deadline = None
        if self._request_count == 0 and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            log.info("closing %s: no request head in %s s", peer, self._header_timeout)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if (self._force_close or self._close) and self._request_in_progress:
            # At shutdown aiohttp stops reading at once, which would stall an
            # upload in flight until the shutdown timeout; let its body in.
            flags = self._force_close, self._close
            self._force_close = self._close = False
            try:
                super().data_received(data)
            finally:
                self._force_close, self._close = flags
            return
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        if status >= 500:
            self.log_exception("error handling request from %s", request.remote, exc_info=exc)
            response = error_response(status, "internal_error", "internal error")
        else:
            # The parser's message quotes the offending bytes, which may be a
            # token or a password: neither the answer nor the log repeats it.
            log.info("refused malformed request from %s: %s", request.remote, type(exc).__name__)
            response = error_response(status, "malformed_request", MALFORMED)
        # A request that did not parse has no headers to decide its client from.
        observed = Observed(new_request_id(), client=request.remote or "unknown")
        request[OBSERVED] = observed
        response.headers[REQUEST_ID] = observed.request_id
        response.force_close()
        # Said out loud, as the fast lane says it: this answer ends the connection.
        response.headers["Connection"] = "close"
        return response


class GatewayServer(web.Server):
    def __init__(self, *args: Any, live: Live, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live = live

    def __call__(self) -> RequestHandler:
        options = {**self._kwargs, "keepalive_timeout": self.live.now.client.keepalive}
        return GatewayRequestHandler(self, loop=self._loop, **options)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections are handled by GatewayRequestHandler.

    aiohttp offers no hook for the connection handler's class, so the server
    it builds is rebuilt as a GatewayServer with the same handler and options.
    """

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.fast: FastLane | None = None
        self.tls: ssl.SSLContext | None = None  # the listening socket's, reloadable
        self.metrics: web.AppRunner | None = None  # metrics.port's, if set

    async def cleanup(self) -> None:
        if self.metrics is not None:
            await self.metrics.cleanup()
            self.metrics = None
        await super().cleanup()

    async def shutdown(self) -> None:
        # Sites are closed already; let fast-lane requests in flight finish
        # before the application's resources go.
        if self.fast is not None:
            await self.fast.shutdown(SHUTDOWN_SECONDS)
        await super().shutdown()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        kwargs = dict(server._kwargs)
        kwargs["access_log_class"] = _access_logger(self.app[COMPONENTS])
        return GatewayServer(
            server.request_handler,
            request_factory=server.request_factory,
            loop=asyncio.get_running_loop(),
            live=self.app[COMPONENTS].live,
            **kwargs,
        )


def _access_logger(components: Components) -> type[AbstractAccessLogger]:
    """aiohttp's access-log hook, writing the same lines as the fast lane."""
    requests = components.access_log
    metrics = components.metrics

    class RequestLogAdapter(AbstractAccessLogger):
        def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
            found = request.get(OBSERVED)
            observed = found or Observed(new_request_id())
            # aiohttp's own ``time`` comes from the event loop's clock: whole
            # milliseconds under uvloop. The record's stamp is finer.
            seconds = time if found is None else (perf_counter_ns() - found.started) / 1e9
            client = observed.client
            if client is None:
                client = client_of(cast(web.Request, request), components.forwarder.trusted).address
            requests.record(
                client,
                request.method,
                request.raw_path,
                response.status,
                "aiohttp",
                request.content.total_bytes,
                response.body_length,
                seconds,
                observed.upstream_seconds,
                observed.auth,
                observed.reason,
                observed.user,
                observed.token_id,
                observed.request_id,
            )
            metrics.request(
                "aiohttp",
                request.method,
                response.status,
                seconds,
                observed.upstream_seconds,
                observed.auth,
                observed.reason,
            )

    return RequestLogAdapter


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    access_log: bool = True,
) -> GatewayRunner:
    """Set up ``app`` and listen; the caller owns the runner and must clean it up."""
    runner = GatewayRunner(
        app,
        shutdown_timeout=SHUTDOWN_SECONDS,
        # Always given: the hook feeds the metrics too (components.access_log says
        # whether lines are written).
        access_log=logging.getLogger("apitokenproxy.access"),
    )
    await runner.setup()
    components = app[COMPONENTS]
    config = components.config
    if not access_log:
        # Until a reload says otherwise, as the configuration's logging.access_log would.
        components.live.swap(dataclasses.replace(components.live.now, access_log=False))
    site: web.TCPSite
    try:
        tls = runner.tls = listen_tls(config.listen.tls)
        options: dict[str, Any] = {
            "reuse_port": reuse_port or None,
            "backlog": BACKLOG,
            "ssl_context": tls,
        }
        if config.proxy.fast_path:
            runner.fast = components.fast_lane
            site = FastSite(runner, runner.fast, host=host, port=port, **options)
        else:
            site = web.TCPSite(runner, host, port, **options)
        await site.start()
        if config.metrics.enabled and config.metrics.port:
            runner.metrics = web.AppRunner(create_metrics_app(components), access_log=None)
            await runner.metrics.setup()
            await web.TCPSite(
                runner.metrics, host, config.metrics.port, reuse_port=reuse_port or None
            ).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def run_until_signalled(
    app: web.Application,
    host: str,
    port: int,
    *,
    started: Callable[[int], None] | None = None,
    config_path: str | None = None,
    **site_options: Any,
) -> None:
    """Serve ``app`` (see ``start_site`` for the options) until SIGTERM/SIGINT,
    then shut down cleanly; on SIGHUP, reload ``config_path`` (``reload.py``).

    The signals stay handled until the shutdown is done: another SIGTERM
    (a supervisor passing on the one its process group got) or SIGHUP would
    otherwise end the process before ``lastAccessed`` is written; SIGHUP stays
    ignored afterwards. A stop signal the process ignores (a worker's SIGINT)
    stays ignored.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_once(sig: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s: already shutting down", sig.name)
        stop.set()

    stops = [s for s in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(s) != signal.SIG_IGN]
    for sig in stops:
        loop.add_signal_handler(sig, stop_once, sig)
    loop.add_signal_handler(signal.SIGHUP, _hangup)
    runner: GatewayRunner | None = None
    try:
        try:
            runner = await start_site(app, host, port, **site_options)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(f"cannot listen on {host}:{port}: {reason}") from exc
        except ProxyError as exc:
            raise StartupError(exc.message) from exc
        if config_path is not None:
            components = app[COMPONENTS]
            reloader = Reloader(config_path, components.config, components.live, runner.tls)
            loop.add_signal_handler(signal.SIGHUP, reloader.reload)
        if started is not None:
            started(_bound_port(runner, port))
        await stop.wait()
        log.info("shutting down: finishing in-flight requests and flushing writes")
    finally:
        loop.add_signal_handler(signal.SIGHUP, _hangup_while_stopping)
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            for sig in (*stops, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            # SIGHUP never means "stop", though that is its default; a late
            # one (logrotate, a supervisor) must not turn a clean exit into a kill.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)


def listen_tls(tls: TlsConfig) -> ssl.SSLContext | None:
    """The server's TLS context when ``listen.tls`` is set (TLS 1.2 and later)."""
    if not tls.cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load listen.tls certificate {tls.cert_file}: {exc}") from exc
    return context


class StartupError(Exception):
    """The server cannot start (a port in use, a store it cannot open): one line, no trace."""


def _hangup() -> None:
    # Init systems and logrotate send SIGHUP; it must not stop the proxy, even
    # before it listens (or when it was started without a file to reload).
    log.warning("SIGHUP: no configuration file to reload")


def _hangup_while_stopping() -> None:
    log.info("SIGHUP: shutting down, nothing to reload")


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return fallback
