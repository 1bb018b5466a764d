"""Restarts forget nothing that matters (issue 12, item 4), with the real ``tokengov up``.

The embedded broker keeps its topics in memory: after ``tokengov up`` restarts, every topic
is new and empty while the ClickHouse store on disk holds the day. The scenario of the issue:
a team at $6 of its $10 day budget, the whole stack restarted, $5 more → exactly one 100 %
alert and the budget's throttle decision, and the 50 % alert not published a second time; a
paused task stays paused, a pause a human lifted stays lifted; the token-debt detectors get
their horizon back.

The control: a restart of the worker alone (broker and state topics intact, as in
production) seeds nothing — spend pushed over 80 % then fires 80 % and nothing more, which
a seeded-on-top-of-state budget (twice the spend) would not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from tests.waiting import wait_for
from tokengov.app.local.broker import free_port
from tokengov.core.kafka import read_to_end
from tokengov.core.topics import DECISIONS, EVENTS, NO_AUTO_CREATE

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "tokengov.app.cli.main"]

# $1 per million tokens (input and output): 1,000,000 input tokens cost exactly $1.
POLICY = """\
version: 1
teams:
  search: {owner: search@example.com, receiver: console}
receivers:
  console: {type: log}
prices:
  restart-model: {input: 1.0, output: 1.0}
cost_profiles:
  triage:
    team: search
    expected_tokens_per_outcome: 1000000
    max_tool_calls: 3
    on_runaway: pause
budgets:
  - {scope: team, name: search, period: day, limit_usd: 10, thresholds: [0.5, 0.8, 1.0],
     on_breach: throttle, forecast: false}
routes:
  receiver: console
"""


def call(task: str, *, usd: int = 0, tool_calls: int = 0) -> dict[str, Any]:
    return {
        "kind": "call",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "ts": datetime.now(UTC).isoformat(),
        "team": "search",
        "workflow": "triage",
        "task_id": task,
        "agent": "planner",
        "step": 1,
        "provider": "test",
        "model": "restart-model",
        "tokens": {"input": usd * 1_000_000, "output": 0},
        "tool_calls": tool_calls,
    }


class UpProcess:
    """``tokengov up`` in a subprocess, its output read continuously."""

    def __init__(self, data_dir: Path, policy: Path, port: int) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [
                *CLI,
                "up",
                "--data-dir",
                str(data_dir),
                "--policy",
                str(policy),
                "--port",
                str(port),
                "--status-interval",
                "0.5",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "250"},
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while "Ctrl-C stops everything" not in "".join(self.lines):
            assert self.proc.poll() is None, "up exited early:\n" + "".join(self.lines)
            assert time.monotonic() < deadline, "up not ready:\n" + "".join(self.lines)
            time.sleep(0.1)

    def worker_log(self, chars: int = 8000) -> str:
        return (self.data_dir / "worker.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def query(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*CLI, "query", "--data-dir", str(data_dir), "--format", "json", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def produce(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", **NO_AUTO_CREATE}
    )
    producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(10) == 0


def send(bootstrap: str, *events: dict[str, Any]) -> None:
    for event in events:
        produce(bootstrap, EVENTS, event["task_id"], orjson.dumps(event))


def fingerprints(bootstrap: str) -> Counter[str]:
    return Counter(
        orjson.loads(r.value)["fingerprint"]
        for r in read_to_end(bootstrap, "tokengov.alerts", timeout_s=20)
        if r.value
    )


def decisions(bootstrap: str) -> dict[str, str]:
    """The compacted topic's meaning: the latest action per key."""
    latest: dict[str, str] = {}
    for r in read_to_end(bootstrap, DECISIONS, timeout_s=20):
        if r.key and r.value:
            latest[r.key.decode()] = orjson.loads(r.value)["action"]
    return latest


def stored_alerts(data_dir: Path) -> Counter[str]:
    rows = query(data_dir, "SELECT fingerprint FROM alerts")
    return Counter(row["fingerprint"] for row in rows)


def stored_usd(data_dir: Path) -> str:
    rows = query(data_dir, "SELECT toString(sum(cost_usd)) AS usd FROM spend_daily")
    return str(rows[0]["usd"])


