"""No answer and no log line ever repeats an Authorization value, however malformed.

Issue 8, item 9: a token file with Windows line endings (``Bearer TOKEN\\r``)
or a control byte in the header used to put the whole token into the 400
answer and into the log, quoted by the HTTP parser's error message. Every
row runs on both lanes, against the real server stack, over a raw socket.
"""

from __future__ import annotations

import logging

import pytest

from ..conftest import Live, MakeLive
from .test_attacks import b64, exchange, get, make_token

SECRET = "correct-horse-battery-staple-7781"


@pytest.fixture
async def live(make_live: MakeLive) -> Live:
    return await make_live({"auth": {"throttle": {"max_failures": 1000}}})


def rows(token: str) -> dict[str, str]:
    basic = b64(f"alice:{token}".encode())
    password = b64(f"alice:{SECRET}".encode())
    return {
        "Bearer with CR": f"Authorization: Bearer {token}\r",
        "Bearer with a control byte": f"Authorization: Bearer {token}\x01",
        "Bearer with NUL": f"Authorization: Bearer {token}\x00",
        "Bearer with DEL": f"Authorization: Bearer {token}\x7f",
        "Bearer with a bare LF": f"Authorization: Bearer {token}\nX-A: b",
        "Bearer with vertical tab": f"Authorization: Bearer {token}\x0b",
        "Basic token with CR": f"Authorization: Basic {basic}\r",
        "Basic password with a control byte": f"Authorization: Basic {password}\x02",
        "password in clear, control byte": f"Authorization: Basic alice:{SECRET}\x03",
        "token as a header name": f"Authorization Bearer {token}",
        "token after a space in the name": f"Authorization : Bearer {token}",
        "oversized, token inside": f"Authorization: Bearer {token}{'A' * 9000}",
        "obs-fold": f"Authorization: Bearer\r\n {token}",
    }


@pytest.mark.parametrize("row", list(rows("T")))
async def test_malformed_credentials_are_never_echoed(
    live: Live, row: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = (await make_token(live))["plainTextToken"]
    line = rows(token)[row]
    live.upstream.received.clear()
    caplog.set_level(logging.DEBUG)
    status, headers, body = await exchange(live.port, get("/rest/api/2/issue/X-1", line))
    assert status == 400, (row, status, body[:200])
    everything = body.decode("latin-1") + repr(headers) + caplog.text
    basic_token, basic_password = b64(f"alice:{token}".encode()), b64(f"alice:{SECRET}".encode())
    # Whole, and cut short (a parser's quote of the line may end anywhere).
    for secret in (token, token[-12:], token[:20], SECRET, SECRET[:12],
                   basic_token, basic_token[:24], basic_password, basic_password[:24]):  # fmt: skip
        assert secret not in everything, row
    assert live.upstream.received == [], row
