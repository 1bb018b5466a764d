"""``tokengov bench otlp``: GenAI spans/s through one OTLP receiver process, end to end
(request in → its events acknowledged by Kafka), next to producing the same events directly.

The load: requests of 512 spans (the SDK's ``BatchSpanProcessor`` batch), each 64 traces of
one ``invoke_agent`` span and 7 chat spans (448 GenAI model-call spans a request), made with
the OpenTelemetry SDK and encoded by its OTLP encoder once, then given fresh trace and span
ids per request (so every event is new). The receiver runs as ``tokengov otlp`` in a
process of its own; clients post from this process over loopback.

1. throughput: ``--clients`` concurrent clients post ``--requests`` requests;
2. baseline: the same events (the receiver's own conversion of the same bodies) produced
   with a delivery-checked producer, waiting for every acknowledgement;
3. latency: requests paced at half the measured rate for ``--latency-seconds``; each
   request's time from send to answer (its events acknowledged) is its added latency.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tokengov.app.bench.common import bench_broker, console, percentile, table
from tokengov.core.kafka import CheckedProducer
from tokengov.core.policy import Policy
from tokengov.core.topics import Topics
from tokengov.ingest.otlp.publish import messages
from tokengov.ingest.otlp.runtime import ADDRESS_FILE, converter_for

__all__ = ["OtlpBenchResult", "report", "run"]

TRACES_PER_REQUEST = 64
CALLS_PER_TRACE = 7


@dataclass
class OtlpBenchResult:
    requests: int
    genai_spans: int
    spans_per_request: int
    receiver_seconds: float
    baseline_seconds: float
    offered_rps: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    #: CPU seconds the receiver process spent in the throughput run (None: not on Linux)
    receiver_cpu_s: float | None = None
    #: the machine's 1-minute load average before the throughput run and after the latency
    #: run (on a shared machine the numbers mean little without it)
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def receiver_spans_per_s(self) -> float:
        return self.genai_spans / self.receiver_seconds

    @property
    def baseline_spans_per_s(self) -> float:
        return self.genai_spans / self.baseline_seconds


def _template() -> ExportTraceServiceRequest:
    """One request as the SDK's OTLP exporter encodes it."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for _ in range(TRACES_PER_REQUEST):
        with tracer.start_as_current_span(
            "invoke_agent planner",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
        ):
            for _ in range(CALLS_PER_TRACE):
                with tracer.start_as_current_span(
                    "chat gpt-4.1-mini",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4.1-mini",
                        "gen_ai.response.model": "gpt-4.1-mini",
                        "gen_ai.response.finish_reasons": ["stop"],
                        "gen_ai.usage.input_tokens": 1200,
                        "gen_ai.usage.output_tokens": 300,
                        "gen_ai.usage.cache_read.input_tokens": 800,
                        "server.address": "api.openai.com",
                    },
                ):
                    pass
    provider.shutdown()
    request: ExportTraceServiceRequest = encode_spans(exporter.get_finished_spans())
    return request


def _bodies(count: int, seed: int) -> list[bytes]:
    """``count`` request bodies: the template with fresh trace and span ids each."""
    rng = random.Random(seed)
    template = _template()
    out: list[bytes] = []
    for _ in range(count):
        request = ExportTraceServiceRequest()
        request.CopyFrom(template)
        new_ids: dict[bytes, bytes] = {}
        traces: dict[bytes, bytes] = {}
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    span.trace_id = traces.setdefault(span.trace_id, rng.randbytes(16))
                    span.span_id = new_ids.setdefault(span.span_id, rng.randbytes(8))
                    if span.parent_span_id:
                        span.parent_span_id = new_ids.setdefault(
                            span.parent_span_id, rng.randbytes(8)
                        )
        out.append(request.SerializeToString())
    return out


def _start_receiver(
    bootstrap: str, prefix: str, data_dir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokengov.app.cli.main",
            "otlp",
            *("--port", "0", "--bootstrap", bootstrap, "--data-dir", str(data_dir)),
            *("--topic-prefix", prefix),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "TOKENGOV_POLICY"},
    )
    address_file = data_dir / "worker" / ADDRESS_FILE
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tokengov otlp exited with code {proc.returncode}")
        if address_file.exists():
            doc = json.loads(address_file.read_text())
            if doc.get("pid") == proc.pid:
                return proc, f"http://{doc['host']}:{doc['port']}/v1/traces"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("tokengov otlp did not listen within 60s")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``; None elsewhere). On a
    shared machine it says what the receiver costs whatever else runs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post_all(url: str, bodies: Sequence[bytes], clients: int) -> tuple[float, int]:
    """Post every body with ``clients`` concurrent clients; (seconds, failed requests)."""
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    failures = [0]

    def client() -> None:
        with httpx.Client(headers={"Content-Type": "application/x-protobuf"}, timeout=60) as c:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                if c.post(url, content=bodies[i]).status_code != 200:
                    with lock:
                        failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, failures[0]


