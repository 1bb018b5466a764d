"""``bench streams``' CPU column reads a process's CPU time from /proc the way the kernel
reports it to the process itself (``os.times``); its interpreter line names the Python its
workers run on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokengov.app.bench.common import interpreter
from tokengov.app.bench.streams import RoleRun, _cpu_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_cpu_seconds_agrees_with_os_times() -> None:
    sum(i * i for i in range(300_000))  # some CPU time to read
    before = os.times()
    read = _cpu_seconds(os.getpid())
    after = os.times()
    assert read is not None
    assert before.user + before.system - 0.011 <= read <= after.user + after.system + 0.011


def test_a_process_that_is_gone_has_no_cpu_time() -> None:
    # a reaped child's pid is free: nothing to read, the column stays empty
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert _cpu_seconds(child.pid) is None
    run = RoleRun("streams", 1000, 2.0, 0.5, None)
    assert run.cpu_us_per_event is None and run.cpu_share is None
    assert RoleRun("streams", 1000, 2.0, 0.5, 0.5).cpu_us_per_event == 500.0


def test_the_interpreter_line_names_the_python_the_workers_run_on() -> None:
    # the workers are started with sys.executable; the line names it, and its version as the
    # child itself reports it
    child = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.executable, *sys.version_info[:3])"],
        capture_output=True,
        text=True,
        check=True,
    )
    executable, major, minor, micro = child.stdout.split()
    line = interpreter()
    assert line.startswith(f"{sys.implementation.name.replace('cpython', 'CPython')} ")
    assert f" {major}.{minor}.{micro} (" in line
    assert line.endswith(f" at {executable}")
