"""The read-only query endpoint and ``tokengov query``: the owner of an embedded store answers
other processes; without an owner, the CLI opens the store itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from tokengov.app.local.broker import free_port
from tokengov.core.errors import QueryError
from tokengov.sinks.clickhouse.endpoint import STATE_FILE, QueryEndpoint, read_token
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.reader import (
    EndpointReader,
    StoreReader,
    endpoint_address,
    open_reader,
)
from tokengov.sinks.clickhouse.store import ClickHouseStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "TOKENGOV_DATA_DIR": str(data_dir),
        "COLUMNS": "200",
    }
    env.pop("TOKENGOV_CLICKHOUSE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "tokengov.app.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def served(data_dir):
    """A migrated store under ``data_dir`` with a few rows, served by this process."""
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    store = ClickHouseStore(dsn)
    migrate(store)
    store.command(
        "INSERT INTO token_events (event_id, ts, team, workflow, task_id, agent, step, provider, "
        "model, input_tokens, output_tokens, attempt, tool_calls, status, cost_usd, "
        "cost_source, schema_version) VALUES "
        "('e1', '2026-10-30 12:00:00', 'search', 'triage', 't1', 'a', 0, 'p', 'gpt-4.1-mini', "
        "1000, 100, 1, 0, 'ok', 0.000560, 'catalog', 1), "
        "('e2', '2026-10-30 13:00:00', 'support', 'summary', 't2', 'a', 0, 'p', 'o4-mini', "
        "2000, 10, 1, 0, 'error', 0.002244, 'catalog', 1)"
    )
    endpoint = QueryEndpoint(dsn, f"127.0.0.1:{free_port()}", data_dir)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()
        store.close()
    assert not (data_dir / STATE_FILE).exists()


def test_endpoint_answers_reads_and_refuses_writes(served, data_dir):
    token = read_token(data_dir)
    reader = EndpointReader(served.host, served.port, token)
    try:
        result = reader.query(
            "SELECT team, sum(cost_usd) AS cost_usd FROM token_events GROUP BY team ORDER BY team"
        )
        assert result.columns == ["team", "cost_usd"]
        assert result.rows == [
            ("search", Decimal("0.000560000000")),
            ("support", Decimal("0.002244000000")),
        ]
        assert all(isinstance(cost, Decimal) for _, cost in result.rows)
        params = reader.query(
            "SELECT count() FROM token_events WHERE team = {t:String}", {"t": "search"}
        )
        assert params.rows == [(1,)]
        for statement in (
            "DROP TABLE token_events",
            "INSERT INTO alerts SELECT * FROM alerts",
            "SELECT 1; DROP TABLE token_events",
            "ALTER TABLE x DELETE WHERE 1",
        ):
            with pytest.raises(QueryError, match=r"read-only|one statement"):
                reader.query(statement)
        # The engine itself refuses to leave read-only mode.
        with pytest.raises(QueryError, match=r"Cannot modify 'readonly' setting"):
            reader.query("SELECT 1 SETTINGS readonly = 0")
        with pytest.raises(QueryError, match=r"Code: 47.*UNKNOWN_IDENTIFIER"):
            reader.query("SELECT no_such_column FROM token_events")
    finally:
        reader.close()
    raw = httpx.post(
        f"http://{served.address}/query",
        json={"sql": "DROP TABLE token_events"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert raw.status_code == 400 and "read-only" in raw.json()["error"]
    anonymous = httpx.post(f"http://{served.address}/query", json={"sql": "SELECT 1"}, timeout=10)
    assert anonymous.status_code == 401


def test_cli_query_goes_through_the_running_owner(served, data_dir):
    state = json.loads((data_dir / STATE_FILE).read_text())
    assert state["pid"] == os.getpid() and state["port"] == served.port
    done = cli(
        "query",
        "SELECT team, count() AS calls FROM token_events GROUP BY team ORDER BY team",
        "--format",
        "json",
        data_dir=data_dir,
    )
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == [
        {"team": "search", "calls": 1},
        {"team": "support", "calls": 1},
    ]
    as_csv = cli(
        "query",
        "SELECT event_id, cost_usd FROM token_events ORDER BY event_id",
        "-f",
        "csv",
        data_dir=data_dir,
    )
    assert as_csv.stdout.splitlines() == [
        "event_id,cost_usd",
        "e1,0.000560000000",
        "e2,0.002244000000",
    ]
    failed = cli("query", "SELECT nope FROM token_events", data_dir=data_dir)
    assert failed.returncode == 1
    assert "UNKNOWN_IDENTIFIER" in failed.stderr and "Traceback" not in failed.stderr
    report = cli(
        "report",
        "spend",
        "--since",
        "2026-10-30",
        "--until",
        "2026-10-31",
        "-f",
        "json",
        data_dir=data_dir,
    )
    assert report.returncode == 0, report.stderr
    spend = orjson.loads(report.stdout)
    assert [(r["team"], r["calls"]) for r in spend] == [("support", 1), ("search", 1)]


def test_without_an_owner_the_store_is_opened_directly(data_dir):
    # A state file left by a process that is gone does not send queries into the void.
    (data_dir / STATE_FILE).write_text(
        json.dumps({"host": "127.0.0.1", "port": free_port(), "pid": 2**22 + 12345})
    )
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    with ClickHouseStore(dsn) as store:
        migrate(store)
    reader = open_reader(dsn, data_dir)
    try:
        assert isinstance(reader, StoreReader)
        assert reader.query("SELECT count() FROM token_events").rows == [(0,)]
        with pytest.raises(QueryError, match="read-only"):
            reader.query("TRUNCATE TABLE token_events")
    finally:
        reader.close()


def test_an_endpoint_serving_another_store_is_not_used(served, data_dir, tmp_path):
    """``TOKENGOV_CLICKHOUSE_URL`` naming another embedded store: its own, not the data dir's."""
    here = f"chdb://{data_dir / 'clickhouse'}"
    assert endpoint_address(data_dir, here) == (served.host, served.port)
    reader = open_reader(f"chdb://{data_dir}/./clickhouse", data_dir)
    try:
        assert isinstance(reader, EndpointReader)
    finally:
        reader.close()
    other = f"chdb://{tmp_path / 'other-store'}"
    assert endpoint_address(data_dir, other) is None
    reader = open_reader(other, data_dir)
    try:
        assert isinstance(reader, StoreReader) and "other-store" in reader.description
    finally:
        reader.close()
