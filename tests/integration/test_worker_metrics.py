"""One real worker process (every role: streams, ClickHouse sink on chdb, router) on the
session broker, scraped at its real /metrics with prometheus-client's text-format parser:
the counters move with real traffic (N events in → processed == N, a duplicate, poison
dead-lettered by reason, rows stored, alerts and decisions by kind, a notification
delivered, a refused policy reload), consumer lag reaches 0, /readyz says ready after the
assignment and /healthz answers; every metric deploy/prometheus/rules.yml and the
"tokengov pipeline" dashboard query is among those served."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.streams.conftest import Cluster, WorkerProcess
from tests.integration.streams.events import POLICY, call, tool_calls
from tests.waiting import wait_for
from tokengov.app.local.broker import free_port
from tokengov.core.topics import Topics, ensure_topics, topic_specs
from tokengov.sinks.grafana.dashboards import pipeline

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

ROUTED = POLICY.replace(
    "routes: {receiver: console}",
    "routes: {receiver: console, group_wait: 0s, group_interval: 1s}",
)

Samples = dict[str, list[tuple[dict[str, str], float]]]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def scrape(port: int) -> Samples:
    status, text = get(port, "/metrics")
    assert status == 200, text
    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name].append((s.labels, s.value))
    return out


def exposed_names(port: int) -> set[str]:
    """Every series name /metrics can carry, families without samples included (a counter
    of errors that did not happen is announced with its HELP and TYPE)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names: set[str] = set()
    for family in text_string_to_metric_families(get(port, "/metrics")[1]):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def referenced_metrics() -> set[str]:
    """The tokengov metrics the alerting rules and the pipeline dashboard query."""
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    exprs = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    exprs += list(pipeline.EXPRESSIONS)
    return {name for e in exprs for name in re.findall(r"\btokengov_[a-z_]+", e)}


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def start_worker(cluster: Cluster, tmp_path: Path, role: str) -> tuple[WorkerProcess, int]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "tokengov.app.cli.main", "worker",
        "--role", role, "--policy", str(cluster.policy), "--data-dir", str(tmp_path / "data"),
        "--bootstrap", cluster.bootstrap, "--topic-prefix", cluster.prefix, "--no-create-topics",
        "--metrics-port", str(port),
    ]  # fmt: skip
    process = WorkerProcess(cmd, tmp_path / f"worker-{role}.log")
    cluster.workers.append(process)
    return process, port


@pytest.fixture
def worker(
    request: pytest.FixtureRequest,
    bootstrap: str,
    topic_prefix: str,
    topic_names: Topics,
    tmp_path: Path,
):
    ensure_topics(bootstrap, topic_specs(prefix=topic_prefix, event_partitions=4))
    policy = tmp_path / "policy.yaml"
    policy.write_text(ROUTED)
    cluster = Cluster(bootstrap, topic_prefix, topic_names, tmp_path, policy)
    try:
        yield cluster, *start_worker(cluster, tmp_path, getattr(request, "param", "all"))
    finally:
        cluster.close()


