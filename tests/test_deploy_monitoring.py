"""The monitoring examples in deploy/ (Grafana dashboard, Prometheus alert rules), checked
against what a live proxy really exports, and the metric list in docs/observability.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from apitokenproxy.app import create_app
from apitokenproxy.config import config_from_dict

from .conftest import FakeClock, GatewayTestServer, base_config
from .fakes import JIRA_USERS, FakeUpstream, basic

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus-alerts.yaml"
DOCS = ROOT / "docs" / "observability.md"
NAME = re.compile(r"\b(apitokenproxy_[a-z0-9_]+)")
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in data["panels"] for target in panel["targets"]]


def balanced(expr: str) -> bool:
    depth = 0
    for c in expr:
        depth += {"(": 1, ")": -1, "{": 1, "}": -1, "[": 1, "]": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


def test_the_alert_rules_are_well_formed() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names))
    # The four the issue asks for, at least.
    for wanted in ("UpstreamErrors", "High5xxRate", "StoreUnreachable", "RevocationListenerDown"):
        assert f"Apitokenproxy{wanted}" in names
    for rule in found:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+m", rule["for"])
        assert balanced(rule["expr"]), rule["alert"]


def test_the_dashboard_is_well_formed() -> None:
    data = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in data["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in data["templating"]["list"]] == ["datasource"]
    for panel in data["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert balanced(target["expr"]), panel["title"]


@pytest.fixture
async def exported(aiohttp_server: Any, aiohttp_client: Any, postgres_url: str) -> dict[str, str]:
    """Every metric family a live proxy exports (on PostgreSQL, which has the most), by type."""
    upstream = await aiohttp_server(FakeUpstream("jira", JIRA_USERS).app())
    config = config_from_dict(base_config(str(upstream.make_url("")).rstrip("/"), postgres_url))
    client = await aiohttp_client(GatewayTestServer(create_app(config, clock=FakeClock())))
    # Some traffic, so labelled families have samples too.
    await client.get("/rest/api/2/myself", headers=basic("alice", "alice-pw"))
    resp = await client.get("/__apitokenproxy/metrics")
    assert resp.status == 200
    text = await resp.text()
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def sample_names(families: dict[str, str]) -> set[str]:
    names = set()
    for family, kind in families.items():
        # prometheus_client declares a counter's family without its _total.
        base = family.removesuffix("_total")
        names.update(base + suffix for suffix in SUFFIXES[kind])
    return names


async def test_every_metric_they_name_is_exported(exported: dict[str, str]) -> None:
    referenced = {
        name
        for expr in [*dashboard_exprs(), *(rule["expr"] for rule in rules())]
        for name in NAME.findall(expr)
    }
    assert referenced  # the files were read
    assert referenced <= sample_names(exported), referenced - sample_names(exported)


async def test_the_docs_describe_every_exported_metric(exported: dict[str, str]) -> None:
    documented = set(NAME.findall(DOCS.read_text()))
    ours = {name for name in exported if name.startswith("apitokenproxy_")}
    missing = {n for n in ours if n not in documented and n + "_total" not in documented}
    assert not missing
