"""Metrics: what the data path counts locally arrives in prometheus_client exactly."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from apitokenproxy.config import MetricsConfig
from apitokenproxy.errors import StoreUnavailable
from apitokenproxy.networks import parse_networks
from apitokenproxy.ops.histograms import LocalHistogram
from apitokenproxy.ops.metrics import (
    ARGON2_BUCKETS,
    REQUEST_BUCKETS,
    MeasuredStore,
    Metrics,
    Sources,
)
from apitokenproxy.store import NewToken, opened
from apitokenproxy.store.audit import Action, AuditQuery, How


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_requests_are_counted_by_lane_method_and_status_class() -> None:
    m = Metrics()
    for status in (200, 204, 401, 502):
        m.request("fast", "GET", status, 0.003, 0.002, "token", None)
    m.request("aiohttp", "PROPFIND", 207, 0.5, None, "refused", "expired")
    m.request("fast", "GET", 429, 0.001, None, "refused", "throttled")
    m.request("fast", "GET", 503, 0.001, None, "refused", "busy")
    m.request("fast", "GET", 400, 0.001, None, None, None)  # refused before authentication
    assert value(m, "apitokenproxy_requests_total", lane="fast", method="GET", status="2xx") is None
    m.flush()  # nothing reaches prometheus_client before
    assert value(m, "apitokenproxy_requests_total", lane="fast", method="GET", status="2xx") == 2
    assert value(m, "apitokenproxy_requests_total", lane="fast", method="GET", status="5xx") == 2
    assert (
        value(m, "apitokenproxy_requests_total", lane="aiohttp", method="other", status="2xx") == 1
    )
    assert value(m, "apitokenproxy_auth_total", outcome="token", reason="") == 4
    assert (
        sum(  # nothing counted for the request never authenticated
            s.value
            for f in m.registry.collect()
            if f.name == "apitokenproxy_auth"
            for s in f.samples
        )
        == 7
    )
    assert value(m, "apitokenproxy_auth_total", outcome="refused", reason="expired") == 1
    assert value(m, "apitokenproxy_throttled_total") == 1
    assert value(m, "apitokenproxy_busy_total") == 1
    assert value(m, "apitokenproxy_requests_total", lane="fast", method="GET", status="4xx") == 3
    assert value(m, "apitokenproxy_request_duration_seconds_count", lane="fast") == 7
    assert value(m, "apitokenproxy_request_duration_seconds_bucket", lane="fast", le="0.0025") == 3
    assert value(m, "apitokenproxy_request_duration_seconds_bucket", lane="fast", le="0.005") == 7
    assert value(m, "apitokenproxy_upstream_duration_seconds_count", lane="fast") == 4
    assert value(m, "apitokenproxy_upstream_duration_seconds_count", lane="aiohttp") == 0
    m.flush()  # flushing again adds nothing
    assert value(m, "apitokenproxy_requests_total", lane="fast", method="GET", status="2xx") == 2


def test_requests_with_distinct_durations_are_counted_exactly() -> None:
    # Every duration distinct (a microsecond clock): counts, buckets and the sum
    # are what prometheus_client's own observe would have made of them.
    m = Metrics()
    direct_registry = CollectorRegistry()
    direct = Histogram("h", "h", buckets=REQUEST_BUCKETS, registry=direct_registry)
    durations = [0.0001 * i for i in range(10_007)]
    for seconds in durations:
        m.request("fast", "GET", 200, seconds, seconds / 2, "token", None)
        direct.observe(seconds)
    m.flush()
    n = len(durations)
    assert value(m, "apitokenproxy_requests_total", lane="fast", method="GET", status="2xx") == n
    assert value(m, "apitokenproxy_auth_total", outcome="token", reason="") == n
    assert value(m, "apitokenproxy_upstream_duration_seconds_count", lane="fast") == n
    for bound in ("0.001", "0.1", "0.5", "+Inf"):
        assert value(
            m, "apitokenproxy_request_duration_seconds_bucket", lane="fast", le=bound
        ) == direct_registry.get_sample_value("h_bucket", {"le": bound})
    total = value(m, "apitokenproxy_request_duration_seconds_sum", lane="fast")
    assert total == pytest.approx(sum(durations))


def test_sources_are_read_as_deltas_and_gauges() -> None:
    state: dict[str, Any] = {
        "hits": 5,
        "failures": {"reset": 2},
        "up": True,
        "warnings": {"email.sent": 2, "email.failed": 1},
    }
    argon2 = LocalHistogram(ARGON2_BUCKETS)
    argon2.observe(0.05)
    m = Metrics(
        Sources(
            cache_hits=lambda: state["hits"],
            cache_entries=lambda: 7,
            argon2=lambda: (3, 1, argon2),
            upstream_in_use=lambda: 4,
            upstream_failures=lambda: state["failures"],
            flush_age=lambda: 2.5,
            listener_up=lambda: state["up"],
            expiry_warnings=lambda: state["warnings"],
        )
    )
    m.flush()
    state.update(
        hits=8,
        failures={"reset": 3, "timeout": 1},
        up=False,
        warnings={"email.sent": 3, "email.failed": 1, "webhook.gave_up": 1},
    )
    m.flush()
    assert value(m, "apitokenproxy_token_cache_hits_total") == 8
    assert value(m, "apitokenproxy_token_cache_entries") == 7
    assert value(m, "apitokenproxy_argon2_verifications_total") == 3
    assert value(m, "apitokenproxy_argon2_queue") == 1
    assert value(m, "apitokenproxy_argon2_seconds_count") == 1
    assert value(m, "apitokenproxy_upstream_connections_in_use") == 4
    assert value(m, "apitokenproxy_upstream_errors_total", kind="reset") == 3
    assert value(m, "apitokenproxy_upstream_errors_total", kind="timeout") == 1
    for kind in ("refused", "invalid", "pool_exhausted", "client_limit"):
        assert value(m, "apitokenproxy_upstream_errors_total", kind=kind) == 0  # from the start
    assert value(m, "apitokenproxy_last_accessed_flush_age_seconds") == 2.5
    assert value(m, "apitokenproxy_revocation_listener_up") == 0
    warnings = "apitokenproxy_expiry_warnings_total"
    assert value(m, warnings, channel="email", outcome="sent") == 3
    assert value(m, warnings, channel="email", outcome="failed") == 1
    assert value(m, warnings, channel="webhook", outcome="gave_up") == 1
    assert value(Metrics(), "apitokenproxy_revocation_listener_up") is None  # SQLite: none


class Store:
    async def create(self, spec: str) -> str:
        return spec

    async def delete(self, token_id: int) -> bool:
        return token_id == 1

    async def delete_all_for(self, owner: str) -> list[int]:
        return [1, 2, 3]

    async def get(self, token_id: int) -> None:
        raise StoreUnavailable("locked")


async def test_store_calls_are_timed_and_tokens_counted() -> None:
    m = Metrics()
    store: Any = MeasuredStore(Store(), m)
    assert await store.create("x") == "x"
    assert await store.delete(1) and not await store.delete(2)
    assert await store.delete_all_for("k") == [1, 2, 3]
    assert value(m, "apitokenproxy_store_up") == 1
    with pytest.raises(StoreUnavailable):
        await store.get(1)
    m.flush()
    assert value(m, "apitokenproxy_tokens_created_total") == 1
    assert value(m, "apitokenproxy_tokens_revoked_total") == 4
    assert value(m, "apitokenproxy_store_query_seconds_count", operation="delete") == 2
    assert value(m, "apitokenproxy_store_errors_total", operation="get") == 1
    assert value(m, "apitokenproxy_store_errors_total", operation="delete") is None
    assert value(m, "apitokenproxy_store_up") == 0


def test_by_default_only_loopback_may_read_the_metrics() -> None:
    default = parse_networks(MetricsConfig().allow)
    assert all(default.holds(p) for p in ("127.0.0.1", "::1", "::ffff:127.0.0.1"))
    outside = ("10.0.0.1", "192.168.1.1", "2001:db8::1", "127.0.0.2", "unknown")
    assert not any(default.holds(p) for p in outside)


async def test_a_measured_store_passes_actions_and_the_audit_trail_through(
    store_url: str,
) -> None:
    """The wrapper the running proxy uses: every change still writes its event."""
    m = Metrics()
    async with opened(store_url) as raw:
        store: Any = MeasuredStore(raw, m)
        act = Action(at=1000, actor_key="k", actor_name="admin", how=How.SESSION)
        made = await store.create(
            NewToken("JIRAUSER1", "alice", "CI", "$argon2id$x", 1, None, "k"), act, limit=5
        )
        await store.rotate(made.id, "$argon2id$y", None, act)
        await store.update_policy(made.id, act, scope="read")
        await store.update_description(made.id, "CI read", act)
        assert await store.delete(made.id, act)
        page = await store.audit_events(AuditQuery(user_key="k"), 0, 10)
        assert [e.kind for e in page.items] == [
            "revoked", "renamed", "policy_changed", "rotated", "created",
        ]  # fmt: skip
        assert {e.how for e in page.items} == {"session"}
        assert await store.prune_audit(2000, 10) == 5
    m.flush()
    assert value(m, "apitokenproxy_tokens_created_total") == 1
    assert value(m, "apitokenproxy_tokens_revoked_total") == 1
    assert value(m, "apitokenproxy_store_query_seconds_count", operation="rotate") == 1
    assert value(m, "apitokenproxy_store_query_seconds_count", operation="audit_events") == 1
