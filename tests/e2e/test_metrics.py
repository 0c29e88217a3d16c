"""The metrics endpoint end to end: on both lanes and stores, the counters move by exactly
what was served; who may read them, directly and behind a real nginx; and two worker
processes sum to one answer."""

from __future__ import annotations

import asyncio
import glob
import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from apitokenproxy.app import COMPONENTS
from apitokenproxy.auth.tokens import format_token

from ..conftest import MakeLive, MakeWorld, World
from ..fakes import basic, bearer
from ..peers.nginx import running_nginx
from ..processes import free_port, serve_config, start, stop, wait_for
from ..waiting import until

API = "/rest/de.resolution.apitokenauth/latest"
ALICE = basic("alice", "alice-pw")
ISSUE = "/rest/api/2/issue/X-1"
METRICS = "/__apitokenproxy/metrics"
# Each request on its own connection, so that each starts in the lane under test.
CLOSE = {"Connection": "close"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(world: World) -> Samples:
    resp = await world.client.get(METRICS, headers=CLOSE)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await resp.text())


async def test_counters_move_by_exactly_what_was_served(make_world: MakeWorld, lane: str) -> None:
    world = await make_world()
    before = await scrape(world)
    resp = await world.client.post(
        f"{API}/user/token", json={"tokenDescription": "t"}, headers={**ALICE, **CLOSE}
    )
    made = await resp.json()
    for _ in range(3):
        resp = await world.client.get(ISSUE, headers={**bearer(made["plainTextToken"]), **CLOSE})
        assert resp.status == 200
    bad = bearer(format_token(777, "C" * 32))
    assert (await world.client.get(ISSUE, headers={**bad, **CLOSE})).status == 401
    resp = await world.client.delete(f"{API}/user/token/{made['id']}", headers={**ALICE, **CLOSE})
    assert resp.status == 204
    after = await scrape(world)

    def moved(name: str, **labels: str) -> float:
        return get(after, name, **labels) - get(before, name, **labels)

    requests = "apitokenproxy_requests_total"
    # The first scrape is counted too (an aiohttp GET); the second is not yet.
    assert moved(requests, lane=lane, method="GET", status="2xx") == 3 + (lane == "aiohttp")
    assert moved(requests, lane="aiohttp", method="POST", status="2xx") == 1
    assert moved(requests, lane=lane, method="GET", status="4xx") == 1
    assert moved(requests, lane="aiohttp", method="DELETE", status="2xx") == 1
    # On the aiohttp lane, the token API's POST and DELETE and the first scrape as well.
    on_lane = 4 + (3 if lane == "aiohttp" else 0)
    assert moved("apitokenproxy_request_duration_seconds_count", lane=lane) == on_lane
    assert moved("apitokenproxy_upstream_duration_seconds_count", lane=lane) == 3
    assert moved("apitokenproxy_auth_total", outcome="token", reason="") == 3
    assert moved("apitokenproxy_auth_total", outcome="password", reason="") == 2
    assert moved("apitokenproxy_auth_total", outcome="refused", reason="unknown") == 1
    assert moved("apitokenproxy_tokens_created_total") == 1
    assert moved("apitokenproxy_tokens_revoked_total") == 1
    assert moved("apitokenproxy_token_cache_hits_total") == 2
    assert moved("apitokenproxy_token_cache_misses_total") == 2
    # The first use; an id no token has costs no argon2.
    assert moved("apitokenproxy_argon2_verifications_total") == 1
    # The two cache misses, and the deletion's look-up of the token it deletes.
    assert moved("apitokenproxy_store_query_seconds_count", operation="get") == 3
    assert get(after, "apitokenproxy_store_up") == 1
    if world.config.store.url.startswith("postgresql"):
        assert get(after, "apitokenproxy_revocation_listener_up") == 1
    else:
        assert ("apitokenproxy_revocation_listener_up", frozenset()) not in after
    assert get(after, "apitokenproxy_upstream_errors_total", kind="refused") == 0