def test_worker_metrics_move_with_real_traffic(worker: tuple[Cluster, WorkerProcess, int]) -> None:
    c, process, port = worker
    wait_for(lambda: get(port, "/healthz")[0] == 200, 60, "/healthz", process.tail)
    answers: list[tuple[int, str]] = []

    def ready() -> bool:
        answers.append(get(port, "/readyz"))
        return answers[-1][0] == 200

    wait_for(ready, 90, "/readyz", process.tail)
    assert answers[-1] == (200, "ready\n")
    for status, body in answers[:-1]:  # before: not ready, with the checks' reasons
        assert status == 503 and all(
            line.split(":")[0] in ("partitions", "clickhouse", "router", "otlp")
            for line in body.splitlines()
        ), body

    good = [call(f"m-{i}") for i in range(20)]
    runaway = tool_calls("m-runaway", 6)  # support-triage: max_tool_calls 5 → runaway, pause
    research = call("m-budget", team="research", workflow="lab")
    c.send(*good, *runaway, research)
    c.send(good[0])  # the same event_id again: a duplicate
    c.send_raw(b"m-poison", b"{not json")
    bad = call("m-bad")
    bad["tokens"] = {"input": -5, "output": 1}
    c.send_raw(b"m-bad", orjson.dumps(bad))
    processed = len(good) + len(runaway) + 1

    def settled() -> Samples | None:
        s = scrape(port)
        done = (
            value(s, "tokengov_stream_events_total", outcome="processed") == processed
            and value(s, "tokengov_stream_events_total", outcome="duplicate") == 1
            and value(s, "tokengov_debt_events_total", outcome="observed") == processed
            and value(s, "tokengov_sink_rows_inserted_total", table="token_events") == processed
            and value(s, "tokengov_notifications_total", receiver="console", result="delivered")
            >= 1
            and s.get("tokengov_consumer_lag_messages")
            and all(v == 0 for _, v in s["tokengov_consumer_lag_messages"])
            # the events topic's lag is sampled (every 5 s) once its partitions are assigned
            and c.topics.events
            in {labels["topic"] for labels, _ in s["tokengov_consumer_lag_messages"]}
        )
        return s if done else None

    s = wait_for(settled, 90, "the counters to settle", process.tail)
    dead = {
        (labels["component"], labels["reason"]): v
        for labels, v in s["tokengov_dead_letters_total"]
        if v
    }
    assert dead == {("streams", "invalid_json"): 1, ("streams", "contract"): 1}
    assert value(s, "tokengov_stream_events_total", outcome="dead_lettered") == 2
    assert value(s, "tokengov_sink_events_skipped_total", reason="invalid") == 2
    assert value(s, "tokengov_alerts_published_total", kind="runaway") == 1
    assert value(s, "tokengov_decisions_published_total", action="pause") == 1
    assert value(s, "tokengov_event_to_alert_seconds_count") >= 1
    lag_topics = {labels["topic"] for labels, _ in s["tokengov_consumer_lag_messages"]}
    assert c.topics.events in lag_topics
    assert value(s, "tokengov_sink_flushes_total") >= 1
    assert value(s, "tokengov_sink_flush_seconds_count") == value(s, "tokengov_sink_flushes_total")
    ratios = {labels["budget"]: v for labels, v in s["tokengov_budget_spent_ratio"]}
    assert any("research" in budget and 0 < v < 1 for budget, v in ratios.items()), ratios
    assert value(s, "tokengov_policy_generation") == 1
    assert value(s, "tokengov_debt_events_total", outcome="duplicate") == 1
    # the otlp role (part of all) reports its receiver's counters on the same endpoint
    assert "tokengov_otlp_spans_received_total" in s
    assert value(s, "tokengov_otlp_spans_received_total") == 0
    assert value(s, "tokengov_debt_handovers_total", result="failed") == 0

    # one family per name (several roles share dead letters and lag), and Prometheus' own
    # linter accepts the exposition when promtool (Debian package `prometheus`) is there
    text = get(port, "/metrics")[1]
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families)), families
    if (promtool := shutil.which("promtool")) is not None:
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

    # every metric the rules and the dashboard use is served (promtool checks their syntax)
    missing = referenced_metrics() - exposed_names(port)
    assert not missing, f"rules or dashboard use metrics no process serves: {sorted(missing)}"

    # SIGHUP with a broken file: refused and counted, the old policy stays in force
    c.policy.write_text("version: 1\nteams: [not, a, mapping]\n")
    process.signal(signal.SIGHUP)
    s = wait_for(
        lambda: (
            (x := scrape(port))
            and value(x, "tokengov_policy_reloads_total", result="refused") == 1
            and x
        ),
        30,
        "the refused reload to be counted",
        process.tail,
    )
    assert value(s, "tokengov_policy_reloads_total", result="applied") == 0
    assert value(s, "tokengov_policy_generation") == 1
    assert get(port, "/healthz")[0] == 200


@pytest.mark.parametrize("worker", ["sink"], indirect=True)
def test_a_sink_only_worker_is_ready_and_scraped(
    worker: tuple[Cluster, WorkerProcess, int],
) -> None:
    """docker-compose's sink service: the writer alone (no Faust consumer), ready once
    ClickHouse has the schema, its rows counted."""
    c, process, port = worker
    wait_for(lambda: get(port, "/readyz") == (200, "ready\n"), 90, "/readyz", process.tail)
    c.send(*(call(f"s-{i}") for i in range(3)))
    s = wait_for(
        lambda: (
            (x := scrape(port))
            and value(x, "tokengov_sink_rows_inserted_total", table="token_events") == 3
            # the writer's thread samples its lag every LAG_SAMPLE_S, once it has a position:
            # the gauge may still be empty when the rows are in
            and x.get("tokengov_consumer_lag_messages")
            and x
        ),
        60,
        "three rows stored and the writer's lag sampled",
        process.tail,
    )
    assert {labels["group"] for labels, _ in s["tokengov_consumer_lag_messages"]} == {
        f"{c.prefix}tokengov-sink"
    }
    assert "tokengov_stream_events_total" not in s  # no streams role in this process
    assert process.alive()
