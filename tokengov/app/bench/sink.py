"""``tokengov bench sink``: the ClickHouse writer against a bare insert, and the reports over
millions of events.

1. Writer: N call events in 200-event batch envelopes on a real (embedded) broker,
   consumed by :class:`SinkWriter` into chdb — decode, price, serialize, event-id
   lookup, plan, insert (the views fill the rollups), commit. Rows/s from its first
   message to its last commit; once with the writer's decoder processes (``--decoders``,
   the worker's default) and once decoding in the writer's own thread.
2. Baseline: the same rows, already built (as columns), inserted with a bare
   clickhouse-connect ``client.insert`` in the same batch size into the same (emptied)
   tables, views included.
3. Decode ceiling: the same messages decoded, priced and serialized to Native blocks
   in this one process, no I/O, as a decoder process does it (warmed up, the collector
   off) — where the writer's time goes.
4. Reports: ``--events`` call events (and an outcome per task, and alerts)
   generated inside ClickHouse with ``INSERT … SELECT FROM numbers()``, then each
   report's latency (best of 3) through the same code path ``tokengov report`` uses.
"""

from __future__ import annotations

import gc
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.core.kafka import connection
from tokengov.core.policy import Policy, load_policy
from tokengov.core.topics import Topics, ensure_topics, topic_specs
from tokengov.sinks.clickhouse.batch import Flush
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.encode import DecodePool, default_decoders
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.process_tuning import tune_gc
from tokengov.sinks.clickhouse.reader import StoreReader
from tokengov.sinks.clickhouse.reports import REPORTS, ReportWindow, run_report
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import COLUMNS, SinkConfig, SinkWriter, column_types

__all__ = ["SinkBenchResult", "run"]

MODELS = ("gpt-4.1", "gpt-4.1-mini", "o4-mini", "claude-sonnet-4", "claude-haiku-3.5")
TEAMS = ("search", "support", "research", "growth", "unattributed")
WORKFLOWS = ("support-triage", "doc-qa", "ticket-summary", "deep-research", "unattributed")
START = datetime(2026, 9, 1, tzinfo=UTC)


@dataclass
class SinkBenchResult:
    writer_rows: int
    writer_s: float
    inline_s: float
    decoders: int
    bare_s: float
    decode_s: float
    report_events: int
    generate_s: float
    reports: dict[str, tuple[float, int]]  # name → (best latency s, rows returned)

    @property
    def writer_rate(self) -> float:
        return self.writer_rows / self.writer_s

    @property
    def inline_rate(self) -> float:
        return self.writer_rows / self.inline_s

    @property
    def bare_rate(self) -> float:
        return self.writer_rows / self.bare_s

    @property
    def decode_rate(self) -> float:
        return self.writer_rows / self.decode_s


def _events(n: int) -> list[dict[str, Any]]:
    """``n`` call events of tasks of ~10 calls, spread over a day."""
    docs = []
    for i in range(n):
        task = i // 10
        docs.append(
            {
                "kind": "call",
                "schema_version": 1,
                "event_id": str(uuid.uuid4()),
                "ts": (START + timedelta(milliseconds=i * 400)).isoformat(),
                "team": TEAMS[task % 5],
                "workflow": WORKFLOWS[task % 5],
                "task_id": f"t-{task}",
                "agent": "planner",
                "step": i % 10,
                "provider": "openai",
                "model": MODELS[i % 5],
                "tokens": {
                    "input": 1200 + i % 900,
                    "output": 300,
                    "cached_input": 800,
                    "cache_write": 0,
                    "reasoning": 20,
                },
                "components": {"system": 400, "tool_definitions": 300, "history": 250},
                "attempt": 1 + (i % 17 == 0),
                "tool_calls": 1,
                "tool_name": "search_docs",
                "latency_ms": 850,
                "status": "ok",
                "cost_usd": None,
            }
        )
    return docs


