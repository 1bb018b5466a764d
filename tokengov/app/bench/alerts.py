"""``tokengov bench alerts``: how long an alert takes from the alerts topic to a team's
webhook, and how much of it the router adds beyond the ``group_wait`` it waits on purpose.

The real thing: ``tokengov worker --role router`` (or ``--role all``), the same command
users run, as its own process on a real (embedded) broker, with notifications written to
ClickHouse (chdb) as in production. Alerts are produced to ``tokengov.alerts``, each its own
group on a critical route with ``group_wait`` (default 1 s), and delivered to a signed
webhook on loopback in this process (every signature is checked). Latency = webhook
receipt − produce; the router's overhead = that − ``group_wait``. Each notification
carries ``created_at`` (when its group was flushed, by the worker's clock — the same
machine's), which splits the overhead in two: produce → flush beyond ``group_wait`` (the
consumer's fetch, the agent, the group timer) and flush → POST (delivery queue, signing,
HTTP). The baseline: the same body POSTed directly with httpx to the same webhook.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from aiohttp import web
from confluent_kafka import Producer

from tokengov.app.bench.common import percentile, start_process, stop_process, worker_command
from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.app.worker_app import READY_FILE
from tokengov.core.contracts import Alert
from tokengov.core.kafka import connection
from tokengov.core.settings import Settings
from tokengov.core.signing import SIGNATURE_HEADER, SignatureError, verify
from tokengov.core.topics import Topics, ensure_topics, topic_specs

__all__ = [
    "OVERHEAD_TARGET_MS",
    "AlertBenchResult",
    "Stage",
    "group_wait_seconds",
    "run_alert_bench",
    "summarize",
]

log = logging.getLogger(__name__)

#: ``tokengov bench alerts`` prints whether the router's p95 overhead is within this.
OVERHEAD_TARGET_MS = 100.0

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


@dataclass(frozen=True)
class Stage:
    """One row of the result: a name and its samples in milliseconds."""

    name: str
    ms: list[float]

    def pct(self, q: float) -> float:
        return percentile(self.ms, q)


@dataclass
class AlertBenchResult:
    alerts: int
    role: str
    group_wait_s: float
    baseline_ms: list[float]
    end_to_end_ms: list[float]  # produce → webhook receipt
    to_flush_ms: list[float]  # produce → the notification's created_at
    flush_to_post_ms: list[float]  # created_at → webhook receipt
    lost: int
    bad_signatures: int = 0
    worker_log: Path | None = None

    @property
    def overhead_ms(self) -> list[float]:
        """What the router adds beyond ``group_wait``."""
        return [v - self.group_wait_s * 1000 for v in self.end_to_end_ms]

    def stages(self) -> list[Stage]:
        wait_ms = self.group_wait_s * 1000
        return [
            Stage("direct POST (baseline)", self.baseline_ms),
            Stage("topic → webhook", self.end_to_end_ms),
            Stage("router overhead", self.overhead_ms),  # the above − group_wait
            Stage("  topic → flush", [v - wait_ms for v in self.to_flush_ms]),  # − group_wait
            Stage("  flush → POST", self.flush_to_post_ms),
        ]


@dataclass
class _Hook:
    """The team's webhook: records when each bench alert arrived, checks every signature."""

    secret: str
    received: dict[str, float] = field(default_factory=dict)  # task_id → receipt (epoch s)
    flushed: dict[str, float] = field(default_factory=dict)  # task_id → created_at (epoch s)
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        now = time.time()
        body = await request.read()
        doc = orjson.loads(body)
        if "notification_id" in doc:  # from the router: signed
            try:
                verify(body, request.headers.get(SIGNATURE_HEADER), self.secret)
            except SignatureError as exc:
                self.bad_signatures += 1
                log.error("bench webhook: %s", exc)
                return web.Response(status=401)
        created = doc.get("created_at")
        for alert in doc.get("alerts", []):
            key = alert.get("task_id") or alert.get("id")
            if key and key not in self.received:
                self.received[key] = now
                if created:
                    self.flushed[key] = datetime.fromisoformat(created).timestamp()
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
            sent = time.time()
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
    bootstrap: str, tmp: Path, n: int, interval_s: float, wait: str, role: str
) -> AlertBenchResult:
    secret = uuid.uuid4().hex
    hook = _Hook(secret)
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
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY.format(url=url, wait=wait))
    data_dir = tmp / "data"
    worker_log = tmp / "worker.log"
    env = {"TOKENGOV_BENCH_SECRET": secret, "TOKENGOV_EVENT_PARTITIONS": "2"}
    if role == "router":  # alone, the router needs the notifications table (the sink makes it)
        migrate = start_process(
            [
                sys.executable,
                "-m",
                "tokengov.app.cli.main",
                "db",
                "migrate",
                "--data-dir",
                str(data_dir),
            ],
            worker_log,
            env,
        )
        if await asyncio.to_thread(migrate.wait, 120) != 0:
            raise RuntimeError(f"tokengov db migrate failed; see {worker_log}")
    producer = Producer(
        {**connection(bootstrap).librdkafka_config(), "linger.ms": 0, "log_level": 2}
    )
    sent: dict[str, float] = {}
    worker = start_process(
        worker_command(role, policy, data_dir, bootstrap, prefix), worker_log, env
    )
    try:
        # Warm up: the first alert waits for the worker to start and its group to form.
        warm = _alert("warmup")
        producer.produce(topics.alerts, warm.model_dump_json().encode(), key=b"bench")
        producer.flush(10)
        if not await _wait(lambda: "warmup" in hook.received or worker.poll() is not None, 180):
            raise RuntimeError(f"the worker never delivered the warm-up alert; see {worker_log}")
        # …and every role of the worker up (``all``: the sink's store too), so that nothing
        # is still starting while the alerts are timed.
        ready = Settings(data_dir=data_dir).worker_state_dir / READY_FILE
        if not await _wait(lambda: ready.exists() or worker.poll() is not None, 180):
            raise RuntimeError(f"the worker never wrote {ready}; see {worker_log}")
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}; see {worker_log}")
        baseline = await _baseline(url, hook, n)  # with the worker up and idle
        for i in range(n):
            alert = _alert(f"t-{i}")
            sent[alert.task_id or ""] = time.time()
            producer.produce(topics.alerts, alert.model_dump_json().encode(), key=b"bench")
            producer.poll(0)
            await asyncio.sleep(interval_s)
        producer.flush(10)
        await _wait(lambda: all(k in hook.received for k in sent), 30)
    finally:
        await asyncio.to_thread(stop_process, worker)
        await runner.cleanup()
        producer.flush(5)
        del producer
    got = [k for k in sent if k in hook.received]
    return AlertBenchResult(
        alerts=n,
        role=role,
        group_wait_s=group_wait_seconds(wait),
        baseline_ms=baseline,
        end_to_end_ms=[(hook.received[k] - sent[k]) * 1000 for k in got],
        to_flush_ms=[(hook.flushed[k] - sent[k]) * 1000 for k in got if k in hook.flushed],
        flush_to_post_ms=[
            (hook.received[k] - hook.flushed[k]) * 1000 for k in got if k in hook.flushed
        ],
        lost=len(sent) - len(got),
        bad_signatures=hook.bad_signatures,
        worker_log=worker_log,
    )


