"""The demo end to end, in a short mode: every scripted incident caught, the runaway paused,
ClickHouse's totals equal to what the fleet emitted, and no process left behind — after it
ends, and after it is interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokengov.app.cli.demo import ANALYST_QUERIES
from tokengov.app.fleet import INCIDENTS
from tokengov.app.local.demo import run_demo
from tokengov.core.settings import Settings

pytestmark = pytest.mark.integration

POLICY = Path(__file__).resolve().parents[3] / "examples" / "policy.yaml"


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (a data directory or a port)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.serial  # the fleet's incidents must be caught in its 30 s: alone, after the rest
def test_demo_catches_every_incident_and_stores_exactly_what_was_emitted(tmp_path):
    data_dir = tmp_path / "demo"
    settings = Settings(data_dir=data_dir)
    with (tmp_path / "worker.log").open("ab") as log:
        result = run_demo(
            settings, POLICY, duration_s=30, rate=40, seed=11, worker_stdout=log, worker_stderr=log
        )
    fleet = result.fleet
    missed = [name for name in INCIDENTS if not result.catches[name].caught]
    assert not missed, f"incidents without their alert: {missed}"
    # the runaway: its decision, and the agent that obeyed it
    runaway = result.catches["runaway_loop"].incident
    pauses = [d for d in result.decisions if d.action == "pause" and d.key == runaway.task_id]
    assert pauses, "no pause decision for the runaway task"
    assert runaway.task_id in fleet.paused_tasks
    # the budget: 50 %, 80 % and 100 % each once
    thresholds = sorted(
        float(a.evidence["threshold"])
        for a in result.catches["budget_burn"].alerts
        if a.kind == "budget_threshold" and a.status == "firing"
    )
    assert thresholds == [0.5, 0.8, 1.0]
    # ClickHouse holds exactly what the fleet emitted
    assert result.stored_calls == fleet.calls
    assert result.stored_cost_usd == fleet.cost_usd
    # the team with a webhook receiver got signed notifications
    assert result.webhooks_received.get("search-hook", 0) >= 1
    assert not result.webhooks_rejected
    assert not processes_mentioning(str(data_dir)), "the demo left a process behind"

    # what the summary tells an analyst to run next works on the real store
    cli = [sys.executable, "-m", "tokengov.app.cli.main"]
    for _title, sql in ANALYST_QUERIES:
        ran = subprocess.run(
            [*cli, "query", "--data-dir", str(data_dir), sql],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0 and "row(s)" in ran.stdout, ran.stderr
    out = tmp_path / "debt.html"
    report = subprocess.run(
        [
            *cli,
            "debt",
            "report",
            "--data-dir",
            str(data_dir),
            "--policy",
            str(POLICY),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    html = out.read_text()
    assert (
        "orchestration" in html and "context" in html
    )  # the chatty handoffs and the resent history


# Not serial: nothing in it is timed (it interrupts the demo once the fleet runs, then checks
# that no process is left), so it runs with the rest, under xdist.
def test_interrupted_demo_leaves_nothing_behind(tmp_path):
    data_dir = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokengov.app.cli.main",
            "demo",
            "--duration",
            "60",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a failing test can end all of it
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "fleet " in line or time.monotonic() > deadline:
                break
        assert any("fleet " in line for line in seen), "".join(seen)
        assert processes_mentioning(str(data_dir)), "the stack should be running"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # whatever happened above, nothing outlives the test
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while processes_mentioning(str(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_mentioning(str(data_dir)), "the interrupted demo left a process behind"
