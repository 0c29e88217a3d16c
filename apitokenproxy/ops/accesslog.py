"""One access-log line per request, the same fields for both lanes, written in batches.

Each line answers who (``client``, ``auth``, ``user``, ``token_id``), what
(``method``, ``path``, ``status``, bytes), when (``time``), why refused
(``reason``, one of ``errors.REASONS``), how fast (``ms`` in total,
``upstream_ms`` waiting for the upstream's answer) and which request
(``request_id``, also sent to the upstream and back to the client). The
format is ``text`` (a fixed order, ``key=value``) or ``json`` (one object a
line, for Loki, ELK or Splunk); see docs/observability.md.

A ``logging`` call per request costs a record, a formatter and a lock; at
the data path's rates that was a sixth of a worker's time. Lines are
formatted here and written to the stream together, at most
``flush_seconds`` after the first of a batch (and at shutdown), so a crash
loses at most that much of the log.

Nothing secret is written: the query string is dropped (Jira URLs carry
JQL and, from careless scripts, credentials), an absolute-form target loses
its authority (``user:password@``), a value or path segment that carries the
token prefix is written as ``<token>`` (``loggable``, ``loggable_path``), and
every value a client chose (path, method, user name, request id) is escaped
so that it cannot forge a line.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Literal, TextIO
from urllib.parse import unquote

from ..live import Live
from .requestid import TOKEN_PREFIX

if TYPE_CHECKING:
    from .exchange import Exchange

FLUSH_SECONDS = 0.5
MAX_BATCH = 512

Format = Literal["text", "json"]

# A text value written bare: visible ASCII without quotes, backslashes or "=".
_BARE = re.compile(r"[!#-<>-\[\]-~]+")
_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


# Written instead of anything that carries the token prefix.
TOKEN_PLACEHOLDER = "<token>"  # noqa: S105 (a placeholder, not a secret)


def _bears_token(value: str) -> bool:
    return "_" in value and TOKEN_PREFIX in value.lower()


def loggable(value: str) -> str:
    """``value`` as a log may show it: ``<token>`` if it carries the token prefix
    anywhere, in any case (a token, or a user name glued to one), else itself."""
    return TOKEN_PLACEHOLDER if _bears_token(value) else value


def loggable_path(target: str) -> str:
    """The path of a request-target as a log may show it: no query, no authority,
    and each segment that carries the token prefix (percent-encoded or not)
    replaced by ``<token>``; the upstream still gets the path as it was sent."""
    path = target.partition("?")[0]
    if not path.startswith("/"):
        # An absolute-form target: its authority may carry user:password.
        path = "/" + path.partition("//")[2].partition("/")[2]
    if "_" in path or "%" in path:
        path = "/".join(
            TOKEN_PLACEHOLDER if _bears_token(unquote(segment)) else segment
            for segment in path.split("/")
        )
    return path


def _text(value: str) -> str:
    if _BARE.fullmatch(value):
        return value
    return _JSON(value)  # quoted, every control and non-ASCII character escaped


_CACHE_MAX = 4096
# "000" to "999": the milliseconds of a time stamp without a format spec per line.
_MILLIS = tuple(f"{n:03d}" for n in range(1000))


def milliseconds(seconds: float) -> str:
    """A duration in milliseconds with three decimals (a microsecond's resolution)."""
    micros = round(seconds * 1_000_000)
    return f"{micros // 1000}.{_MILLIS[micros % 1000]}"


# What a line says of who made a request and how it authenticated: the same for
# every request of a client with one token, so escaped and joined once.
Who = tuple[str, str, str | None, str | None, str | None, int | None]


def _text_who(who: Who) -> tuple[str, str]:
    """The text line's client field, and its fields from ``lane`` to ``request_id=``."""
    client, lane, auth, reason, user, token_id = who
    return (
        _text(loggable(client)),
        f" lane={lane} auth={auth or '-'} reason={reason or '-'} "
        f"user={'-' if user is None else _text(loggable(user))} "
        f"token_id={'-' if token_id is None else token_id} request_id=",
    )


def _word(value: str | None) -> str:
    return "null" if value is None else '"' + value + '"'


def _json_who(who: Who) -> tuple[str, str]:
    """The JSON line's client member, and its members from ``lane`` to ``request_id``'s name."""
    client, lane, auth, reason, user, token_id = who
    return (
        _JSON(loggable(client)),
        f',"lane":"{lane}","auth":{_word(auth)},"reason":{_word(reason)},'
        f'"user":{"null" if user is None else _JSON(loggable(user))},'
        f'"token_id":{"null" if token_id is None else token_id},"request_id":"',
    )


class AccessLog:
    def __init__(
        self,
        live: Live,
        stream: TextIO | None = None,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        """Lines on or off, and their format, are ``live``'s (``logging.*``)."""
        self._live = live
        self._format: Format = live.now.log_format  # what ``_who`` holds lines for
        self.stream = stream  # None: standard error
        self._flush_seconds = flush_seconds
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""
        self._who: dict[Who, tuple[str, str]] = {}

    def record(self, exchange: Exchange, seconds: float) -> None:
        """One finished exchange that took ``seconds``. Its ``request_id`` must be sane
        (``ops/requestid.py``) and its ``lane``, ``auth`` and ``reason`` words of the
        proxy's own: they are written as they are; every other string is escaped."""
        settings = self._live.now
        if not settings.access_log:
            return
        if settings.log_format != self._format:
            self._format = settings.log_format
            self._who.clear()  # written for the other format
        who = (
            exchange.client,
            exchange.lane,
            exchange.auth,
            exchange.reason,
            exchange.user,
            exchange.token_id,
        )
        parts = self._who.get(who)
        if parts is None:
            if len(self._who) >= _CACHE_MAX:
                self._who.clear()  # a flood of new clients costs memory once, not forever
            parts = self._who[who] = (_json_who if self._format == "json" else _text_who)(who)
        ns = time.time_ns()
        second = ns // 1_000_000_000
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        stamp = self._stamp + _MILLIS[ns // 1_000_000 % 1000]
        method, upstream_seconds = exchange.method, exchange.upstream_seconds
        status, bytes_in, bytes_out = exchange.status, exchange.bytes_in, exchange.bytes_out
        path = exchange.target.partition("?")[0]
        if not path.startswith("/") or "_" in path or "%" in path:
            path = loggable_path(path)
        ms = milliseconds(seconds)
        # Formatted by hand, not by json.dumps of a dict: half the time, the same JSON.
        if self._format == "json":
            upstream_ms = "null" if upstream_seconds is None else milliseconds(upstream_seconds)
            line = (
                f'{{"time":"{stamp}Z","client":{parts[0]},"method":{_JSON(method)},'
                f'"path":{_JSON(path)},"status":{status},"bytes_in":{bytes_in},'
                f'"bytes_out":{bytes_out},"ms":{ms},"upstream_ms":{upstream_ms}'
                f'{parts[1]}{exchange.request_id}"}}\n'
            )
        else:
            upstream_ms = "-" if upstream_seconds is None else milliseconds(upstream_seconds)
            if not (path.isprintable() and method.isprintable()) or '"' in path:
                # Escaped as in JSON, so no client can forge a line or a field.
                method, path = _JSON(method)[1:-1], _JSON(path)[1:-1]
            line = (
                f'{stamp}Z {parts[0]} "{method} {path}" {status} in={bytes_in} '
                f"out={bytes_out} ms={ms} upstream_ms={upstream_ms}{parts[1]}"
                f"{exchange.request_id}\n"
            )
        self._lines.append(line)
        if len(self._lines) >= MAX_BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            stream = self.stream or sys.stderr
            stream.write("".join(self._lines))
            stream.flush()
            self._lines.clear()
