"""The aiohttp internals the server relies on, checked on the aiohttp installed.

``server.py`` and ``proxy/fastlane.py`` subclass or reach into aiohttp where
it offers no hook: the connection handler's flags (slow-loris deadline,
finishing uploads at shutdown), the server's keyword arguments (its
handler class), and a TCP site's listening options (the fast lane's own
socket). The dependency allows any aiohttp 3.14 or later 3.x; if a release
renames one of these, this test fails with its name instead of the proxy
failing at run time.
"""

from __future__ import annotations

import inspect

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

# Attributes a live connection handler must have (server.GatewayRequestHandler).
HANDLER = ("_request_count", "_force_close", "_close", "_request_in_progress", "_manager")
# Attributes of a TCPSite the fast lane's site reads (proxy/fastlane.FastSite).
SITE = ("_runner", "_host", "_port", "_backlog", "_reuse_address", "_reuse_port", "_server")


async def test_the_connection_handler_has_what_the_gateway_handler_uses() -> None:
    server = web.Server(lambda request: web.Response())
    handler = server()
    assert isinstance(handler, RequestHandler)
    for name in HANDLER:
        assert hasattr(handler, name), f"aiohttp's RequestHandler lost {name}"
    assert handler._manager is server
    assert hasattr(server, "_kwargs"), "aiohttp's Server no longer keeps its _kwargs"
    for method in ("connection_made", "data_received", "connection_lost", "handle_error"):
        assert callable(getattr(RequestHandler, method))
    assert list(inspect.signature(RequestHandler.handle_error).parameters)[:5] == [
        "self", "request", "status", "exc", "message",
    ]  # fmt: skip


async def test_a_tcp_site_has_what_the_fast_lanes_site_reads() -> None:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=64, reuse_port=True)
        for name in SITE:
            assert hasattr(site, name), f"aiohttp's TCPSite lost {name}"
        assert (site._host, site._port, site._backlog, site._reuse_port) == (
            "127.0.0.1", 0, 64, True,
        )  # fmt: skip
        assert site._runner is runner and runner.server is not None
        assert callable(web.BaseSite.start)
        assert callable(web.AppRunner._make_server)
    finally:
        await runner.cleanup()


def test_the_response_writer_counts_what_it_wrote() -> None:
    # forwarder.expect resets it after writing "100 Continue" itself.
    from aiohttp.http_writer import StreamWriter

    assert "output_size" in inspect.getsource(StreamWriter)
