"""The process tree: one worker, or several sharing a port, kept running.

With more than one worker (``listen.workers``; 0 means one per usable CPU)
the parent starts that many processes, each binding the same port with
``SO_REUSEPORT`` so the kernel spreads connections across them; they share
only the store. The parent supervises them: a worker that dies is logged
and replaced after a back-off (1 s, doubling, at most 30 s); a worker that cannot
start (a port in use, a store it cannot open) stops them all; and if
workers keep dying (more than ``MAX_RESTARTS`` in ``RESTART_WINDOW``
seconds) the parent gives up. Either way the parent then exits non-zero,
with the reason on one line. Before the first worker starts, the parent
opens the store once (creating and migrating it) and closes it again, so
workers never race each other to set up a new one. The first SIGTERM or
SIGINT is passed on to every worker as SIGTERM, once (workers ignore
SIGINT: a terminal's Ctrl-C reaches the whole group), and the parent waits
for them all to finish shutting down; SIGHUP stops nothing. The workers'
Prometheus metrics meet in a directory made for the run and removed at its
end; a worker that ends is marked dead there, so its gauges leave the sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from multiprocessing.process import BaseProcess

from prometheus_client.multiprocess import mark_process_dead

from .app import create_app
from .auth.identity import IdentityProvider
from .config import Config, StoreConfig, load_config
from .errors import ConfigError, ProxyError, StartupError
from .ops.metrics import MULTIPROCESS_ENV
from .server import install_uvloop, run_until_signalled, setup_logging
from .store import opened

log = logging.getLogger("apitokenproxy")

# A worker exits with this when it could not start: restarting would not help.
EXIT_STARTUP = 3
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
MAX_BACKOFF = 30.0


def worker_count(configured: int) -> int:
    """``listen.workers``, with 0 read as the CPUs this process may use."""
    if configured:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serve(
    config: Config, identity: IdentityProvider | None = None, path: str | None = None
) -> None:
    """Run in the foreground until signalled; raise StartupError if it cannot run.

    ``path`` is the configuration file, read again on SIGHUP (``reload.py``).
    """
    count = worker_count(config.listen.workers)
    if count == 1:
        _run_worker(config, identity, False, path)
        return
    Supervisor(config, identity, count, path).run()


def prepare_store(config: StoreConfig) -> None:
    """Open the store (creating and migrating it as needed), then close it.

    Raise StartupError, with the store's reason, if it cannot be opened.
    """

    async def open_and_close() -> None:
        async with opened(config):
            pass

    try:
        asyncio.run(open_and_close())
    except ProxyError as exc:
        raise StartupError(exc.message) from exc


class Supervisor:
    def __init__(
        self, config: Config, identity: IdentityProvider | None, count: int, path: str | None
    ) -> None:
        self._config = config
        self._path = path
        self._identity = identity
        self._count = count
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._due: dict[int, float] = {}  # slot -> when to start its replacement
        self._deaths: deque[float] = deque()
        self._stopping = False
        self._failure: str | None = None
        self._metrics_dir = ""

    def run(self) -> None:
        setup_logging(self._config.logging.level)
        # Workers opening a new SQLite file together would each switch it to
        # WAL and migrate it at once; done here first, they find it ready.
        prepare_store(self._config.store)
        # The workers' metrics meet in one directory for this run (ops/metrics.py):
        # any worker answering a scrape sums them all.
        self._metrics_dir = tempfile.mkdtemp(prefix="apitokenproxy-metrics-")
        os.environ[MULTIPROCESS_ENV] = self._metrics_dir
        try:
            self._supervise()
        finally:
            del os.environ[MULTIPROCESS_ENV]
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        self.run_finished()

    def _supervise(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hangup)
        for slot in range(self._count):
            self._start(slot)
        while self._workers or (self._due and not self._stopping):
            self._start_due()
            sentinels = [p.sentinel for p in self._workers.values()]
            wait = min((due - time.monotonic() for due in self._due.values()), default=1.0)
            multiprocessing.connection.wait(sentinels, timeout=max(0.05, min(wait, 1.0)))
            for slot, process in list(self._workers.items()):
                if not process.is_alive():
                    del self._workers[slot]
                    # Its counters stay in the sum; its gauges leave it.
                    mark_process_dead(process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]
                    self._ended(slot, process)

    def run_finished(self) -> None:
        """Raise StartupError if the supervisor gave up."""
        if self._failure is not None:
            raise StartupError(self._failure)

    def _start(self, slot: int) -> None:
        process = self._context.Process(
            target=_worker_main,
            args=(self._config, self._identity, self._path),
            name=f"worker-{slot}",
        )
        process.start()
        self._workers[slot] = process
        if self._stopping:  # a stop signal came while it was being started
            self._tell_to_stop(process)

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot, due in list(self._due.items()):
            if due <= now and not self._stopping:
                del self._due[slot]
                self._start(slot)
                log.info("worker %d started again (pid %s)", slot, self._workers[slot].pid)

    def _ended(self, slot: int, process: BaseProcess) -> None:
        code = process.exitcode
        if self._stopping:
            # SIGTERM ends a worker only before it serves or after its shutdown
            # (run_until_signalled); any other end may have lost pending writes.
            if code not in (0, -signal.SIGTERM):
                log.warning(
                    "worker %d (pid %s) ended with %s while stopping", slot, process.pid, _how(code)
                )
            return
        if code == EXIT_STARTUP:
            self._give_up("a worker could not start; see the line above")
            return
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - RESTART_WINDOW:
            self._deaths.popleft()
        how = _how(code)
        if len(self._deaths) > MAX_RESTARTS:
            log.error("worker %d (pid %s) died (%s)", slot, process.pid, how)
            self._give_up(
                f"workers died {len(self._deaths)} times in {RESTART_WINDOW:g} s; giving up"
            )
            return
        backoff = min(MAX_BACKOFF, 2.0 ** (len(self._deaths) - 1))
        log.error(
            "worker %d (pid %s) died (%s); starting another in %g s",
            slot, process.pid, how, backoff,
        )  # fmt: skip
        self._due[slot] = now + backoff

    def _give_up(self, reason: str) -> None:
        self._failure = reason
        self._stop(signal.SIGTERM, None)

    def _stop(self, signum: int, _frame: object) -> None:
        # Once: when the signal went to the whole process group (systemd, docker,
        # a terminal) the workers have it already, and another changes nothing.
        if self._stopping:
            log.info("%s: already stopping", signal.Signals(signum).name)
            return
        self._stopping = True
        self._due.clear()
        for process in self._workers.values():
            self._tell_to_stop(process)

    def _tell_to_stop(self, process: BaseProcess) -> None:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)

    def _hangup(self, signum: int, _frame: object) -> None:
        if self._stopping:
            log.info("SIGHUP: stopping, nothing to reload")
            return
        # Each worker reloads for itself; a file they would all refuse is
        # refused here once. (Workers started later read the file anew.)
        if self._path is not None:
            try:
                load_config(self._path)
            except ConfigError as exc:
                log.error(
                    "SIGHUP: %s is invalid, the running configuration stays: %s",
                    self._path,
                    "; ".join(exc.problems),
                )
                return
        for process in self._workers.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)


def _how(code: int | None) -> str:
    """A process's exit code in words."""
    return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"


def _worker_main(config: Config, identity: IdentityProvider | None, path: str | None) -> None:
    """A worker process: serve, or say in one line why it cannot."""
    # The parent decides about SIGINT (a terminal's Ctrl-C reaches the group).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _run_worker(config, identity, True, path)
    except StartupError as exc:
        print(f"apitokenproxy: {exc}", file=sys.stderr)
        sys.exit(EXIT_STARTUP)


def _run_worker(
    config: Config, identity: IdentityProvider | None, reuse_port: bool, path: str | None
) -> None:
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
            config_path=path,
        )
    )