def _messages(docs: list[dict[str, Any]], envelope: int) -> list[tuple[bytes, bytes]]:
    """(key, value) batch envelopes of one task's events each (one partition)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_task.setdefault(doc["task_id"], []).append(doc)
    out: list[tuple[bytes, bytes]] = []
    chunk: list[dict[str, Any]] = []
    key = b""
    # Envelopes group consecutive tasks that share a key hash bucket; simplest: one task's
    # calls per envelope, grouped up to ``envelope`` events by task key.
    for task, items in by_task.items():
        chunk.extend(items)
        key = task.encode()
        if len(chunk) >= envelope:
            out.append((key, orjson.dumps(chunk)))
            chunk = []
    if chunk:
        out.append((key, orjson.dumps(chunk)))
    return out


def _decode_rows(
    messages: list[tuple[bytes, bytes]], policy: Policy, store: ClickHouseStore, run: int
) -> tuple[list[Any], float]:
    """The rows of ``messages`` (for the bare insert), and the time one process takes to
    decode, price and serialize them as the writer's decoders do: warmed up, and with the
    collector off (a decoder process collects cycles itself, every few hundred runs; on here,
    it would rescan the bench's own data again and again)."""
    decoder = MessageDecoder(lambda: policy.catalog)
    pool = DecodePool(0, column_types(store), decoder, decoder.catalog)
    pool.encoder.warm()
    values: list[bytes | None] = [value for _key, value in messages]
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for i in range(0, len(values), run):
            pool.encode_here("events", values[i : i + run])
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    rows = [item.row for v in values for item in decoder.decode("events", v).items]
    return rows, elapsed


def _empty(store: ClickHouseStore) -> None:
    """token_events and its rollups emptied, and ClickHouse's merges at rest."""
    for table in ("token_events", "spend_hourly", "spend_daily"):
        store.command(f"TRUNCATE TABLE {table}")
    settle(store)


def _bench_writer(
    store: ClickHouseStore,
    bootstrap: str,
    messages: list[tuple[bytes, bytes]],
    rows: int,
    policy: Policy,
    batch_rows: int,
    decoders: int,
    progress: Callable[[str], None],
) -> float:
    _empty(store)
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    ensure_topics(bootstrap, topic_specs(prefix=prefix, event_partitions=4))
    topics = Topics.with_prefix(prefix)
    producer = Producer(
        {
            **connection(bootstrap).librdkafka_config(),
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    for key, value in messages:
        producer.produce(topics.events, value, key=key)
        producer.poll(0)
    producer.flush(60)
    progress(f"produced {len(messages):,} envelopes")
    done = threading.Event()

    def stage(name: str, _flush: Flush) -> None:
        if name == "committed" and writer.counters.rows_inserted.get("token_events", 0) >= rows:
            done.set()

    writer = SinkWriter(
        bootstrap=bootstrap,
        topics=topics,
        store=store,
        decoder=MessageDecoder(lambda: policy.catalog),
        config=SinkConfig(
            group_id=f"{prefix}sink", max_rows=batch_rows, max_delay_s=0.5, decoders=decoders
        ),
        on_stage=stage,
    )
    writer.start()
    try:
        if not done.wait(600):
            raise RuntimeError(f"writer did not finish: {writer.error or writer.counters}")
        finished = time.monotonic()
    finally:
        writer.stop()
    if writer.error is not None:
        raise RuntimeError(f"writer failed: {writer.error}")
    stored = store.fetch("SELECT count() FROM token_events").scalar()
    if stored != rows or writer.counters.row_path_flushes:
        raise RuntimeError(f"writer stored {stored} of {rows} rows: {writer.counters}")
    counters = writer.counters
    progress(
        f"writer: {counters.flushes} flushes, {counters.lookups_in_memory} duplicate lookups "
        "settled in memory (its own rows), the others by ClickHouse"
    )
    first = counters.first_message_at
    assert first is not None
    return finished - first


def _bench_bare(store: ClickHouseStore, rows: list[Any], batch_rows: int) -> float:
    _empty(store)
    client = store.client()
    columns = list(COLUMNS["token_events"])
    # The rows as columns, prepared before the clock starts: the fastest bare insert.
    batches = [
        list(zip(*rows[i : i + batch_rows], strict=True)) for i in range(0, len(rows), batch_rows)
    ]
    started = time.perf_counter()
    for data in batches:
        client.insert("token_events", data, column_names=columns, column_oriented=True)
    return time.perf_counter() - started


def generate_history(store: ClickHouseStore, events: int) -> None:
    """``events`` calls over 90 days, one outcome per 10-call task, an alert per 1,000."""
    for table in ("token_events", "task_outcomes", "alerts", "spend_hourly", "spend_daily"):
        store.command(f"TRUNCATE TABLE {table}")
    seconds = 90 * 86400
    start = START.strftime("%Y-%m-%d %H:%M:%S")
    teams = "['search','support','research','growth','unattributed']"
    flows = "['support-triage','doc-qa','ticket-summary','deep-research','unattributed']"
    models = "['gpt-4.1','gpt-4.1-mini','o4-mini','claude-sonnet-4','claude-haiku-3.5']"
    settings = {"max_insert_threads": 2, "max_threads": 2}
    store.command(
        f"""
INSERT INTO token_events (event_id, ts, team, workflow, task_id, agent, step, provider, model,
    input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens,
    system_tokens, history_tokens, attempt, tool_calls, status, cost_usd, cost_source,
    schema_version)
SELECT toString(generateUUIDv4(number)),
    toDateTime64('{start}', 3, 'UTC')
        + toIntervalMillisecond(intDiv(number * {seconds}000, {events})),
    {teams}[intDiv(number, 10) % 5 + 1], {flows}[intDiv(number, 10) % 5 + 1],
    concat('t-', toString(intDiv(number, 10))), 'planner', number % 10, 'openai',
    {models}[number % 5 + 1],
    1000 + number % 3000, 100 + number % 500, number % 700, 0, number % 50,
    300, number % 600, 1 + (number % 17 = 0), number % 4,
    if(number % 31 = 0, 'error', 'ok'),
    toDecimal128((1000 + number % 3000) * 4 + (100 + number % 500) * 16, 12) / 10000000,
    if(number % 5 = 4, 'unpriced', 'catalog'), 1
FROM numbers({events})""",
        settings=settings,
    )
    store.command(
        f"""
INSERT INTO task_outcomes (event_id, ts, team, workflow, task_id, status, quality, schema_version)
SELECT toString(generateUUIDv4(number + {events})),
    toDateTime64('{start}', 3, 'UTC')
        + toIntervalMillisecond(intDiv((number * 10 + 9) * {seconds}000, {events})),
    {teams}[number % 5 + 1], {flows}[number % 5 + 1], concat('t-', toString(number)),
    ['success','success','success','failure','abandoned'][intDiv(number, 5) % 5 + 1],
    (number % 100) / 100, 1
FROM numbers({events // 10})""",
        settings=settings,
    )
    store.command(
        f"""
INSERT INTO alerts (alert_id, fingerprint, kind, severity, status, team, workflow, task_id,
    labels, summary, evidence, starts_at)
SELECT toString(number), concat('runaway|', toString(number % 500)),
    ['runaway','retry_storm','budget_threshold','loop'][number % 4 + 1],
    ['critical','warning'][number % 2 + 1], ['firing','resolved'][number % 3 = 0 ? 2 : 1],
    {teams}[number % 5 + 1], {flows}[number % 5 + 1], concat('t-', toString(number)),
    map('limit', 'max_tool_calls'), 'bench alert', '{{}}',
    toDateTime64('{start}', 3, 'UTC') + toIntervalSecond(number * 777 % {seconds})
FROM numbers({max(events // 1000, 10)})""",
        settings=settings,
    )


def settle(store: ClickHouseStore, timeout_s: float = 300.0) -> int:
    """Wait until ClickHouse's background merges of the fresh data are done (a store at
    rest, as analysts meet it); returns the active parts of token_events."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        merging = store.fetch(
            "SELECT count() FROM system.merges WHERE database = currentDatabase()"
        ).scalar()
        if not merging:
            break
        time.sleep(0.5)
    return int(
        store.fetch(
            "SELECT count() FROM system.parts WHERE database = currentDatabase() "
            "AND table = 'token_events' AND active"
        ).scalar()
    )


def _bench_reports(store: ClickHouseStore, policy: Policy) -> dict[str, tuple[float, int]]:
    reader = StoreReader(store.dsn)
    window = ReportWindow(START, START + timedelta(days=90), policy=policy)
    out: dict[str, tuple[float, int]] = {}
    try:
        for name in REPORTS:
            best = float("inf")
            rows = 0
            for _ in range(3):
                started = time.perf_counter()
                rows = len(run_report(name, reader, window).rows)
                best = min(best, time.perf_counter() - started)
            out[name] = (best, rows)
    finally:
        reader.close()
    return out


def run(
    *,
    writer_events: int,
    report_events: int,
    policy_path: Path,
    bootstrap: str | None = None,
    batch_rows: int = 50_000,
    decoders: int | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> SinkBenchResult:
    policy = load_policy(policy_path)
    tune_gc()  # as `tokengov worker --role sink` does
    decoders = default_decoders() if decoders is None else decoders
    messages = _messages(_events(writer_events), 200)
    with tempfile.TemporaryDirectory(prefix="tokengov-bench-sink-") as tmp:
        broker: EmbeddedBroker | None = None
        if bootstrap is None:
            broker = EmbeddedBroker(Path(tmp) / "broker", port=free_port())
            broker.start(detach=False)
            bootstrap = broker.bootstrap
        store = ClickHouseStore(f"chdb://{Path(tmp) / 'clickhouse'}")
        try:
            migrate(store)
            config = SinkConfig()
            rows, decode_s = _decode_rows(messages, policy, store, config.run_messages)
            progress(f"decoded and serialized {len(rows):,} rows without I/O in {decode_s:.2f} s")
            # The bench's own data (every message, every row) lives to the end: keep it out of
            # the collector's scans, which would otherwise slow whatever runs next.
            gc.freeze()
            # The bare insert runs first (an empty store) and again last; the faster counts.
            bare_s = _bench_bare(store, rows, batch_rows)
            progress(f"bare insert: {len(rows):,} rows in {bare_s:.2f} s")
            writer_s = _bench_writer(
                store, bootstrap, messages, len(rows), policy, batch_rows, decoders, progress
            )
            progress(f"writer ({decoders} decoders): {len(rows):,} rows in {writer_s:.2f} s")
            inline_s = _bench_writer(
                store, bootstrap, messages, len(rows), policy, batch_rows, 0, progress
            )
            progress(f"writer (decoding in its thread): {len(rows):,} rows in {inline_s:.2f} s")
            again_s = _bench_bare(store, rows, batch_rows)
            progress(f"bare insert again: {len(rows):,} rows in {again_s:.2f} s")
            bare_s = min(bare_s, again_s)
            started = time.perf_counter()
            generate_history(store, report_events)
            generate_s = time.perf_counter() - started
            progress(f"generated {report_events:,} events in ClickHouse in {generate_s:.1f} s")
            parts = settle(store)
            progress(f"background merges settled: token_events has {parts} active parts")
            reports = _bench_reports(store, policy)
        finally:
            store.close()
            if broker is not None:
                broker.stop()
    return SinkBenchResult(
        len(rows),
        writer_s,
        inline_s,
        decoders,
        bare_s,
        decode_s,
        report_events,
        generate_s,
        reports,
    )