def test_restarted_stack_keeps_budgets_alerts_and_decisions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    day = datetime.now(UTC).date().isoformat()
    budget = f"budget_threshold|search|team:search:day|{day}|usd"
    paused, lifted = "task-paused", "task-lifted"

    # ---- day so far: $6 of $10 (50 % fires), two runaway tasks paused, one pause lifted
    up = UpProcess(data_dir, policy, port)
    try:
        up.wait_ready()
        send(bootstrap, *(call(f"spend-{i}", usd=1) for i in range(6)))
        send(bootstrap, *(call(task, tool_calls=2) for task in (paused, lifted) for _ in range(2)))
        wait_for(
            lambda: (
                {f"{budget}|0.5", f"runaway|search|triage|{paused}|max_tool_calls"}
                <= set(stored_alerts(data_dir))
                and decisions(bootstrap).get(f"task:{lifted}") == "pause"
            ),
            60,
            "the 50 % alert, the runaway alerts stored and the pauses published",
            up.worker_log,
        )
        lift = subprocess.run(
            [*CLI, "decisions", "lift", f"task:{lifted}", "--bootstrap", bootstrap],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert lift.returncode == 0, lift.stderr
        wait_for(
            lambda: (
                query(
                    data_dir,
                    f"SELECT count() AS n FROM decisions WHERE key = '{lifted}' AND action = 'proceed'",
                )[0]["n"]
                == 1
            ),
            60,
            "the lift stored",
            up.worker_log,
        )
        assert stored_usd(data_dir) == "6"
    finally:
        up.stop()

    # ---- the whole stack restarts: every topic is new, the store is the same
    up = UpProcess(data_dir, policy, port)
    try:
        up.wait_ready()
        assert fingerprints(bootstrap) == Counter(), "the new broker starts empty"
        # decisions in force are back on the compacted topic (the lifted one is not)
        wait_for(
            lambda: decisions(bootstrap).get(f"task:{paused}") == "pause",
            60,
            "the pause re-published",
            up.worker_log,
        )
        assert f"task:{lifted}" not in decisions(bootstrap)

        # $9 of $10: 80 % fires and 100 % does not — the evaluation that fires 80 % would
        # fire 100 % too if the stored $6 were counted twice
        send(bootstrap, *(call(f"more-{i}", usd=1) for i in range(3)))
        wait_for(lambda: fingerprints(bootstrap)[f"{budget}|0.8"] == 1, 60, "80 %", up.worker_log)
        assert fingerprints(bootstrap) == Counter([f"{budget}|0.8"]), up.worker_log()
        assert "team:search" not in decisions(bootstrap)

        send(bootstrap, *(call(f"more-{i}", usd=1) for i in range(3, 5)))  # $11 of $10
        wait_for(
            lambda: decisions(bootstrap).get("team:search") == "throttle",
            60,
            "the throttle decision",
            up.worker_log,
        )
        wait_for(lambda: stored_usd(data_dir) == "11", 60, "$11 stored", up.worker_log)
        wait_for(
            lambda: stored_alerts(data_dir)[f"{budget}|1.0"] == 1, 60, "100 % stored", up.worker_log
        )
        # the new broker's alerts: 80 % and 100 % once each; 50 % was published before
        assert fingerprints(bootstrap) == Counter([f"{budget}|0.8", f"{budget}|1.0"]), (
            up.worker_log()
        )
        stored = stored_alerts(data_dir)
        assert {fp: n for fp, n in stored.items() if fp.startswith(budget)} == {
            f"{budget}|0.5": 1,
            f"{budget}|0.8": 1,
            f"{budget}|1.0": 1,
        }
        assert all(n == 1 for n in stored.values()), stored
        log = " ".join(up.worker_log(10**7).split())  # rich wraps long lines
        assert "state was gone; recovered from the store" in log
        # the debt detectors got the day's 10 calls back (all within their horizon)
        assert "debt: 10 of 10 stored events of the horizon replayed" in log
    finally:
        up.stop()
