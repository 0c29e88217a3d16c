"""Running the application: one process, or several sharing a port.

With ``listen.workers`` above 1 the parent starts that many worker processes,
each binding the same port with ``SO_REUSEPORT`` so the kernel spreads
connections across them; they share only the store. On SIGTERM or SIGINT
every process stops accepting, lets in-flight requests finish (up to
``SHUTDOWN_SECONDS``), flushes ``lastAccessed`` and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable

from aiohttp import web

from .app import create_app
from .config import Config
from .identity import IdentityProvider

log = logging.getLogger("apitokenproxy")

SHUTDOWN_SECONDS = 30.0


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    )


def install_uvloop() -> bool:
    """Use uvloop where installed (``pip install apitokenproxy[speed]``)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def run_until_signalled(
    app: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    access_log: bool = True,
    started: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then shut down cleanly."""
    runner = web.AppRunner(
        app,
        shutdown_timeout=SHUTDOWN_SECONDS,
        access_log=logging.getLogger("apitokenproxy.access") if access_log else None,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        if started is not None:
            started(_bound_port(runner, port))
        await stop.wait()
        log.info("shutting down: finishing in-flight requests and flushing writes")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return fallback


def serve(config: Config, identity: IdentityProvider | None = None) -> None:
    """Run in the foreground until signalled; several worker processes if configured."""
    if config.listen.workers == 1:
        _run_worker(config, identity, reuse_port=False)
        return
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_run_worker, args=(config, identity, True), name=f"worker-{i}")
        for i in range(config.listen.workers)
    ]
    for process in workers:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in workers:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in workers:
        process.join()


def _run_worker(config: Config, identity: IdentityProvider | None, reuse_port: bool) -> None:
    setup_logging(config.logging.level)
    fast = install_uvloop()
    app = create_app(config, identity=identity)

    def started(port: int) -> None:
        log.info(
            "listening on %s:%d%s, forwarding to %s (%s)",
            config.listen.host,
            port,
            " with uvloop" if fast else "",
            config.upstream.url,
            config.upstream.product,
        )

    asyncio.run(
        run_until_signalled(
            app,
            config.listen.host,
            config.listen.port,
            reuse_port=reuse_port,
            access_log=config.logging.access_log,
            started=started,
        )
    )
