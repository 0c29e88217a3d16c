"""The deployment examples in deploy/ and the Dockerfile, checked against the code.

They are not run here (no Docker engine, no cluster, no systemd as PID 1),
so these tests parse them and cross-check what they promise: the health and
readiness paths exist, the ports match the configuration they mount, every
stop grace period is longer than the proxy's own drain, and the
configuration they ship is valid.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from apitokenproxy.app import HEALTH_PREFIX, create_app
from apitokenproxy.config import Config, load_config, parse_config
from apitokenproxy.server import SHUTDOWN_SECONDS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SECRETS = {"APITOKENPROXY_SHARED_SECRET": "s", "APITOKENPROXY_DB_PASSWORD": "p"}


def routes(config: Config) -> set[str]:
    app = create_app(config)
    return {r.canonical for r in app.router.resources()}


def seconds(text: str) -> float:
    value, unit = re.fullmatch(r"(\d+)\s*(s|m)?", str(text)).groups()  # type: ignore[union-attr]
    return float(value) * (60 if unit == "m" else 1)


@pytest.fixture(scope="module")
def shipped() -> Config:
    return load_config(DEPLOY / "config.yaml", SECRETS)


def test_the_shipped_config_is_valid_and_serves_the_probes(shipped: Config) -> None:
    assert shipped.store.url.startswith("postgresql://")
    assert {HEALTH_PREFIX + "/health", HEALTH_PREFIX + "/ready"} <= routes(shipped)


def test_kubernetes(shipped: Config) -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}
    config = parse_config(docs["ConfigMap"]["data"]["config.yaml"], SECRETS)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == config.listen.port
    assert container["readinessProbe"]["httpGet"]["path"] == HEALTH_PREFIX + "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == HEALTH_PREFIX + "/health"
    assert {
        container["readinessProbe"]["httpGet"]["path"],
        container["livenessProbe"]["httpGet"]["path"],
    } <= routes(config)
    assert pod["terminationGracePeriodSeconds"] > SHUTDOWN_SECONDS
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]
    replicas = docs["Deployment"]["spec"]["replicas"]
    assert 0 < docs["PodDisruptionBudget"]["spec"]["minAvailable"] < replicas
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget", "Deployment"):
        spec: dict[str, Any] = docs[kind]["spec"]["selector"]
        assert spec.get("matchLabels", spec) == labels, kind


def test_docker_compose(shipped: Config) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    proxy = compose["services"]["apitokenproxy"]
    assert seconds(proxy["stop_grace_period"]) > SHUTDOWN_SECONDS
    assert proxy["healthcheck"]["test"][1:3] == ["apitokenproxy", "health"]
    assert proxy["ports"] == [str(shipped.listen.port)]
    assert "./config.yaml:/etc/apitokenproxy/config.yaml:ro" in proxy["volumes"]
    assert proxy["healthcheck"]["test"][-1] == "/etc/apitokenproxy/config.yaml"


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "apitokenproxy.service")
    service = unit["Service"]
    assert seconds(service["TimeoutStopSec"]) > SHUTDOWN_SECONDS
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert " serve --config " in service["ExecStart"]
    assert " check-config --config " in service["ExecStartPre"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    health = re.search(r"HEALTHCHECK .*\n\s*CMD (\[.*\])", text)
    assert health is not None
    assert yaml.safe_load(health.group(1))[:2] == ["apitokenproxy", "health"]
    assert "STOPSIGNAL SIGTERM" in text
    assert "8080" not in health.group(0)  # the check follows the configured port
