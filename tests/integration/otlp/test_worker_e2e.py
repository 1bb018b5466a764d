"""End to end through the worker's ``otlp`` role: an instrumented agent (the official
``openai`` client, ``opentelemetry-instrumentation-openai-v2``, the SDK's OTLP/HTTP exporter)
→ the receiver → ``tokengov.events`` → the streams (a runaway alert) and the ClickHouse
writer (real chdb: the right tokens and cost). One real worker process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.waiting import wait_for
from tokengov.app.local.broker import free_port
from tokengov.core.kafka import read_to_end
from tokengov.core.topics import Topics
from tokengov.ingest.otlp.runtime import ADDRESS_FILE
from tokengov.sinks.clickhouse.endpoint import read_token
from tokengov.sinks.clickhouse.reader import EndpointReader, endpoint_address

from .agent import run_agent
from .conftest import FakeOpenAI

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

POLICY = """
version: 1
teams:
  search: {owner: search@example.com}
prices:
  gpt-4.1-mini: {input: 0.40, output: 1.60, cached_input: 0.10}
cost_profiles:
  support-agent:          # the agent's service.name: its workflow
    team: search          # and so its team (no team attribute, no service_teams entry)
    max_calls: 3
    on_runaway: pause
"""


def test_a_runaway_through_otlp_is_stored_priced_and_alerted(
    bootstrap: str,
    topic_names: Topics,
    topic_prefix: str,
    data_dir: Path,
    tmp_path: Path,
    fake_openai: FakeOpenAI,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "TOKENGOV_OTLP_PORT": "0",
        "TOKENGOV_QUERY_ENDPOINT": f"127.0.0.1:{free_port()}",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokengov.app.cli.main",
            "worker",
            *("--role", "streams", "--role", "sink", "--role", "otlp"),
            *("--policy", str(policy), "--data-dir", str(data_dir)),
            *("--bootstrap", bootstrap, "--topic-prefix", topic_prefix),
            "--no-create-topics",
            *("--recover", "never"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def tail() -> str:
        return log_path.read_bytes()[-4000:].decode("utf-8", "replace")

    try:
        state = data_dir / "worker"
        wait_for(
            lambda: worker.poll() is not None or (state / "ready.json").exists(), 90, "the worker"
        )
        assert worker.poll() is None, tail()
        address = json.loads((state / ADDRESS_FILE).read_text())
        assert address["pid"] == worker.pid
        url = f"http://{address['host']}:{address['port']}/v1/traces"

        run_agent(fake_openai.base_url, url, calls=4, conversation="conv-runaway")

        def runaway() -> list[dict[str, object]]:
            alerts = [
                orjson.loads(r.value or b"{}") for r in read_to_end(bootstrap, topic_names.alerts)
            ]
            return [a for a in alerts if a["kind"] == "runaway" and a["task_id"] == "conv-runaway"]

        (alert,) = wait_for(runaway, 60, "the runaway alert")
        assert (alert["team"], alert["workflow"]) == ("search", "support-agent")
        assert alert["labels"]["limit"] == "max_calls"

        decisions = [
            orjson.loads(r.value or b"{}") for r in read_to_end(bootstrap, topic_names.decisions)
        ]
        assert {(d["key"], d["action"]) for d in decisions} == {("conv-runaway", "pause")}
        endpoint = wait_for(lambda: endpoint_address(data_dir), 30, "the query endpoint")
        reader = EndpointReader(*endpoint, read_token(data_dir))
        query = (
            "SELECT count(), sum(input_tokens), sum(output_tokens), sum(cost_usd), "
            "any(team), any(agent), any(parent_agent) "
            "FROM token_events WHERE task_id = 'conv-runaway'"
        )
        rows = wait_for(
            lambda: (r := reader.query(query).rows) and int(r[0][0]) == 4 and r, 60, "4 rows"
        )
        _calls, input_tokens, output_tokens, cost, team, agent, parent = rows[0]
        assert (int(input_tokens), int(output_tokens)) == (4 * 1200, 4 * 300)
        # 1200 input tokens at $0.40 and 300 output tokens at $1.60 per million, four times
        assert Decimal(str(cost)) == Decimal("0.00384")
        assert (team, agent, parent) == ("search", "researcher", "supervisor")
        reader.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        finally:
            worker.kill()
            log.close()