def _paced(
    url: str, bodies: Sequence[bytes], rps: float, seconds: float
) -> tuple[list[float], int]:
    """Open-loop requests at ``rps`` for ``seconds``: each request's latency in ms."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    count = max(1, int(rps * seconds))
    start = time.perf_counter()

    def one(i: int, c: httpx.Client) -> None:
        t0 = time.perf_counter()
        ok = c.post(url, content=bodies[i % len(bodies)]).status_code == 200
        with lock:
            latencies.append((time.perf_counter() - t0) * 1000)
            failures[0] += not ok

    with httpx.Client(
        headers={"Content-Type": "application/x-protobuf"},
        timeout=60,
        limits=httpx.Limits(max_connections=32),
    ) as c:
        threads: list[threading.Thread] = []
        for i in range(count):
            due = start + i / rps
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=one, args=(i, c))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
    return latencies, failures[0]


def _baseline(bootstrap: str, topics: Topics, bodies: Sequence[bytes]) -> tuple[float, int]:
    """The same events as the receiver makes of ``bodies``, produced directly; (seconds of
    producing until every acknowledgement, events)."""
    converter = converter_for(Policy(version=1))
    batches: list[list[tuple[str, bytes, bytes]]] = []
    events = 0
    for body in bodies:
        conversion = converter.convert(ExportTraceServiceRequest.FromString(body))
        events += conversion.events
        batches.append(messages(conversion, topics))
    producer = CheckedProducer(
        bootstrap,
        options={"enable.idempotence": True, "compression.type": "lz4", "linger.ms": 2},
    )
    started = time.perf_counter()
    for batch in batches:
        for topic, key, value in batch:
            producer.publish(topic, value, key=key)
    producer.deliver(120, what="baseline events")
    return time.perf_counter() - started, events


def run(
    *,
    bootstrap: str | None,
    requests: int,
    clients: int,
    latency_seconds: float,
    seed: int = 7,
) -> OtlpBenchResult:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    bodies = _bodies(requests, seed)
    genai_per_request = TRACES_PER_REQUEST * CALLS_PER_TRACE
    spans_per_request = TRACES_PER_REQUEST * (CALLS_PER_TRACE + 1)
    with (
        bench_broker(bootstrap, prefix=prefix) as servers,
        tempfile.TemporaryDirectory(prefix="tokengov-bench-otlp-") as tmp,
    ):
        proc, url = _start_receiver(servers, prefix, Path(tmp))
        try:
            _post_all(url, bodies[: max(1, clients)], clients)  # warm up: connections, JIT-free
            load_before = os.getloadavg()[0]
            cpu_before = _cpu_seconds(proc.pid)
            seconds, failures = _post_all(url, bodies, clients)
            cpu_after = _cpu_seconds(proc.pid)
            result = OtlpBenchResult(
                requests=requests,
                genai_spans=requests * genai_per_request,
                spans_per_request=spans_per_request,
                receiver_seconds=seconds,
                baseline_seconds=float("nan"),
                failures=failures,
                load_before=load_before,
            )
            if cpu_before is not None and cpu_after is not None:
                result.receiver_cpu_s = cpu_after - cpu_before
            rps = requests / seconds / 2
            result.offered_rps = rps
            latencies, late_failures = _paced(url, bodies, rps, latency_seconds)
            result.latencies_ms = latencies
            result.failures += late_failures
            result.load_after = os.getloadavg()[0]
        finally:
            proc.terminate()
            proc.wait(30)
        baseline_seconds, events = _baseline(servers, Topics.with_prefix(prefix), bodies)
        if events != result.genai_spans:
            raise RuntimeError(f"the baseline made {events} events of {result.genai_spans} spans")
        result.baseline_seconds = baseline_seconds
    return result


def report(result: OtlpBenchResult) -> None:
    t = table(
        f"tokengov bench otlp — {result.requests:,} requests of {result.spans_per_request} "
        f"spans ({result.genai_spans:,} GenAI model-call spans)",
        ["", "seconds", "GenAI spans/s"],
    )
    t.add_row(
        "receiver: request in → events acknowledged by Kafka",
        f"{result.receiver_seconds:.2f}",
        f"{result.receiver_spans_per_s:,.0f}",
    )
    t.add_row(
        "baseline: the same events produced directly (acknowledged)",
        f"{result.baseline_seconds:.2f}",
        f"{result.baseline_spans_per_s:,.0f}",
    )
    console.print(t)
    ratio = result.receiver_spans_per_s / result.baseline_spans_per_s
    lat: Any = result.latencies_ms
    console.print(
        f"ratio receiver / direct produce: {ratio:.2f}× (target ≥ 20,000 GenAI spans/s per "
        "receiver process)"
    )
    if result.receiver_cpu_s:
        console.print(
            f"receiver process CPU: {result.receiver_cpu_s:.2f} s for {result.genai_spans:,} "
            f"spans = {result.genai_spans / result.receiver_cpu_s:,.0f} GenAI spans per CPU "
            "second"
        )
    console.print(
        f"machine load (1-minute average) {result.load_before:.1f} before the receiver runs, "
        f"{result.load_after:.1f} after, on {os.cpu_count()} CPUs (the targets assume an "
        "otherwise idle core)"
    )
    console.print(
        f"added latency per request at half that rate ({result.offered_rps:.1f} requests/s, "
        f"{len(lat)} requests): p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms "
        f"(target p99 < 50 ms)"
        + (f"; {result.failures} request(s) not answered 200" if result.failures else "")
    )
