"""The access log: one line per request, never a query string or a credential."""

from __future__ import annotations

import io
import re

import pytest

from apitokenproxy.ops.accesslog import AccessLog

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+) \"(.*)\" (\d{3}) (\w+)\n")


@pytest.mark.parametrize(
    ("method", "target", "logged"),
    [
        ("GET", "/rest/api/2/search?jql=project%3DX&token=secret", '"GET /rest/api/2/search"'),
        # Red team F4: an absolute-form target's authority may carry user:password.
        ("GET", "http://alice:atpx_1_SECRET@jira.example.com/x?y", '"GET /x"'),
        ("GET", "https://jira.example.com", '"GET /"'),
        ("GET", "/a\nforged line", "'/a\\nforged line'"),  # escaped: one line, never two
    ],
)
async def test_lines_carry_the_path_only(method: str, target: str, logged: str) -> None:
    out = io.StringIO()
    log = AccessLog(True, stream=out)
    log.record("203.0.113.9", method, target, 200, "aiohttp")
    log.flush()
    text = out.getvalue()
    assert LINE.fullmatch(text), text
    assert logged in text
    assert "secret" not in text.lower() and "atpx_" not in text


async def test_lines_are_written_together_and_off_means_off() -> None:
    out = io.StringIO()
    log = AccessLog(True, stream=out, flush_seconds=60)
    for i in range(3):
        log.record("c", "GET", f"/{i}", 200, "fast")
    assert out.getvalue() == ""  # batched until the flush
    log.flush()
    assert out.getvalue().count("\n") == 3
    silent = io.StringIO()
    off = AccessLog(False, stream=silent)
    off.record("c", "GET", "/", 200, "fast")
    off.flush()
    assert silent.getvalue() == ""