def group_wait_seconds(duration: str) -> float:
    """``--group-wait`` in seconds, read by the policy's own parser (a bad one: PolicyError)."""
    from tokengov.core.policy import parse_policy

    policy = parse_policy(POLICY.format(url="http://127.0.0.1", wait=duration))
    wait = policy.routes.routes[0].group_wait
    return wait.total_seconds() if wait is not None else 0.0


def run_alert_bench(
    *,
    bootstrap: str | None,
    alerts: int = 60,
    interval_s: float = 0.1,
    group_wait: str = "1s",
    role: str = "router",
) -> AlertBenchResult:
    """Run the benchmark; starts an embedded broker when ``bootstrap`` is None."""
    group_wait_seconds(group_wait)  # a bad duration fails here, before anything starts
    keep = bool(os.environ.get("TOKENGOV_BENCH_KEEP"))
    with tempfile.TemporaryDirectory(prefix="tokengov-bench-alerts-") as tmp_name:
        tmp = (
            Path(tempfile.mkdtemp(prefix="tokengov-bench-alerts-kept-")) if keep else Path(tmp_name)
        )
        broker: EmbeddedBroker | None = None
        if bootstrap is None:
            broker = EmbeddedBroker(tmp / "broker", port=free_port())
            broker.start(detach=False)
            bootstrap = broker.bootstrap
        try:
            return asyncio.run(_run(bootstrap, tmp, alerts, interval_s, group_wait, role))
        finally:
            if broker is not None:
                broker.stop()


def summarize(result: AlertBenchResult) -> list[tuple[str, str, str, str, str, str]]:
    """Rows: (what, p50 ms, p95 ms, p99 ms, max ms, p95 ratio to the direct POST)."""
    base_p95 = percentile(result.baseline_ms, 95)
    rows = []
    for stage in result.stages():
        p95 = stage.pct(95)
        rows.append(
            (
                stage.name,
                f"{stage.pct(50):.1f}",
                f"{p95:.1f}",
                f"{stage.pct(99):.1f}",
                f"{max(stage.ms, default=float('nan')):.1f}",
                f"{p95 / base_p95:,.0f}×" if base_p95 > 0 else "—",
            )
        )
    return rows
