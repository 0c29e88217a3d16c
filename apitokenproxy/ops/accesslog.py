"""One access-log line per request, the same for both lanes, written in batches.

A ``logging`` call per request costs a record, a formatter and a lock; at
the data path's rates that was a sixth of a worker's time. Lines are
formatted here and written to the stream together, at most
``flush_seconds`` after the first of a batch (and at shutdown), so a crash
loses at most that much of the log. The query string is never logged: Jira
URLs carry JQL and, from careless scripts, credentials.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

FLUSH_SECONDS = 0.5
MAX_BATCH = 512


class AccessLog:
    def __init__(
        self, enabled: bool, stream: TextIO | None = None, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.enabled = enabled
        self._stream = stream
        self._flush_seconds = flush_seconds
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def record(self, client: str, method: str, target: str, status: int, lane: str) -> None:
        if not self.enabled:
            return
        ms = time.time_ns() // 1_000_000
        second = ms // 1000
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        path = target.partition("?")[0]
        if not path.startswith("/"):
            # An absolute-form target: its authority may carry user:password.
            path = "/" + path.partition("//")[2].partition("/")[2]
        if not (path.isprintable() and method.isprintable()):
            method, path = ascii(method), ascii(path)  # no line a client could forge
        self._lines.append(
            f'{self._stamp}.{ms % 1000:03d}Z {client} "{method} {path}" {status} {lane}\n'
        )
        if len(self._lines) >= MAX_BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            stream = self._stream or sys.stderr
            stream.write("".join(self._lines))
            stream.flush()
            self._lines.clear()
