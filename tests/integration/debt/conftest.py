"""Fixtures for the debt report: a tmp chdb store holding DESIGN.md's tables, and a real
headless chromium driven over the DevTools protocol.

The DDL below is a stand-in with DESIGN.md's table and column names, so the report
is tested against the real engine while the schema owner (sinks/clickhouse) writes
the real one; the lead reconciles the two.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import clickhouse_connect
import pytest

from streams.debt.findings import Finding
from tokengov.contracts import CallEvent, Outcome
from tokengov.policy import PriceCatalog
from tokengov.pricing import price_call

DDL = (
    """CREATE TABLE token_events (
        event_id String, ts DateTime64(3, 'UTC'), team LowCardinality(String),
        workflow LowCardinality(String), task_id String, agent String,
        parent_agent Nullable(String), step UInt32, provider LowCardinality(String),
        model LowCardinality(String), input_tokens UInt64, output_tokens UInt64,
        cached_input_tokens UInt64, cache_write_tokens UInt64, reasoning_tokens UInt64,
        system_tokens UInt64, tool_definitions_tokens UInt64, retrieved_tokens UInt64,
        history_tokens UInt64, tool_responses_tokens UInt64, handoff_tokens UInt64,
        memory_tokens UInt64, attempt UInt32, tool_calls UInt32, tool_name Nullable(String),
        latency_ms Nullable(UInt32), status LowCardinality(String),
        cost_usd Decimal(38, 12), schema_version UInt8
    ) ENGINE = ReplacingMergeTree ORDER BY (team, workflow, ts, event_id)""",
    """CREATE TABLE task_outcomes (
        event_id String, ts DateTime64(3, 'UTC'), team LowCardinality(String),
        workflow LowCardinality(String), task_id String, status LowCardinality(String),
        quality Nullable(Float64), schema_version UInt8
    ) ENGINE = ReplacingMergeTree ORDER BY (team, workflow, ts, event_id)""",
    """CREATE TABLE findings (
        finding_id String, ts DateTime64(3, 'UTC'), area LowCardinality(String),
        team LowCardinality(String), workflow String, agent Nullable(String),
        detector LowCardinality(String), evidence String,
        estimated_waste_tokens_per_day UInt64, estimated_waste_usd_per_day Decimal(38, 12),
        confidence Float64, better_pattern String
    ) ENGINE = ReplacingMergeTree ORDER BY (team, workflow, detector, ts, finding_id)""",
    """CREATE TABLE spend_daily (
        day Date, team LowCardinality(String), workflow LowCardinality(String),
        model LowCardinality(String), calls UInt64, input_tokens UInt64, output_tokens UInt64,
        cached_input_tokens UInt64, cache_write_tokens UInt64, reasoning_tokens UInt64,
        cost_usd Decimal(38, 12), retries UInt64, errors UInt64
    ) ENGINE = SummingMergeTree ORDER BY (day, team, workflow, model)""",
)

ROLLUP = """INSERT INTO spend_daily
    SELECT toDate(ts) AS day, team, workflow, model, count(), sum(input_tokens),
           sum(output_tokens), sum(cached_input_tokens), sum(cache_write_tokens),
           sum(reasoning_tokens), sum(cost_usd), countIf(attempt > 1), countIf(status != 'ok')
    FROM (SELECT * FROM token_events ORDER BY ts LIMIT 1 BY event_id)
    GROUP BY day, team, workflow, model"""

EVENT_COLUMNS = (
    "event_id",
    "ts",
    "team",
    "workflow",
    "task_id",
    "agent",
    "parent_agent",
    "step",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "system_tokens",
    "tool_definitions_tokens",
    "retrieved_tokens",
    "history_tokens",
    "tool_responses_tokens",
    "handoff_tokens",
    "memory_tokens",
    "attempt",
    "tool_calls",
    "tool_name",
    "latency_ms",
    "status",
    "cost_usd",
    "schema_version",
)
FINDING_COLUMNS = (
    "finding_id",
    "ts",
    "area",
    "team",
    "workflow",
    "agent",
    "detector",
    "evidence",
    "estimated_waste_tokens_per_day",
    "estimated_waste_usd_per_day",
    "confidence",
    "better_pattern",
)


@dataclass
class Store:
    client: Any
    dsn: str

    def insert_events(self, events: Sequence[CallEvent | Outcome], catalog: PriceCatalog) -> None:
        calls, outcomes = [], []
        for e in events:
            if isinstance(e, CallEvent):
                t, c = e.tokens, e.components
                calls.append(
                    [
                        e.event_id,
                        e.ts,
                        e.team,
                        e.workflow,
                        e.task,
                        e.agent,
                        e.parent_agent,
                        e.step,
                        e.provider,
                        e.model,
                        t.input,
                        t.output,
                        t.cached_input,
                        t.cache_write,
                        t.reasoning,
                        c.system,
                        c.tool_definitions,
                        c.retrieved,
                        c.history,
                        c.tool_responses,
                        c.handoff,
                        c.memory,
                        e.attempt,
                        e.tool_calls,
                        e.tool_name,
                        e.latency_ms,
                        e.status,
                        price_call(e, catalog).cost_usd,
                        e.schema_version,
                    ]
                )
            else:
                outcomes.append(
                    [
                        e.event_id,
                        e.ts,
                        e.team,
                        e.workflow,
                        e.task_id,
                        e.status,
                        e.quality,
                        e.schema_version,
                    ]
                )
        if calls:
            self.client.insert("token_events", calls, column_names=list(EVENT_COLUMNS))
        if outcomes:
            self.client.insert(
                "task_outcomes",
                outcomes,
                column_names=[
                    "event_id",
                    "ts",
                    "team",
                    "workflow",
                    "task_id",
                    "status",
                    "quality",
                    "schema_version",
                ],
            )

    def roll_up(self) -> None:
        self.client.command("TRUNCATE TABLE spend_daily")
        self.client.command(ROLLUP)

    def insert_findings(self, findings: Sequence[Finding]) -> None:
        rows = [
            [
                f.finding_id,
                f.ts,
                f.area,
                f.team,
                f.workflow,
                f.agent,
                f.detector,
                json.dumps(f.evidence),
                f.estimated_waste_tokens_per_day,
                f.estimated_waste_usd_per_day,
                f.confidence,
                f.better_pattern,
            ]
            for f in findings
        ]
        if rows:
            self.client.insert("findings", rows, column_names=list(FINDING_COLUMNS))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh embedded ClickHouse (chdb) with the report's tables. One per test: chdb
    holds one data directory per process, so the client is closed at the end."""
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    client = clickhouse_connect.get_client(dsn=dsn)
    try:
        for statement in DDL:
            client.command(statement)
        yield Store(client, dsn)
    finally:
        client.close()


