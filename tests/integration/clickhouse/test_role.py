"""``register(app, ctx)`` in a real Faust worker process: the writer consumes, the owner serves
queries to other processes, and both stop with the worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tokengov.app.local.broker import free_port
from tokengov.sinks.clickhouse.endpoint import STATE_FILE, read_token
from tokengov.sinks.clickhouse.reader import EndpointReader, endpoint_address

from .conftest import POLICY, make_events, produce, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_sink_role_in_a_faust_worker(bootstrap, topic_names, topic_prefix, data_dir, tmp_path):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    events = make_events(25, seed=40)
    produce(bootstrap, topic_names.events, events, envelope=4)
    calls = sum(1 for e in events if e["kind"] == "call")
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("sink_worker.py")),
            bootstrap,
            topic_prefix,
            str(data_dir),
            str(policy_file),
            f"127.0.0.1:{free_port()}",
        ],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: worker.poll() is not None or endpoint_address(data_dir) is not None,
            60,
            "the query endpoint",
        )
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        address = endpoint_address(data_dir)
        assert address is not None
        reader = EndpointReader(*address, read_token(data_dir))

        def stored() -> int:
            return int(reader.query("SELECT count() FROM token_events").rows[0][0])

        def rolled_up() -> int:
            return int(reader.query("SELECT sum(calls) FROM spend_daily").rows[0][0])

        # An insert commits token_events' part, then the views' parts: a reader can see the
        # raw rows a moment before their rollup, so both are awaited.
        wait_until(
            lambda: worker.poll() is not None or (stored() == calls and rolled_up() == calls),
            60,
            "the worker to write every call and its rollup",
        )
        assert stored() == calls
        assert rolled_up() == calls
        reader.close()
        # Another process (the CLI) reads through the worker: the store is the worker's.
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tokengov.app.cli.main",
                "query",
                "SELECT count() AS calls FROM token_events",
                "--format",
                "json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ | {"PYTHONPATH": str(ROOT), "TOKENGOV_DATA_DIR": str(data_dir)},
        )
        assert done.returncode == 0, done.stderr
        assert orjson.loads(done.stdout) == [{"calls": calls}]
        state = json.loads((data_dir / STATE_FILE).read_text())
        assert state["pid"] == worker.pid
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        finally:
            worker.kill()
            log.close()
    assert not (data_dir / STATE_FILE).exists(), (tmp_path / "worker.log").read_text()[-3000:]