async def test_an_unreachable_upstream_is_counted_and_logged(
    make_world: MakeWorld, lane: str
) -> None:
    world = await make_world(
        config={
            "upstream": {"url": f"http://127.0.0.1:{free_port()}"},
            "logging": {"access_log": True, "format": "json"},
        }
    )
    components = world.client.server.app[COMPONENTS]
    components.access_log.stream = io.StringIO()
    before = await scrape(world)
    resp = await world.client.get(ISSUE, headers={**CLOSE, "X-Request-Id": "down-1"})
    assert resp.status == 502
    after = await scrape(world)
    kind = "apitokenproxy_upstream_errors_total"
    assert get(after, kind, kind="refused") - get(before, kind, kind="refused") == 1
    assert get(after, kind, kind="timeout") == get(before, kind, kind="timeout")
    components.access_log.flush()
    [entry] = [
        json.loads(line)
        for line in components.access_log.stream.getvalue().splitlines()
        if json.loads(line)["request_id"] == "down-1"
    ]
    assert (entry["status"], entry["auth"], entry["lane"]) == (502, "anonymous", lane)
    assert entry["upstream_ms"] is not None


async def test_refused_outside_the_allow_list_whatever_x_forwarded_for_says(
    make_world: MakeWorld,
) -> None:
    world = await make_world(
        config={"metrics": {"allow": ["10.0.0.0/8"]}, "proxy": {"trusted_proxies": ["127.0.0.1"]}}
    )
    resp = await world.client.get(METRICS, headers={"X-Forwarded-For": "10.1.2.3"})
    assert resp.status == 403
    assert (await resp.json())["error"] == "forbidden"
    assert "apitokenproxy_requests_total" not in await resp.text()


async def test_metrics_off_is_a_404_never_forwarded(make_world: MakeWorld) -> None:
    world = await make_world(config={"metrics": {"enabled": False}})
    resp = await world.client.get(METRICS)
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"
    assert not [r for r in world.upstream.received if r.path_qs.startswith(METRICS)]


async def test_a_separate_metrics_port(make_world: MakeWorld) -> None:
    port = free_port()
    world = await make_world(config={"metrics": {"port": port}})
    resp = await world.client.get(METRICS)
    assert resp.status == 404  # not on the proxy's port, and not forwarded upstream
    assert not [r for r in world.upstream.received if r.path_qs.startswith(METRICS)]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{METRICS}") as resp,
    ):
        assert resp.status == 200
        assert "apitokenproxy_requests_total" in await resp.text()
        async with http.get(f"http://127.0.0.1:{port}{ISSUE}") as other:
            assert other.status == 404  # the metrics and nothing else


# nginx on the same host as the proxy: as it usually is configured, and bare.
FRONT = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{proxy};
{headers}
        }}
    }}
