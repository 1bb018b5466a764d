"""The writer SIGKILLed at several points of a run; after a restart every total is exact."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tokengov.sinks.clickhouse.store import ClickHouseStore

from .conftest import POLICY, assert_exact, committed, make_events, merge, produce, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROC = Path(__file__).with_name("writer_proc.py")


def _spawn(args: list[str], log: Path) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    with log.open("a") as err:
        return subprocess.Popen(
            [sys.executable, str(PROC), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def _decoder_pids(log: str) -> list[int]:
    """The decoder processes every writer of the log started (the pool logs them)."""
    found = re.findall(r"decoder process\(es\) \[([0-9, ]+)\]", log)
    return [int(pid) for group in found for pid in group.split(",")]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_sigkill_at_every_stage_then_restart_counts_everything_once(
    bootstrap, topic_names, tmp_path, policy
):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    dsn = f"chdb://{tmp_path / 'ch'}"
    group = f"sink-{uuid.uuid4().hex[:8]}"
    base = [
        "--bootstrap",
        bootstrap,
        "--prefix",
        topic_names.events.removesuffix("tokengov.events"),
        "--dsn",
        dsn,
        "--group",
        group,
        "--policy",
        str(policy_file),
        "--max-rows",
        "60",
        # decoder processes, as the worker runs it: a SIGKILLed writer must leave none behind
        "--decoders",
        "2",
    ]
    log = tmp_path / "writer.log"
    events: list[dict] = []
    ends: dict = {}
    # Each run gets new events (the stream goes on) and dies at another point of a flush.
    # "committed": nothing to repair. "planned": the next run reconciles that range, and dies
    # right after reconciling ("reconciled"), so the run after reconciles again, and dies
    # after inserting ("inserted"), leaving the final run a range to reconcile once more.
    kills = (("committed", 2), ("planned", 1), ("reconciled", 1), ("inserted", 1))
    for seed, (stage, at) in enumerate(kills, start=10):
        batch = make_events(40, seed=seed)
        events += batch
        ends = merge(ends, produce(bootstrap, topic_names.events, batch, envelope=2))
        proc = _spawn([*base, "--kill-stage", stage, "--kill-at", str(at)], log)
        try:
            assert proc.wait(timeout=90) == -signal.SIGKILL, log.read_text()[-3000:]
        finally:
            proc.kill()
            proc.communicate()
        started = _decoder_pids(log.read_text())
        assert len(started) == 2 * (seed - 9), log.read_text()[-3000:]
        wait_until(lambda pids=started: not any(map(_alive, pids)), 15, "the decoders to exit")

    proc = _spawn(base, log)
    try:
        wait_until(
            lambda: proc.poll() is not None or committed(bootstrap, group, ends),
            90,
            "the restarted writer to commit everything",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["error"] is None
    # The last run died after inserting and before committing: the restarted writer found the
    # rows already stored, left them out, and reconciled the rollups of that range.
    assert result["counters"]["reconciled_flushes"] >= 1
    assert result["counters"]["duplicates_skipped"] >= 1

    with ClickHouseStore(dsn) as store:
        assert_exact(store, events, policy)
        outcomes = sum(1 for e in events if e["kind"] == "outcome")
        assert store.query("SELECT count() FROM task_outcomes FINAL").scalar() == outcomes
