"""Fixtures for the debt report: a tmp chdb store with the project's real schema, and a
real headless chromium driven over the DevTools protocol."""

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
import pytest

from tokengov.core.contracts import CallEvent, Outcome
from tokengov.core.policy import PriceCatalog
from tokengov.core.pricing import price_call
from tokengov.sinks.clickhouse.dedup import existing_event_ids
from tokengov.sinks.clickhouse.encode import epoch_ms
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.reader import StoreReader
from tokengov.sinks.clickhouse.rows import (
    FINDING_COLUMNS,
    OUTCOME_COLUMNS,
    TOKEN_EVENT_COLUMNS,
    event_row,
    finding_row,
    outcome_row,
)
from tokengov.sinks.clickhouse.rows import Finding as SinkFinding
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.streams.debt.findings import Finding


@dataclass
class Store:
    """The real ClickHouse schema (``tokengov.sinks.clickhouse`` migrations, rollups kept by its
    materialized views) in a tmp chdb store, filled the way the sink's writer fills it."""

    store: ClickHouseStore
    dsn: str

    def reader(self) -> StoreReader:
        """The store as the report reads it: a read-only :class:`StoreReader`."""
        return StoreReader(self.dsn)

    def insert_events(self, events: Sequence[CallEvent | Outcome], catalog: PriceCatalog) -> None:
        """Insert as the writer does: event ids already stored are left out (the writer's
        own lookup), so a replay counts once in the raw tables and in the rollups."""
        calls = [e for e in events if isinstance(e, CallEvent)]
        outcomes = [e for e in events if isinstance(e, Outcome)]
        for table, items, columns in (
            ("token_events", calls, TOKEN_EVENT_COLUMNS),
            ("task_outcomes", outcomes, OUTCOME_COLUMNS),
        ):
            stored = existing_event_ids(
                self.store, table, [e.event_id for e in items], [epoch_ms(e.ts) for e in items]
            )
            fresh = [e for e in items if e.event_id not in stored]
            rows = [
                event_row(e, price_call(e, catalog)) if isinstance(e, CallEvent) else outcome_row(e)
                for e in fresh
            ]
            if rows:
                self.store.insert(table, rows, columns=columns)

    def roll_up(self) -> None:
        """Nothing to do: ClickHouse keeps spend_hourly and spend_daily itself."""

    def insert_findings(self, findings: Sequence[Finding]) -> None:
        rows = [
            finding_row(SinkFinding.model_validate(f.model_dump(mode="json"))) for f in findings
        ]
        if rows:
            self.store.insert("findings", rows, columns=FINDING_COLUMNS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh embedded ClickHouse (chdb) with the project's schema. One per test: chdb
    holds one data directory per process, so the store is closed at the end."""
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    store = ClickHouseStore(dsn)
    try:
        migrate(store)
        yield Store(store, dsn)
    finally:
        store.close()


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
