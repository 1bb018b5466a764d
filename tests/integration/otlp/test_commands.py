"""``tokengov otlp`` and ``tokengov worker --role otlp`` (what docker-compose runs) as
processes: they listen (port 0 here), record where, take a span, and stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.otlp_spans import chat_span, otlp_protobuf, sdk_spans
from tests.waiting import wait_for
from tokengov.core.topics import Topics
from tokengov.ingest.otlp.runtime import ADDRESS_FILE

from .conftest import read_events

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "command", [["otlp"], ["worker", "--role", "otlp", "--no-create-topics"]], ids=["otlp", "role"]
)
def test_the_receiver_commands(
    command: list[str],
    bootstrap: str,
    topic_names: Topics,
    topic_prefix: str,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    log_path = tmp_path / "receiver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokengov.app.cli.main",
                *command,
                *("--policy", str(policy), "--data-dir", str(data_dir)),
                *("--bootstrap", bootstrap, "--topic-prefix", topic_prefix),
            ],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT), "TOKENGOV_OTLP_PORT": "0"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            address_file = data_dir / "worker" / ADDRESS_FILE
            wait_for(lambda: proc.poll() is not None or address_file.exists(), 60, "the address")
            assert proc.poll() is None, log_path.read_text()[-3000:]
            address = json.loads(address_file.read_text())
            assert address["pid"] == proc.pid
            base = f"http://{address['host']}:{address['port']}"
            answer = httpx.post(
                f"{base}/v1/traces",
                content=otlp_protobuf(sdk_spans(chat_span)),
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert answer.status_code == 200
            assert len(read_events(bootstrap, topic_names.events)) == 1
            assert httpx.get(f"{base}/healthz").status_code == 200
            assert "tokengov_otlp_events_delivered_total 1" in httpx.get(f"{base}/metrics").text
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(timeout=30) == 0, log_path.read_text()[-3000:]
            finally:
                proc.kill()


def test_a_taken_port_leaves_the_other_roles_running(
    bootstrap: str, topic_names: Topics, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The role logs an ERROR naming the setting and returns: the worker's start goes on;
    a policy reload then reaches a receiver that does run."""
    from tokengov.core.settings import Settings
    from tokengov.core.worker_context import PolicyHolder, WorkerContext
    from tokengov.ingest.otlp.role import OtlpRuntime

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        settings = Settings(
            kafka_bootstrap=bootstrap, data_dir=data_dir, otlp_port=taken.getsockname()[1]
        )
        policy = data_dir / "policy.yaml"
        policy.write_text("version: 1\n")
        holder = PolicyHolder.from_file(policy)
        ctx = WorkerContext(settings, holder, topic_names)
        runtime = OtlpRuntime(ctx)
        asyncio.run(runtime.start())
        assert runtime.receiver is None
        assert "TOKENGOV_OTLP_PORT" in caplog.text
        assert not (data_dir / "worker" / ADDRESS_FILE).exists()
    finally:
        taken.close()

    async def serve_and_reload() -> str:
        running = OtlpRuntime(
            WorkerContext(settings.model_copy(update={"otlp_port": 0}), holder, topic_names)
        )
        await running.start()
        try:
            assert running.receiver is not None
            policy.write_text("version: 1\notlp: {task_id: [app.session]}\n")
            assert holder.reload()  # as SIGHUP does
            return running.receiver.converter.attribution.task_id[0]
        finally:
            await running.stop()

    assert asyncio.run(serve_and_reload()) == "app.session"