# ------------------------------------------------------------------ chromium

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)


PROBE = """(() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(s => {
    const r = s.getBoundingClientRect();
    const style = getComputedStyle(s);
    return {id: s.id, width: r.width, height: r.height,
            visible: style.display !== 'none' && style.visibility !== 'hidden' && r.width > 0,
            marks: s.querySelectorAll('polyline.series, rect.bar').length};
  });
  const table = document.querySelector('table#findings');
  const rows = table ? [...table.querySelectorAll('tbody tr')].map(
      tr => [...tr.querySelectorAll('td')].map(td => td.innerText)) : null;
  return {title: document.title, charts, findings: rows,
          resources: performance.getEntriesByType('resource').map(e => e.name)};
})()"""


async def _cdp_check(ws_url: str, url: str, timeout_s: float) -> PageCheck:
    check = PageCheck()
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        ids = iter(range(1, 10_000))
        pending: dict[int, asyncio.Future[Any]] = {}
        loaded = asyncio.Event()

        async def reader() -> None:
            async for msg in ws:
                data = json.loads(msg.data)
                if "id" in data and data["id"] in pending:
                    pending.pop(data["id"]).set_result(data)
                method = data.get("method")
                params = data.get("params", {})
                if method == "Runtime.consoleAPICalled" and params.get("type") in (
                    "error",
                    "assert",
                ):
                    check.console_errors.append(json.dumps(params.get("args")))
                elif method == "Runtime.exceptionThrown":
                    check.exceptions.append(json.dumps(params.get("exceptionDetails")))
                elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                    check.log_errors.append(params["entry"].get("text", ""))
                elif method == "Page.loadEventFired":
                    loaded.set()

        async def send(method: str, **params: Any) -> Any:
            n = next(ids)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            pending[n] = future
            await ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
            reply = await asyncio.wait_for(future, timeout_s)
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply.get("result", {})

        task = asyncio.create_task(reader())
        try:
            for domain in ("Runtime", "Log", "Page"):
                await send(f"{domain}.enable")
            await send("Page.navigate", url=url)
            await asyncio.wait_for(loaded.wait(), timeout_s)
            result = await send("Runtime.evaluate", expression=PROBE, returnByValue=True)
            check.probe = result["result"]["value"]
        finally:
            task.cancel()
    return check


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    """``load(path) -> PageCheck``: open a file in a real headless chromium (fresh
    profile, no network services) and report console errors and what the page shows."""
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "chromium is not installed (apt-get install chromium); CI installs it, see docs/debt.md"
        )
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit {process.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])

        def load(path: Path, timeout_s: float = 30) -> PageCheck:
            async def run() -> PageCheck:
                url = f"http://127.0.0.1:{port}/json/list"
                async with aiohttp.ClientSession() as session, session.get(url) as response:
                    targets = await response.json(content_type=None)
                page = next(t for t in targets if t.get("type") == "page")
                return await _cdp_check(page["webSocketDebuggerUrl"], path.as_uri(), timeout_s)

            return asyncio.run(run())

        yield load
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
