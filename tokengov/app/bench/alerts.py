"""``tokengov bench alerts``: how long an alert takes from the alerts topic to a team's
webhook, next to a direct HTTP POST to the same webhook in the same run.

The real thing: a Faust worker running the router role on a real (embedded) broker;
alerts produced to ``tokengov.alerts``, each its own group on a critical route with
``group_wait`` (default 1 s), delivered to a signed webhook on loopback. Latency =
webhook receipt − produce. The baseline: the same body POSTed directly with httpx.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from aiohttp import web
from confluent_kafka import Producer

from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.app.router_app import router_app
from tokengov.core.contracts import Alert
from tokengov.core.kafka import connection
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics, ensure_topics, topic_specs
from tokengov.core.worker_context import PolicyHolder, WorkerContext
from tokengov.sinks.router.notification_log import MemoryNotificationLog

__all__ = ["AlertBenchResult", "run_alert_bench", "summarize"]

log = logging.getLogger(__name__)

POLICY = """
version: 1
teams: {{bench: {{owner: bench@example.com}}}}
receivers:
  console: {{type: log}}
  bench-hook: {{type: webhook, url: "{url}/hook", secret_env: TOKENGOV_BENCH_SECRET}}
routes:
  receiver: console
  group_by: [team, kind, task_id]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - {{match: {{team: bench, severity: critical}}, receiver: bench-hook, group_wait: {wait}}}
"""


@dataclass
class AlertBenchResult:
    alerts: int
    group_wait_s: float
    router_ms: list[float]
    baseline_ms: list[float]
    lost: int

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index]


class _Hook:
    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        doc = orjson.loads(await request.read())
        for alert in doc.get("alerts", [doc]):
            key = alert.get("task_id") or alert.get("id")
            if key:
                self.received.setdefault(key, now)
        self.arrived.set()
        return web.Response(status=200)


def _alert(task: str) -> Alert:
    return Alert(
        fingerprint=f"runaway|bench|bench-wf|{task}|max_tool_calls",
        kind="runaway",
        severity="critical",
        team="bench",
        workflow="bench-wf",
        task_id=task,
        labels={"limit": "max_tool_calls"},
        summary=f"task {task} made 13 tool calls; its cost profile allows 12",
        evidence={"observed": 13, "limit": 12},
        starts_at=datetime.now(UTC),
    )


async def _baseline(url: str, hook: _Hook, n: int) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient() as client:
        for i in range(n):
            key = f"baseline-{i}"
            body = orjson.dumps({"alerts": [{"id": key}]})
            sent = time.perf_counter()
            response = await client.post(f"{url}/hook", content=body)
            response.raise_for_status()
            latencies.append((hook.received[key] - sent) * 1000)
    return latencies


async def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _run(
    bootstrap: str, data_dir: Path, n: int, interval_s: float, wait: str
) -> AlertBenchResult:
    import os

    os.environ.setdefault("TOKENGOV_BENCH_SECRET", uuid.uuid4().hex)
    hook = _Hook()
    web_app = web.Application()
    web_app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    ensure_topics(bootstrap, topic_specs(prefix=prefix, event_partitions=2))
    topics = Topics.with_prefix(prefix)
    policy = parse_policy(POLICY.format(url=url, wait=wait))
    settings = Settings(kafka_bootstrap=bootstrap, data_dir=data_dir)
    ctx = WorkerContext(settings, PolicyHolder(policy), topics)
    app, runtime = router_app(
        ctx, app_id=f"bench-router-{uuid.uuid4().hex[:6]}", notification_log=MemoryNotificationLog()
    )
    producer = Producer(
        {**connection(bootstrap).librdkafka_config(), "linger.ms": 0, "log_level": 2}
    )
    sent: dict[str, float] = {}
    try:
        baseline = await _baseline(url, hook, n)
        await app.start()
        await asyncio.wait_for(runtime.ready.wait(), 60)
        # Warm up: the first alert waits for the consumer group to form.
        warm = _alert("warmup")
        producer.produce(topics.alerts, warm.model_dump_json().encode(), key=b"bench")
        producer.flush(10)
        if not await _wait(lambda: "warmup" in hook.received, 60):
            raise RuntimeError("the router never delivered the warm-up alert")
        for i in range(n):
            alert = _alert(f"t-{i}")
            sent[alert.task_id or ""] = time.perf_counter()
            producer.produce(topics.alerts, alert.model_dump_json().encode(), key=b"bench")
            producer.poll(0)
            await asyncio.sleep(interval_s)
        producer.flush(10)
        await _wait(lambda: all(k in hook.received for k in sent), 30)
    finally:
        await app.stop()
        await runner.cleanup()
        producer.flush(5)
        del producer
    router = [(hook.received[k] - t) * 1000 for k, t in sent.items() if k in hook.received]
    return AlertBenchResult(
        alerts=n,
        group_wait_s=policy.routes.routes[0].group_wait.total_seconds()
        if policy.routes.routes[0].group_wait
        else 0.0,
        router_ms=router,
        baseline_ms=baseline,
        lost=len(sent) - len(router),
    )


def run_alert_bench(
    *,
    bootstrap: str | None,
    alerts: int = 40,
    interval_s: float = 0.1,
    group_wait: str = "1s",
) -> AlertBenchResult:
    """Run the benchmark; starts an embedded broker when ``bootstrap`` is None."""
    with tempfile.TemporaryDirectory(prefix="tokengov-bench-alerts-") as tmp:
        tmp_path = Path(tmp)
        broker: EmbeddedBroker | None = None
        if bootstrap is None:
            broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
            broker.start(detach=False)
            bootstrap = broker.bootstrap
        try:
            return asyncio.run(_run(bootstrap, tmp_path / "data", alerts, interval_s, group_wait))
        finally:
            if broker is not None:
                broker.stop()


def summarize(result: AlertBenchResult) -> list[tuple[str, str, str, str]]:
    """Rows: (what, p50 ms, p95 ms, max ms)."""
    rows = []
    for name, values in (
        ("direct POST (baseline)", result.baseline_ms),
        ("alerts topic → router → webhook", result.router_ms),
    ):
        rows.append(
            (
                name,
                f"{AlertBenchResult.pct(values, 0.5):.1f}",
                f"{AlertBenchResult.pct(values, 0.95):.1f}",
                f"{max(values, default=float('nan')):.1f}",
            )
        )
    overhead = [v - result.group_wait_s * 1000 for v in result.router_ms]
    rows.append(
        (
            f"router minus group_wait ({result.group_wait_s:g}s)",
            f"{AlertBenchResult.pct(overhead, 0.5):.1f}",
            f"{AlertBenchResult.pct(overhead, 0.95):.1f}",
            f"{max(overhead, default=float('nan')):.1f}",
        )
    )
    return rows