"""
FORWARDING = """
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;"""


async def read_metrics(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url + METRICS) as resp:
        return resp.status, await resp.text()


@pytest.mark.slow  # a real nginx
@pytest.mark.parametrize(
    ("headers", "trusted"),
    [
        (FORWARDING, ["127.0.0.1/32"]),  # docs/observability.md's setup
        (FORWARDING, []),  # not a trusted proxy: its headers tell all the same
        ("            proxy_set_header X-Real-IP $remote_addr;", []),
    ],
    ids=["trusted", "untrusted", "x-real-ip"],
)
async def test_a_client_through_a_front_proxy_on_loopback_cannot_read_them(
    make_live: MakeLive, tmp_path: Path, headers: str, trusted: list[str]
) -> None:
    """The front proxy connects from loopback, which metrics.allow admits by default:
    what it forwards for a public client is still refused, with a pointer to
    metrics.port; Prometheus on the host, scraping the port itself, is answered."""
    live = await make_live({"proxy": {"trusted_proxies": trusted}})
    port = free_port()
    site = FRONT.format(port=port, proxy=live.port, headers=headers)
    with running_nginx(tmp_path / "nginx", site):
        status, body = await read_metrics(f"http://127.0.0.1:{port}")
        assert status == 403, body
        assert json.loads(body)["error"] == "forbidden"
        assert "metrics.port" in json.loads(body)["message"]
        assert "apitokenproxy_requests_total" not in body
        # The data path through nginx is served as before.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}{ISSUE}") as resp,
        ):
            assert resp.status == 200
    status, body = await read_metrics(f"http://127.0.0.1:{live.port}")
    assert status == 200
    assert "apitokenproxy_requests_total" in body


@pytest.mark.slow  # a real nginx
async def test_behind_a_front_proxy_the_metrics_port_serves_them(
    make_live: MakeLive, tmp_path: Path
) -> None:
    metrics_port = free_port()
    live = await make_live(
        {"proxy": {"trusted_proxies": ["127.0.0.1/32"]}, "metrics": {"port": metrics_port}}
    )
    port = free_port()
    with running_nginx(
        tmp_path / "nginx", FRONT.format(port=port, proxy=live.port, headers=FORWARDING)
    ):
        status, body = await read_metrics(f"http://127.0.0.1:{port}")
        assert status == 404, body  # not on the proxy's port at all
    status, body = await read_metrics(f"http://127.0.0.1:{metrics_port}")
    assert status == 200
    assert "apitokenproxy_requests_total" in body


@pytest.mark.slow  # real processes
async def test_two_workers_sum_to_one_answer(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The supervisor makes its per-run directory under TMPDIR: here, to look into.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    config, port = await serve_config(
        aiohttp_server, tmp_path, listen={"workers": 2}, logging={"access_log": False}
    )
    proc = await start("serve", "--config", str(config))
    url = f"http://127.0.0.1:{port}"
    try:
        seen = ""
        while seen.count("listening on") < 2:
            seen += await wait_for(proc, "listening on")
        [directory] = glob.glob(str(tmp_path / "apitokenproxy-metrics-*"))
        async with aiohttp.ClientSession(url) as http:
            resp = await http.post(
                f"{API}/user/token", json={"tokenDescription": "t"}, headers=ALICE
            )
            token = (await resp.json())["plainTextToken"]
        served = 40
        for _ in range(served):
            # A fresh connection each time, so the kernel spreads them over both workers.
            async with (
                aiohttp.ClientSession(url) as http,
                http.get(ISSUE, headers=bearer(token)) as resp,
            ):
                assert resp.status == 200

        async def total() -> tuple[float, float]:
            async with aiohttp.ClientSession(url) as http, http.get(METRICS) as resp:
                samples = parse(await resp.text())
            return (
                get(
                    samples, "apitokenproxy_requests_total", lane="fast", method="GET", status="2xx"
                ),
                get(samples, "apitokenproxy_auth_total", outcome="token", reason=""),
            )

        async def counted() -> bool:
            return await total() == (served, served)

        await until(counted, "every request counted", every=0.2)
        await asyncio.sleep(1.5)  # two more flushes: nothing counted twice
        assert await total() == (served, served)
        # Each worker counted its own share, and both had one.
        shares = []
        for path in glob.glob(os.path.join(directory, "counter_*.db")):
            for family in MultiProcessCollector.merge([path], accumulate=True):
                for s in family.samples:
                    if s.name == "apitokenproxy_auth_total" and s.labels["outcome"] == "token":
                        shares.append(s.value)
        assert len(shares) == 2 and all(shares) and sum(shares) == served, shares
        # A worker that dies leaves the gauges' sum (its counters stay in the totals).
        pid = int(seen.split("listening on")[0].rsplit("[", 1)[1].split("]")[0])
        gauges = os.path.join(directory, f"gauge_livesum_{pid}.db")
        assert glob.glob(gauges)
        os.kill(pid, signal.SIGKILL)
        await until(lambda: not glob.glob(gauges), "the dead worker's gauges go", every=0.1)
        assert glob.glob(os.path.join(directory, f"counter_{pid}.db"))
        await wait_for(proc, "listening on")  # its replacement
        assert await total() == (served, served)
    finally:
        out = await stop(proc)
    assert proc.returncode == 0, out
    assert not glob.glob(directory)  # removed with the run
