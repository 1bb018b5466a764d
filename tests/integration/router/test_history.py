"""``tokengov alerts list|show`` against the real ClickHouse engine (chdb)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clickhouse_connect
import orjson
import pytest
from typer.testing import CliRunner

from tokengov.app.cli import common as cli_common
from tokengov.app.cli.main import app
from tokengov.app.local.broker import free_port
from tokengov.sinks.clickhouse.endpoint import QueryEndpoint
from tokengov.sinks.clickhouse.reader import StoreReader
from tokengov.sinks.clickhouse.rows import ALERT_COLUMNS
from tokengov.sinks.router.history import AlertHistory
from tokengov.sinks.router.notification import NotificationAttempt
from tokengov.sinks.router.notification_log import ClickHouseNotificationLog

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def row(alert_id, fingerprint, kind, team, status, starts_min, *, task=None, ends_min=None):
    return [
        alert_id,
        fingerprint,
        kind,
        "critical",
        status,
        team,
        "support-triage",
        task,
        {"limit": "max_tool_calls"},
        f"{kind} {task or team}",
        orjson.dumps({"observed": 13, "limit": 12}).decode(),
        T0 + timedelta(minutes=starts_min),
        T0 + timedelta(minutes=ends_min) if ends_min is not None else None,
    ]


@pytest.fixture
def populated(chdb_dsn):
    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    client.insert(
        "alerts",
        [
            row("a1", "fp-1", "runaway", "search", "firing", 0, task="t-1"),
            row("a1r", "fp-1", "runaway", "search", "resolved", 0, task="t-1", ends_min=5),
            row("a2", "fp-2", "loop", "search", "firing", 2, task="t-2"),
            row("a3", "fp-3", "budget_threshold", "growth", "firing", 3),
        ],
        column_names=list(ALERT_COLUMNS),
    )
    log = ClickHouseNotificationLog(client)
    for attempt, result, error in [
        (1, "failed", "receiver 'search-hook': HTTP 503"),
        (2, "delivered", ""),
    ]:
        log.record(
            NotificationAttempt(
                alert_id="a2",
                fingerprint="fp-2",
                receiver="search-hook",
                attempt=attempt,
                result=result,
                error=error,
                latency_ms=40,
                ts=T0 + timedelta(minutes=2, seconds=attempt),
                notification_id="n1",
                group_key="g",
                status="firing",
            )
        )
    log.flush()
    assert log.buffered == 0
    yield chdb_dsn
    client.close()


def test_latest_state_per_alert(populated, tmp_path):
    history = AlertHistory.open(populated, tmp_path)
    assert isinstance(history.reader, StoreReader)  # no worker serves this store
    try:
        assert [(a.alert_id, a.status) for a in history.latest()] == [
            ("a3", "firing"),
            ("a2", "firing"),
            ("a1r", "resolved"),
        ]
        assert [a.alert_id for a in history.latest(team="search", status="firing")] == ["a2"]
        assert [a.alert_id for a in history.latest(kind="runaway")] == ["a1r"]
        alerts, notes = history.show("a2")
        assert alerts[0].evidence == {"observed": 13, "limit": 12}
        assert alerts[0].labels == {"limit": "max_tool_calls"}
        assert alerts[0].starts_at == T0 + timedelta(minutes=2)
        assert [(n.attempt, n.result) for n in notes] == [(1, "failed"), (2, "delivered")]
    finally:
        history.close()


def test_cli_list_and_show(populated, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nteams: {search: {owner: s@example.com, receiver: hook}}\n"
        "receivers: {console: {type: log}, hook: {type: webhook, url: 'http://127.0.0.1:9/x'}}\n"
        "routes: {receiver: console}\n"
    )
    runner = CliRunner()
    listed = runner.invoke(
        app, ["alerts", "list", "--status", "firing", "--clickhouse", populated], terminal_width=200
    )
    assert listed.exit_code == 0, listed.output
    assert "a2" in listed.output and "a3" in listed.output and "a1r" not in listed.output
    shown = runner.invoke(
        app,
        ["alerts", "show", "a2", "--clickhouse", populated, "--policy", str(policy)],
        terminal_width=200,
    )
    assert shown.exit_code == 0, shown.output
    for needle in (
        '"observed": 13',
        "search-hook",
        "HTTP 503",
        "delivered",
        "→ hook via routes (only the root matched: team search's own receiver)",
    ):
        assert needle in shown.output, needle
    missing = runner.invoke(app, ["alerts", "show", "nope", "--clickhouse", populated])
    assert missing.exit_code == 1 and "no alert with id" in missing.output


def _cli(*args: str, data_dir) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        "TOKENGOV_DATA_DIR": str(data_dir),
    }
    env.pop("TOKENGOV_CLICKHOUSE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "tokengov.app.cli.main", "alerts", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_list_and_show_while_the_worker_owns_the_store(populated, tmp_path, monkeypatch):
    """The store is held by this process (as the running worker holds it) and served by a
    real query endpoint; ``tokengov alerts`` in another process reads through it and prints
    what it prints when it opens the store itself."""
    assert populated == f"chdb://{tmp_path / 'clickhouse'}"  # the data dir's own store
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nteams: {search: {owner: s@example.com, receiver: hook}}\n"
        "receivers: {console: {type: log}, hook: {type: webhook, url: 'http://127.0.0.1:9/x'}}\n"
        "routes: {receiver: console}\n"
    )
    commands = [
        ("list", "--status", "firing"),
        ("list", "--team", "search", "--limit", "2"),
        ("show", "a2", "--policy", str(policy)),
    ]
    held = _cli(*commands[0], data_dir=tmp_path)
    assert held.returncode == 1 and "cannot open ClickHouse" in held.stderr, held.stderr
    assert "Traceback" not in held.stderr

    # rich reads COLUMNS once, when the CLI's console is made (at import, by whichever test
    # of this process came first): give the in-process console the subprocesses' width
    monkeypatch.setattr(cli_common.console, "_width", 200)
    monkeypatch.setattr(cli_common.console, "_height", 50)
    runner = CliRunner(env={"COLUMNS": "200", "TOKENGOV_CLICKHOUSE_URL": None})
    direct = [
        runner.invoke(app, ["alerts", *c, "--data-dir", str(tmp_path)], terminal_width=200)
        for c in commands
    ]
    endpoint = QueryEndpoint(populated, f"127.0.0.1:{free_port()}", tmp_path)
    endpoint.start()
    try:
        served = [_cli(*c, data_dir=tmp_path) for c in commands]
        missing = _cli("show", "nope", data_dir=tmp_path)
    finally:
        endpoint.stop()
    for command, here, there in zip(commands, direct, served, strict=True):
        assert here.exit_code == 0, here.output
        assert there.returncode == 0, there.stderr
        assert there.stdout == here.output, command
    assert "a2" in served[0].stdout and "a3" in served[0].stdout and "a1r" not in served[0].stdout
    assert all(n in served[2].stdout for n in ('"observed": 13', "HTTP 503", "delivered"))
    assert missing.returncode == 1 and "no alert with id" in missing.stderr
