"""What the benchmarks share: a broker to run against, percentiles, a result table."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.core.topics import ensure_topics, topic_specs

__all__ = [
    "bench_broker",
    "interpreter",
    "percentile",
    "start_process",
    "stop_process",
    "summarize_ns",
]

console = Console(highlight=False)

#: The checkout (or site-packages) root: the benchmarks' subprocesses run from there.
ROOT = Path(__file__).resolve().parents[3]


def interpreter() -> str:
    """The Python the benchmark's processes run on (the same executable as this one): a
    figure of CPU per event depends on how that interpreter was built as much as on the
    code: CPython built with profile-guided and link-time optimization (the official Docker
    images', Debian's) ran the worker's stages ~10 % faster here than pyenv's default build,
    which has neither (docs/streams.md, "Performance", eleventh pass)."""
    build, built_on = platform.python_build()
    return (
        f"{platform.python_implementation()} {platform.python_version()} ({build}, {built_on}; "
        f"{platform.python_compiler()}) at {sys.executable}"
    )


def start_process(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A process of the benchmark (a worker, a baseline), its output appended to ``log_path``."""
    log = log_path.open("ab")
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "300", **(env or {})},
    )


def worker_command(
    role: str, policy: Path, data_dir: Path, bootstrap: str, prefix: str
) -> list[str]:
    """``tokengov worker`` of ``role`` on a bench's own topics (``prefix``), which the bench
    created with their partition counts."""
    return [
        sys.executable, "-m", "tokengov.app.cli.main", "worker", "--role", role,
        "--policy", str(policy), "--data-dir", str(data_dir), "--bootstrap", bootstrap,
        "--topic-prefix", prefix, "--no-create-topics",
    ]  # fmt: skip


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def bench_broker(bootstrap: str | None, *, prefix: str = "") -> Iterator[str]:
    """Use the given broker, or run an embedded one for the length of the benchmark."""
    if bootstrap:
        ensure_topics(bootstrap, topic_specs(prefix=prefix))
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="tokengov-bench-") as tmp:
        broker = EmbeddedBroker(Path(tmp), port=free_port())
        broker.start(detach=False)
        try:
            ensure_topics(broker.bootstrap, topic_specs(prefix=prefix))
            yield broker.bootstrap
        finally:
            broker.stop()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, float]:
    us = [s / 1000 for s in samples_ns]
    return {
        "median_us": statistics.median(us),
        "p99_us": percentile(us, 99),
        "p999_us": percentile(us, 99.9),
        "mean_us": statistics.fmean(us),
    }


def table(title: str, columns: Sequence[str]) -> Table:
    t = Table(*columns, title=title, title_justify="left")
    return t
