"""Serving the application on a socket: the fast lane in front of aiohttp's handler.

``start_site`` listens (the fast lane first, aiohttp for what it hands on,
``proxy/handoff.py``);
``run_until_signalled`` serves until SIGTERM or SIGINT, then stops
accepting, lets in-flight requests finish (up to ``SHUTDOWN_SECONDS``),
flushes ``lastAccessed`` and closes the store; a stop signal repeated
meanwhile changes nothing. Worker processes are ``supervisor.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .app import COMPONENTS, create_metrics_app
from .config import TlsConfig
from .errors import ProxyError, StartupError
from .proxy.fastlane import FastLane, FrontConnection
from .proxy.handoff import HandOff, recording
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


class GatewayRunner(web.AppRunner):
    """The application, served on a listening socket of the runner's own.

    aiohttp's ``AppRunner`` sets the application up and tears it down; the
    socket is opened here with ``loop.create_server``, its connections made by
    the fast lane (``proxy/fastlane.py``) or, without it, by the aiohttp lane's
    ``HandOff`` (``proxy/handoff.py``), so no aiohttp site or private state is
    reached into.
    """

    def __init__(self, app: web.Application, *, access_log: logging.Logger, **kwargs: Any) -> None:
        super().__init__(app, access_log=access_log, **kwargs)
        self._access_log = access_log  # the aiohttp lane's connections are made here
        self.fast: FastLane | None = None
        self.handoff: HandOff | None = None
        self.tls: ssl.SSLContext | None = None  # the listening socket's, reloadable
        self.metrics: web.AppRunner | None = None  # metrics.port's, if set
        self._listener: asyncio.Server | None = None

    @property
    def addresses(self) -> list[Any]:
        if self._listener is None:
            return []
        return [sock.getsockname() for sock in self._listener.sockets]

    async def listen(self, host: str, port: int, *, fast: FastLane | None, **options: Any) -> None:
        """Accept connections on ``host``:``port`` (``options``: ``loop.create_server``'s)."""
        components = self.app[COMPONENTS]
        server = self.server
        assert server is not None, "set up first"
        handoff = self.handoff = HandOff(
            server,
            components.live,
            access_log=self._access_log,
            access_log_class=recording(components.recorder),
        )
        self.fast = fast
        factory: Callable[[], asyncio.Protocol] = handoff
        if fast is not None:
            lane = fast

            def factory() -> asyncio.Protocol:
                return FrontConnection(lane, handoff)

        self._listener = await asyncio.get_running_loop().create_server(
            factory, host, port, **options
        )

    async def cleanup(self) -> None:
        """Stop accepting, let requests in flight finish (up to ``SHUTDOWN_SECONDS``),
        then let aiohttp close what is left and the application's resources go."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.fast is not None:
            self.fast.close_idle()
        await self._finish_in_flight(SHUTDOWN_SECONDS)
        if self.fast is not None:
            self.fast.abort_all()
        if self.metrics is not None:
            await self.metrics.cleanup()
            self.metrics = None
        await super().cleanup()

    async def _finish_in_flight(self, grace: float) -> None:
        waits = []
        if self.fast is not None:
            waits.append(self.fast.drained())
        if self.handoff is not None:
            waits.append(self.handoff.in_flight.drained())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), grace)


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
    try:
        tls = runner.tls = listen_tls(config.listen.tls)
        await runner.listen(
            host,
            port,
            fast=components.fast_lane if config.proxy.fast_path else None,
            reuse_port=reuse_port or None,
            backlog=BACKLOG,
            ssl=tls,
        )
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
