"""``tokengov bench streams``: the real worker against a naive Faust agent, same run, same work.

1. Throughput of ``--role governance``, ``--role debt`` and ``--role streams`` (both: what
   ``--role all`` runs), each in its own worker process: a realistic mix (batch envelopes
   of 200 events, as the SDK sends them) is pushed as fast as the broker takes it; the
   clock stops when the last event of every partition has been processed (a probe task at
   the end of each partition crosses a limit: its alert is the proof; the debt role, which
   raises none, shows it by committing every event, and so does the streams role).
2. Detection latency of ``--role streams`` at 50 % and 80 % of the capacity it showed in
   step 1 (so the figure does not depend on how busy the machine is): the same mix offered
   at that rate; every 100 ms a probe task makes the call that crosses its limit (``ts`` =
   when it was sent); latency = alert on the topic − that call. p50 / p99. The 1-minute
   load average is recorded at the end of every run.
3. The framework's floor: a Faust agent with the worker's settings that acks the same
   messages and does nothing else (:mod:`tokengov.app.bench.bare_faust`); its CPU per event
   is what Faust and aiokafka cost any role before tokengov's own work, and
   ``1 / (floor + the stages' CPU per event)`` bounds what one process can reach.
4. The naive baseline: one event per message, one ``async for`` per event,
   pydantic validation, a table write per event — same core, same alerts.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from tokengov.app.bench.bare_faust import bare_faust_command, bare_faust_group
from tokengov.app.bench.common import start_process, stop_process, worker_command
from tokengov.app.bench.workload import BENCH_POLICY, Workload, envelopes, partition_of
from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.core.kafka import connection
from tokengov.core.topics import Topics, TopicSpec, ensure_topics, topic_specs

__all__ = ["StreamsBench", "run"]


#: The roles measured, each in its own worker process (``tokengov worker --role …``).
ROLES = ("governance", "debt", "streams")
#: The framework's floor, measured after the roles (:mod:`tokengov.app.bench.bare_faust`).
FLOOR = "bare Faust"
#: The shares of the measured capacity of ``--role streams`` offered in the latency runs.
LATENCY_SHARES = (0.5, 0.8)


@dataclass
class RoleRun:
    role: str
    events: int
    seconds: float
    load_average: float  # the 1-minute load average when the run ended
    cpu_seconds: float | None = None  # the worker process's CPU time (user + system) in the run

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_event(self) -> float | None:
        """What the worker spent per event, whatever else ran on the machine."""
        return self.cpu_seconds * 1e6 / self.events if self.cpu_seconds and self.events else None

    @property
    def cpu_share(self) -> float | None:
        """The worker's CPU time over the run's wall time: below 1, it waited or was crowded out
        (the broker and the bench's producer share the cores)."""
        return self.cpu_seconds / self.seconds if self.cpu_seconds and self.seconds else None


@dataclass
class LatencyRun:
    share: float  # of the measured capacity
    offered_rate: int  # events/s
    events: int
    latencies_ms: list[float]
    lost_probes: int
    load_average: float

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class StreamsBench:
    roles: dict[str, RoleRun] = field(default_factory=dict)
    latency: list[LatencyRun] = field(default_factory=list)
    #: the bare Faust agent over the same mix (:mod:`tokengov.app.bench.bare_faust`)
    floor: RoleRun | None = None
    naive_events: int = 0
    naive_seconds: float = 0.0

    @property
    def naive_per_s(self) -> float:
        return self.naive_events / self.naive_seconds if self.naive_seconds else 0.0


def _load_average() -> float:
    return os.getloadavg()[0]


def _cpu_seconds(pid: int) -> float | None:
    """A process's CPU time so far (user + system, all its threads), from /proc; ``None`` where
    there is no /proc (the table then leaves the column empty)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # after the command's ")": state is field 3, so utime (14) and stime (15) are [11], [12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class AlertWatch:
    """Follows the alerts topic in a thread; remembers when each task's alert arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                **connection(bootstrap).librdkafka_config(),
                "group.id": f"b-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
            }
        )
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(1000, 0.05):
                if msg.error() is None and (value := msg.value()) is not None:
                    task = orjson.loads(value).get("task_id")
                    if task and task not in self.seen:
                        self.seen[task] = time.time()

    def wait(self, tasks: set[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if tasks <= self.seen.keys():
                return True
            time.sleep(0.002)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def _committed_end(bootstrap: str, group: str, topic: str, timeout_s: float) -> float:
    """When ``group`` has committed every partition of ``topic`` up to its current end: how
    a role that raises no alert (``--role debt``) shows it has processed everything. The
    debt role commits what it acked every 0.1 s, and stage 1 of ``--role streams`` after each
    flush, which a quiet stream gets within ~0.15 s of its last message
    (``partition_stage.IDLE_FLUSH_S`` on the 0.1 s timer), so this is at most ~0.1 s (debt)
    or ~0.15 s (streams) late."""
    consumer = Consumer(
        {
            **connection(bootstrap).librdkafka_config(),
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
            if all(tp.offset >= ends[tp.partition] for tp in committed):
                return time.time()
            time.sleep(0.02)
        raise RuntimeError(f"group {group} did not commit {topic} to its end in {timeout_s:.0f} s")
    finally:
        consumer.close()


def _producer(bootstrap: str) -> Producer:
    return Producer(
        {
            **connection(bootstrap).librdkafka_config(),
            "linger.ms": 5,
            "batch.num.messages": 1000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        }
    )


def _warm_up(
    wl: Workload,
    producer: Producer,
    topics: Topics,
    watch: AlertWatch,
    log: Path,
    *,
    single: bool = False,
    timeout_s: float = 60,
    committed: tuple[str, str] | None = None,
) -> None:
    """One probe per partition: returns once the worker has loaded and processed them all
    (their alerts are out; with ``committed`` = (bootstrap, group): the group committed them)."""
    probes = set()
    now = datetime.now(UTC)
    for p in range(wl.partitions):
        task = next(
            f"warm-{p}-{i}"
            for i in range(10_000)
            if partition_of(f"warm-{p}-{i}", wl.partitions) == p
        )
        probes.add(task)
        events = wl.probe(task, now)
        if single:
            for event in events:
                producer.produce(topics.events, key=task.encode(), value=orjson.dumps(event))
        else:
            key, value = envelopes(events)[0]
            producer.produce(topics.events, key=key, value=value)
    producer.flush(30)
    try:
        if committed is not None:
            _committed_end(*committed, topics.events, timeout_s)
        elif not watch.wait(probes, timeout_s):
            raise RuntimeError("no alert")
    except RuntimeError as exc:
        tail = log.read_bytes()[-3000:].decode("utf-8", "replace")
        raise RuntimeError(
            f"the worker did not start within the warm-up ({exc}); {log} ends with:\n{tail}"
        ) from exc


def _throughput(
    wl: Workload,
    producer: Producer,
    topics: Topics,
    watch: AlertWatch,
    tasks: int,
    *,
    single: bool,
    alerts: bool = True,
    committed: tuple[str, str] | None = None,
) -> tuple[int, float]:
    """Push the mix; returns (events, seconds until the last partition's probe alerted and,
    with ``committed`` = (bootstrap, group), the group committed every event)."""
    start = datetime.now(UTC)
    per_partition = wl.by_partition(tasks, start)
    run = uuid.uuid4().hex[:6]
    probes = set()
    for p, events in per_partition.items():
        task = next(
            f"end-{run}-{p}-{i}"
            for i in range(10_000)
            if partition_of(f"end-{run}-{p}-{i}", wl.partitions) == p
        )
        probes.add(task)
        events.extend(wl.probe(task, start))
    total = sum(len(e) for e in per_partition.values())
    if single:
        messages = [
            (e["task_id"].encode(), orjson.dumps(e)) for es in per_partition.values() for e in es
        ]
    else:
        messages = [m for es in per_partition.values() for m in envelopes(es)]
    began = time.time()
    for key, value in messages:
        while True:
            try:
                producer.produce(topics.events, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    ended = 0.0
    if committed is not None:
        ended = _committed_end(*committed, topics.events, 600)
    if alerts:
        if not watch.wait(probes, 600):
            raise RuntimeError("the worker did not process every partition in time")
        ended = max(ended, *(watch.seen[t] for t in probes))
    return total, ended - began


def _latency(
    wl: Workload, producer: Producer, topics: Topics, watch: AlertWatch, rate: int, seconds: float
) -> tuple[int, list[float], int]:
    """Offer ``rate`` events/s for ``seconds``; probes cross their limit every 100 ms."""
    run = uuid.uuid4().hex[:6]
    n_probes = int(seconds * 10)
    probes = [f"lat-{run}-{i}" for i in range(n_probes)]
    now = datetime.now(UTC)
    primer = [e for t in probes for e in wl.probe(t, now, calls=12)]
    for p in range(wl.partitions):
        mine = [e for e in primer if partition_of(e["task_id"], wl.partitions) == p]
        for key, value in envelopes(mine):
            producer.produce(topics.events, key=key, value=value)
    producer.flush(30)
    tasks_needed = int(rate * seconds / 8) + 100
    background = wl.by_partition(tasks_needed, now)
    messages = [m for es in background.values() for m in envelopes(es)]
    sent_at: dict[str, float] = {}
    began = time.time()
    sent_events = 0
    next_probe = 0
    i = 0
    while time.time() - began < seconds and i < len(messages):
        elapsed = time.time() - began
        while i < len(messages) and sent_events < rate * elapsed:
            key, value = messages[i]
            producer.produce(topics.events, key=key, value=value)
            sent_events += value.count(b'"kind":')
            i += 1
        while next_probe < n_probes and next_probe * 0.1 <= elapsed:
            task = probes[next_probe]
            crossing = wl.probe(task, datetime.now(UTC), calls=13)[-1]
            sent_at[task] = time.time()
            producer.produce(topics.events, key=task.encode(), value=orjson.dumps(crossing))
            next_probe += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(60)
    watch.wait(set(sent_at), 30)
    latencies = [(watch.seen[t] - sent_at[t]) * 1000 for t in sent_at if t in watch.seen]
    return sent_events, latencies, len(sent_at) - len(latencies)


def run(
    *,
    bootstrap: str | None = None,
    tasks: int = 40_000,
    naive_tasks: int = 3_000,
    partitions: int = 8,
    latency_seconds: float = 10.0,
    seed: int = 7,
) -> StreamsBench:
    result = StreamsBench()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tokengov-bench-")))
        if os.environ.get("TOKENGOV_BENCH_KEEP"):
            tmp = Path(tempfile.mkdtemp(prefix="tokengov-bench-kept-"))
        if bootstrap is None:
            broker = EmbeddedBroker(tmp / "broker", port=free_port())
            broker.start(detach=False)
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap
        policy = tmp / "policy.yaml"
        policy.write_text(BENCH_POLICY)
        producer = _producer(bootstrap)

        # ---- the real worker: each role in its own process, same mix; then the latency of
        # the full worker (--role streams) at shares of the capacity it just showed; then
        # the framework's floor: a Faust agent that acks the same messages and does no work
        for name in (*ROLES, FLOOR):
            prefix = f"bench{uuid.uuid4().hex[:6]}."
            topics = Topics.with_prefix(prefix)
            ensure_topics(bootstrap, topic_specs(prefix=prefix, event_partitions=partitions))
            log_path = tmp / f"worker-{name}.log"
            if name == FLOOR:
                command = bare_faust_command(bootstrap, prefix, tmp / "data-bare")
                group = bare_faust_group(prefix)
            else:
                command = worker_command(name, policy, tmp / f"data-{name}", bootstrap, prefix)
                group = f"{prefix}tokengov-worker-{name}"  # tokengov.app.worker_app.app_id
            worker = start_process(
                command, log_path, {"TOKENGOV_EVENT_PARTITIONS": str(partitions)}
            )
            stack.callback(stop_process, worker)
            watch = AlertWatch(bootstrap, topics.alerts)
            stack.callback(watch.close)
            wl = Workload(seed, partitions)
            # the roles that raise no alert (debt, the floor) show they are done by committing
            # every event; so does the streams role
            committed = None if name == "governance" else (bootstrap, group)
            _warm_up(wl, producer, topics, watch, log_path, committed=committed)
            cpu_before = _cpu_seconds(worker.pid)
            events, seconds = _throughput(
                wl,
                producer,
                topics,
                watch,
                tasks,
                single=False,
                alerts=name in ("governance", "streams"),
                committed=committed,
            )
            cpu_after = _cpu_seconds(worker.pid)
            cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
            measured = RoleRun(name, events, seconds, _load_average(), cpu)
            if name == FLOOR:
                result.floor = measured
            else:
                result.roles[name] = measured
            if name == "streams":
                capacity = measured.events_per_s
                for share in LATENCY_SHARES:
                    offered = int(capacity * share)
                    sent, latencies, lost = _latency(
                        wl, producer, topics, watch, offered, latency_seconds
                    )
                    result.latency.append(
                        LatencyRun(share, offered, sent, latencies, lost, _load_average())
                    )
            stop_process(worker)

        # ---- the naive baseline, same mix, one event per message
        prefix = f"naive{uuid.uuid4().hex[:6]}."
        topics = Topics.with_prefix(prefix)
        ensure_topics(
            bootstrap,
            [
                *topic_specs(prefix=prefix, event_partitions=partitions),
                TopicSpec(f"{prefix}naive-task-state", partitions, {"cleanup.policy": "compact"}),
            ],
        )
        naive = start_process(
            [
                sys.executable,
                "-m",
                "tokengov.app.bench.naive_streams",
                "--bootstrap",
                bootstrap,
                "--prefix",
                prefix,
                "--policy",
                str(policy),
                "--data-dir",
                str(tmp / "naive"),
                "--partitions",
                str(partitions),
            ],
            tmp / "naive.log",
        )
        stack.callback(stop_process, naive)
        watch = AlertWatch(bootstrap, topics.alerts)
        stack.callback(watch.close)
        wl = Workload(seed, partitions)
        _warm_up(wl, producer, topics, watch, tmp / "naive.log", single=True)
        result.naive_events, result.naive_seconds = _throughput(
            wl, producer, topics, watch, naive_tasks, single=True
        )
    return result
