"""``tokengov up``: where everything is, history kept across restarts, clear refusals, and
nothing left behind after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.demo.test_demo import processes_mentioning
from tokengov.app.local.broker import free_port
from tokengov.core.errors import KafkaConfigError
from tokengov.core.kafka import KafkaConnection, check_connection, load_connection

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "tokengov.app.cli.main"]


class Up:
    """``tokengov up`` in a subprocess, its output read continuously (a full pipe would stall it)."""

    def __init__(self, data_dir: Path, port: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                *CLI,
                "up",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--status-interval",
                "0.5",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "250"},
            start_new_session=True,  # its own process group, so a failing test can end all of it
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        while needle not in self.text:
            assert self.proc.poll() is None, f"up exited early:\n{self.text}"
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout_s}s:\n{self.text}"
            time.sleep(0.1)
        return self.text

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        self._reader.join(timeout=10)
        return self.text

    def __enter__(self) -> Up:
        return self

    def __exit__(self, *exc: object) -> None:
        """Whatever the test did, nothing of this ``up`` outlives it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def query_count(data_dir: Path) -> int:
    result = subprocess.run(
        [
            *CLI,
            "query",
            "--data-dir",
            str(data_dir),
            "--format",
            "json",
            "SELECT count() AS n FROM token_events",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)[0]["n"])


def test_up_keeps_history_refuses_clearly_and_stops_cleanly(tmp_path):
    data_dir, port = tmp_path / "stack", free_port()
    with Up(data_dir, port) as up:
        text = up.wait_for("Ctrl-C stops everything")
        assert f"127.0.0.1:{port}" in text and str(data_dir) in text and "policy.yaml" in text

        events = tmp_path / "events.jsonl"
        events.write_text(
            "".join(
                json.dumps(
                    {
                        "kind": "call",
                        "event_id": f"e-{i}",
                        "ts": "2026-11-29T05:00:00Z",
                        "team": "search",
                        "workflow": "support-triage",
                        "task_id": f"t-{i % 4}",
                        "model": "gpt-4.1-mini",
                        "tokens": {"input": 1000, "output": 100},
                    }
                )
                + "\n"
                for i in range(25)
            )
        )
        emitted = subprocess.run(
            [*CLI, "emit", str(events), "--bootstrap", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert emitted.returncode == 0, emitted.stderr
        deadline = time.monotonic() + 60
        while query_count(data_dir) < 25 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert query_count(data_dir) == 25  # through the running worker's query endpoint

        second = subprocess.run(
            [*CLI, "up", "--data-dir", str(data_dir), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0 and "is in use" in second.stderr, second.stderr
        busy = subprocess.run(
            [*CLI, "up", "--data-dir", str(tmp_path / "other"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert busy.returncode != 0 and f"port {port}" in busy.stderr, busy.stderr

        out = up.stop()
        assert up.proc.returncode == 0, out
        assert "nothing left running" in out
        assert not processes_mentioning(str(data_dir))
        assert not processes_mentioning(f"127.0.0.1:{port}")

        assert query_count(data_dir) == 25  # the store opened directly, no worker running
    with Up(data_dir, port) as again:
        again.wait_for("Ctrl-C stops everything")
        assert query_count(data_dir) == 25  # the history is still there
        again.stop()
        assert not processes_mentioning(str(data_dir))


def test_up_tls_serves_kafka_over_mutual_tls(tmp_path: Path) -> None:
    """``tokengov up --tls``: certificates in <data dir>/tls, the variables clients set
    printed, a client with them connects, a plaintext one is refused."""
    port = free_port()
    with Up(tmp_path / "data", port, "--tls") as up:
        text = up.wait_for("TOKENGOV_KAFKA_SSL_KEY_FILE=")  # the reader appends whole lines
        env = dict(
            line.strip().split("=", 1)
            for line in text.splitlines()
            if line.startswith("  TOKENGOV_KAFKA_")
        )
        assert env["TOKENGOV_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{port}"
        assert env["TOKENGOV_KAFKA_SECURITY_PROTOCOL"] == "SSL"
        assert Path(env["TOKENGOV_KAFKA_SSL_CA_FILE"]).parent == tmp_path / "data" / "tls"
        conn = load_connection(
            **{k.removeprefix("TOKENGOV_KAFKA_").lower(): v for k, v in env.items()}
        )
        check_connection(conn)
        assert "tokengov.events" in read_topics(conn)
        with pytest.raises(KafkaConfigError, match="TOKENGOV_KAFKA_SECURITY_PROTOCOL=SSL"):
            check_connection(load_connection(bootstrap=f"127.0.0.1:{port}"), timeout_s=5)
        up.stop()
    assert up.proc.returncode == 0, up.text


def read_topics(conn: KafkaConnection) -> set[str]:
    admin = AdminClient(conn.librdkafka_config())
    return set(admin.list_topics(timeout=10).topics)
