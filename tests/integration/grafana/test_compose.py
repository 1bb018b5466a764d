"""docker-compose.yml, validated offline: Debian's `docker-compose` resolves it without an
engine (`docker-compose config`), then the resolved file is checked service by service; the
topic init script is run with a recording stand-in for kafka-topics.sh and must create
exactly tokengov.core.topics.topic_specs()."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tokengov.core.topics import topic_specs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
COMPOSE = REPO / "docker-compose.yml"
SECRETS = {
    "GRAFANA_ADMIN_PASSWORD": "admin-pw",
    "CLICKHOUSE_WRITER_PASSWORD": "writer-pw",
    "CLICKHOUSE_GRAFANA_PASSWORD": "reader-pw",
}
BINARY = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    BINARY is None,
    reason="docker-compose (Debian package `docker-compose`) is not installed; CI installs it",
)
KAFKA = ("kafka-1", "kafka-2", "kafka-3")
WORKERS = ("streams", "sink", "router", "otlp")


def _config(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert BINARY is not None
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("DOCKER")}
    return subprocess.run(
        [BINARY, "-f", str(COMPOSE), *args, "config"],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    if BINARY is None:
        pytest.skip("docker-compose (Debian package `docker-compose`) is not installed")
    done = _config("--profile", "demo", "--profile", "annotations", env=SECRETS)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = yaml.safe_load(done.stdout)
    return data


@needs_compose
@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_every_secret_is_required(missing: str) -> None:
    done = _config(env={k: v for k, v in SECRETS.items() if k != missing})
    assert done.returncode != 0
    assert "set it" in done.stderr


def test_services(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {
        *KAFKA,
        "kafka-init",
        "clickhouse",
        "migrate",
        *WORKERS,
        "grafana",
        "grafana-annotations",
        "fleet",
        "prometheus",
    }
    for name, service in services.items():
        image = service["image"]
        # Pinned: an explicit version tag, never latest.
        assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", image), f"{name}: image {image!r} not pinned"
        assert service.get("restart") in {"unless-stopped", "no", "on-failure"}, name
    for name in (*KAFKA, "clickhouse", "grafana", *WORKERS):
        assert services[name]["restart"] == "unless-stopped", name
    for one_shot in ("kafka-init", "migrate"):
        assert services[one_shot]["restart"] == "no"
    assert services["fleet"]["profiles"] == ["demo"]
    assert services["fleet"]["command"][:2] == ["fleet", "--bootstrap"]
    assert services["migrate"]["command"] == ["db", "migrate"]
    for worker in WORKERS:
        assert services[worker]["command"] == ["worker", "--role", worker]
    # `--scale streams=N` needs no fixed name and no published port.
    assert "container_name" not in services["streams"] and "ports" not in services["streams"]


def test_healthchecks_and_start_order(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in (*KAFKA, "clickhouse", "grafana"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and check["retries"] > 0, name
    deps = {name: s.get("depends_on", {}) for name, s in services.items()}
    for broker in KAFKA:
        assert deps["kafka-init"][broker] == {"condition": "service_healthy"}
    assert deps["migrate"]["clickhouse"] == {"condition": "service_healthy"}
    assert deps["grafana"]["clickhouse"] == {"condition": "service_healthy"}
    for worker in (*WORKERS, "fleet"):
        assert deps[worker]["kafka-init"] == {"condition": "service_completed_successfully"}
        assert deps[worker]["migrate"] == {"condition": "service_completed_successfully"}
    assert deps["grafana-annotations"]["grafana"] == {"condition": "service_healthy"}


def test_kafka_is_kraft_without_auto_create(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    voters = services["kafka-1"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.count("@") == 3
    for n, broker in enumerate(KAFKA, start=1):
        env = services[broker]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_NODE_ID"] == str(n)
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert any(v["target"] == "/var/lib/kafka/data" for v in _volumes(services[broker]))
    assert "zookeeper" not in " ".join(services)


def _volumes(service: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target, *mode = v.split(":")
            out.append({"source": source, "target": target, "mode": mode[0] if mode else "rw"})
        else:
            out.append({"source": v.get("source", ""), "target": v["target"]})
    return out


def test_data_lives_in_named_volumes(resolved: dict[str, Any]) -> None:
    services, named = resolved["services"], set(resolved["volumes"])
    for name, target in [
        ("kafka-1", "/var/lib/kafka/data"),
        ("clickhouse", "/var/lib/clickhouse"),
        ("grafana", "/var/lib/grafana"),
    ]:
        (mount,) = [v for v in _volumes(services[name]) if v["target"] == target]
        assert mount["source"] in named, name


def test_clickhouse_users_and_grafana_security(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    ch_mounts = {v["target"]: v["source"] for v in _volumes(services["clickhouse"])}
    users = ch_mounts["/etc/clickhouse-server/users.d/tokengov.xml"]
    text = Path(users).read_text()
    assert '<password from_env="CLICKHOUSE_WRITER_PASSWORD" />' in text
    assert '<password from_env="CLICKHOUSE_GRAFANA_PASSWORD" />' in text
    assert "GRANT SELECT ON tokengov.*" in text and "<readonly>1</readonly>" in text
    config = ch_mounts["/etc/clickhouse-server/config.d/tokengov.xml"]
    assert Path(config) == REPO / "deploy/clickhouse/config.d/tokengov.xml"
    writer_dsn = services["sink"]["environment"]["TOKENGOV_CLICKHOUSE_URL"]
    assert writer_dsn == "http://tokengov_writer:writer-pw@clickhouse:8123/tokengov"

    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "admin-pw"
    assert env["TOKENGOV_GRAFANA_CLICKHOUSE_PASSWORD"] == "reader-pw"
    assert env["GF_PLUGINS_PREINSTALL_SYNC"].startswith("grafana-clickhouse-datasource@4.")
    mounts = {v["target"]: v["source"] for v in _volumes(services["grafana"])}
    assert Path(mounts["/etc/grafana/provisioning"]) == REPO / "grafana" / "provisioning"
    assert Path(mounts["/var/lib/grafana/dashboards/tokengov"]) == REPO / "grafana" / "dashboards"
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/tokengov.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/tokengov"


def test_topic_init_creates_exactly_the_project_topics(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    init = resolved["services"]["kafka-init"]
    mounts = {v["target"]: v["source"] for v in _volumes(init)}
    script = Path(mounts["/deploy/create-topics.sh"])
    calls = tmp_path / "calls"
    recorder = tmp_path / "kafka-topics.sh"
    # Stands in for Kafka's CLI: records each invocation; every topic is new.
    recorder.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    recorder.chmod(recorder.stat().st_mode | stat.S_IEXEC)
    env = {**init["environment"], "KAFKA_TOPICS_BIN": str(recorder), "PATH": os.environ["PATH"]}
    done = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    created: dict[str, tuple[int, int, dict[str, str]]] = {}
    for line in calls.read_text().splitlines():
        args = line.split()
        if "--create" not in args:
            continue
        assert "--if-not-exists" in args
        assert args[args.index("--bootstrap-server") + 1] == env["KAFKA_BOOTSTRAP"]
        configs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--config")
        created[args[args.index("--topic") + 1]] = (
            int(args[args.index("--partitions") + 1]),
            int(args[args.index("--replication-factor") + 1]),
            configs,
        )
    partitions = int(env["TOKENGOV_EVENT_PARTITIONS"])
    expected = {s.name: s for s in topic_specs(event_partitions=partitions)}
    assert set(created) == set(expected)
    assert created["tokengov.decisions"][2]["cleanup.policy"] == "compact"
    for name, (count, rf, configs) in created.items():
        assert count == expected[name].partitions, name
        assert rf == 3 and configs.pop("min.insync.replicas") == "2"
        assert configs == expected[name].config, name


def test_workers_have_healthchecks_and_prometheus_scrapes_them(resolved: dict[str, Any]) -> None:
    """Issue 16: each worker serves /readyz on TOKENGOV_METRICS_PORT (its healthcheck);
    Prometheus scrapes every replica of each (dns_sd on the service name) with the rules."""
    services = resolved["services"]
    for worker in WORKERS:
        service = services[worker]
        assert service["environment"]["TOKENGOV_METRICS_PORT"] == "9400"
        test = " ".join(service["healthcheck"]["test"])
        assert service["healthcheck"]["test"][0] == "CMD" and "127.0.0.1:9400/readyz" in test
    prometheus = services["prometheus"]
    assert prometheus["restart"] == "unless-stopped" and prometheus["healthcheck"]["retries"] > 0
    assert resolved["services"]["grafana"]["depends_on"]["prometheus"] == {
        "condition": "service_healthy"
    }
    mounts = {v["target"]: Path(v["source"]) for v in _volumes(prometheus)}
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert mounts["/etc/prometheus/rules.yml"] == REPO / "deploy/prometheus/rules.yml"
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    scraped = {
        name: sd["port"]
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    assert scraped == dict.fromkeys(WORKERS, 9400)


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool (Debian package `prometheus`) is not installed; "
    "tests/integration/test_worker_metrics.py checks every rule's metrics against a scrape",
)
def test_promtool_accepts_the_rules_and_the_config(tmp_path: Path) -> None:
    rules = REPO / "deploy/prometheus/rules.yml"
    done = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the config names the rules at their path in the container: point it at the file here
    config = (REPO / "deploy/prometheus/prometheus.yml").read_text()
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/rules.yml", str(rules)))
    done = subprocess.run(
        ["promtool", "check", "config", str(local)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
