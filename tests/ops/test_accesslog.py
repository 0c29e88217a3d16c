"""The access log: one line per request, every field, never a query string or a credential."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from apitokenproxy.live import Live, Settings
from apitokenproxy.ops.accesslog import AccessLog, Format, milliseconds

from .exchanges import exchange

TEXT = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+) \"(.*)\" (\d{3}) in=(\d+) out=(\d+) "
    r"ms=(\S+) upstream_ms=(\S+) lane=(\w+) auth=(\S+) reason=(\S+) user=(\S+|\".*\") "
    r"token_id=(\S+) request_id=(\S+)\n"
)


def line(format: Format = "text", **fields: Any) -> str:
    args: dict[str, Any] = {
        "client": "203.0.113.9", "method": "GET", "target": "/x", "status": 200,
        "lane": "fast", "bytes_in": 3, "bytes_out": 512, "seconds": 0.0042,
        "upstream_seconds": 0.0031, "auth": "token", "reason": None, "user": "alice",
        "token_id": 17, "request_id": "req-1",
    }  # fmt: skip
    args.update(fields)
    out = io.StringIO()
    log = AccessLog(Live(Settings(log_format=format)), stream=out)
    seconds = args.pop("seconds")
    log.record(exchange(**args), seconds)
    log.flush()
    return out.getvalue()


async def test_a_text_line_has_every_field_in_order() -> None:
    text = line()
    match = TEXT.fullmatch(text)
    assert match, text
    assert match.groups() == (
        "203.0.113.9", "GET /x", "200", "3", "512", "4.200", "3.100", "fast", "token", "-",
        "alice", "17", "req-1",
    )  # fmt: skip


async def test_a_json_line_is_one_object_with_every_field() -> None:
    text = line("json", auth="refused", reason="expired", upstream_seconds=None, token_id=None)
    assert text.endswith("}\n") and text.count("\n") == 1
    entry = json.loads(text)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("time"))
    assert entry == {
        "client": "203.0.113.9", "method": "GET", "path": "/x", "status": 200,
        "bytes_in": 3, "bytes_out": 512, "ms": 4.2, "upstream_ms": None, "lane": "fast",
        "auth": "refused", "reason": "expired", "user": "alice", "token_id": None,
        "request_id": "req-1",
    }  # fmt: skip


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize(
    ("method", "target", "logged"),
    [
        ("GET", "/rest/api/2/search?jql=project%3DX&token=secret", "/rest/api/2/search"),
        # Red team F4: an absolute-form target's authority may carry user:password.
        ("GET", "http://alice:atpx_1_SECRET@jira.example.com/x?y", "/x"),
        ("GET", "https://jira.example.com", "/"),
        ("GET", "/a\nforged line", "/a\\nforged line"),  # escaped: one line, never two
        ("GET", '/a" 200 in=0', '/a\\" 200 in=0'),  # a quote cannot end the request field
    ],
)
async def test_lines_carry_the_path_only(
    format: Format, method: str, target: str, logged: str
) -> None:
    text = line(format, method=method, target=target)
    assert text.count("\n") == 1
    if format == "text":
        assert TEXT.fullmatch(text), text
    else:
        assert json.loads(text)["path"] == json.loads(f'"{logged}"')
    assert logged in text
    assert "secret" not in text.lower() and "atpx_" not in text


@pytest.mark.parametrize(
    ("user", "logged"),
    [
        ("alice", "user=alice"),
        ("Alice Smith", 'user="Alice Smith"'),
        ("j\u00fcrgen", 'user="j\\u00fcrgen"'),
        ('x" auth=token', 'user="x\\" auth=token"'),
        ("a\nb", 'user="a\\nb"'),
        ("a=b", 'user="a=b"'),
        (None, "user=-"),
    ],
)
async def test_a_user_name_cannot_forge_fields(user: str | None, logged: str) -> None:
    text = line(user=user)
    assert TEXT.fullmatch(text), text
    assert f" {logged} token_id=" in text


async def test_lines_are_written_together_and_off_means_off() -> None:
    out = io.StringIO()
    log = AccessLog(Live(), stream=out, flush_seconds=60)
    for i in range(3):
        log.record(exchange(client="c", target=f"/{i}", status=200, lane="fast"), 0.0)
    assert out.getvalue() == ""  # batched until the flush
    log.flush()
    assert out.getvalue().count("\n") == 3
    silent = io.StringIO()
    off = AccessLog(Live(Settings(access_log=False)), stream=silent)
    off.record(exchange(client="c", status=200, lane="fast"), 0.0)
    off.flush()
    assert silent.getvalue() == ""


@pytest.mark.parametrize("format", ["text", "json"])
async def test_a_client_address_cannot_forge_fields(format: Format) -> None:
    # Through a trusted proxy, the address comes from X-Forwarded-For: the client's words.
    text = line(format, client='10.0.0.1" 200 auth=token user=admin')
    assert text.count("\n") == 1
    if format == "text":
        # One quoted field, escaped as JSON, then the request as always.
        assert 'Z "10.0.0.1\\" 200 auth=token user=admin" "GET /x" 200 in=3 ' in text
        assert text.endswith(" auth=token reason=- user=alice token_id=17 request_id=req-1\n")
    else:
        assert json.loads(text)["client"] == '10.0.0.1" 200 auth=token user=admin'


async def test_a_reload_to_the_other_format_changes_the_very_next_line() -> None:
    # What a line says of its client and token is prepared once per format.
    out = io.StringIO()
    live = Live()
    log = AccessLog(live, stream=out, flush_seconds=60)
    who = ("203.0.113.9", "fast", "token", None, "alice", 17)
    formats: tuple[Format, ...] = ("text", "json", "text")
    for format in formats:
        live.swap(Settings(log_format=format))  # as reload.py does on SIGHUP
        client, lane, auth, reason, user, token_id = who
        made = exchange(
            "req", client=client, target="/x", status=200, lane=lane, bytes_out=5,
            upstream_seconds=0.001, auth=auth, reason=reason, user=user, token_id=token_id,
        )  # fmt: skip
        log.record(made, 0.002)
    log.flush()
    first, second, third = out.getvalue().splitlines()
    assert TEXT.fullmatch(first + "\n") and TEXT.fullmatch(third + "\n")
    entry = json.loads(second)
    assert (entry["client"], entry["user"], entry["token_id"], entry["ms"]) == (
        "203.0.113.9", "alice", 17, 2.0,
    )  # fmt: skip


@pytest.mark.parametrize("format", ["text", "json"])
async def test_durations_have_three_decimals_however_often_they_recur(format: Format) -> None:
    for seconds, shown in ((0.0042, "4.200"), (0.0042, "4.200"), (1.5, "1500.000"), (0.0, "0.000")):
        text = line(format, seconds=seconds, upstream_seconds=seconds)
        if format == "text":
            assert f" ms={shown} upstream_ms={shown} " in text
        else:
            assert f'"ms":{shown},"upstream_ms":{shown},' in text


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (0.0, "0.000"),
        (0.0000004, "0.000"),
        (0.0004, "0.400"),
        (0.000019, "0.019"),
        (0.019502, "19.502"),
        (0.0195024, "19.502"),
        (0.0195026, "19.503"),
        (0.9999996, "1000.000"),
        (332.0, "332000.000"),
    ],
)
def test_milliseconds_have_a_microseconds_resolution(seconds: float, shown: str) -> None:
    assert milliseconds(seconds) == shown


TOKEN = "atpx_7_" + "Q" * 38  # the shape is enough: the log cannot tell a valid one


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize(
    ("field", "value", "logged"),
    [
        ("user", TOKEN, "<token>"),  # Basic TOKEN_A:TOKEN_B once logged TOKEN_A as the user
        ("user", f"alice{TOKEN}", "<token>"),
        ("user", TOKEN.upper(), "<token>"),
        ("user", "alice_smith", "alice_smith"),
        ("client", f"10.0.0.1 {TOKEN}", "<token>"),  # X-Forwarded-For from a trusted proxy
        ("target", f"/rest/api/2/issue/{TOKEN}/comment", "/rest/api/2/issue/<token>/comment"),
        ("target", f"/x/{TOKEN}", "/x/<token>"),
        ("target", f"/x/%61tpx_7_{'Q' * 38}", "/x/<token>"),  # percent-encoded, as Tomcat decodes
        ("target", f"/x/atpx%5F7_{'Q' * 38}", "/x/<token>"),
        ("target", f"/x/a;jsessionid={TOKEN}/y", "/x/<token>/y"),
        ("target", f"http://h/x/{TOKEN}?q={TOKEN}", "/x/<token>"),
        ("target", "/rest/api/2/my_issue/x%20y", "/rest/api/2/my_issue/x%20y"),
    ],
)
async def test_nothing_that_carries_the_token_prefix_is_written(
    format: Format, field: str, value: str, logged: str
) -> None:
    text = line(format, **{field: value})
    assert text.count("\n") == 1
    assert "Q" * 20 not in text and TOKEN not in text
    key = "path" if field == "target" else field
    if format == "json":
        assert json.loads(text)[key] == logged
    else:
        match = TEXT.fullmatch(text)
        assert match, text
        group = {"user": 11, "client": 1, "path": 2}[key]
        assert match.group(group) == (f"GET {logged}" if key == "path" else logged)
