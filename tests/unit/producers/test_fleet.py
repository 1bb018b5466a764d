"""The synthetic fleet is a function of its seed: the same seed, the same calls and outcomes
(only timestamps and event ids, stamped later by the SDK, differ)."""

from __future__ import annotations

from pathlib import Path

from tokengov.app.fleet import INCIDENTS, Fleet
from tokengov.core.policy import load_policy
from tokengov.producers.emitter import TokenEmitter

POLICY = load_policy(Path(__file__).resolve().parents[3] / "examples" / "policy.yaml")


def run_fleet(seed: int, tmp_path: Path) -> tuple[list[object], Fleet]:
    # An emitter whose sender thread never starts: what the fleet hands the SDK stays queued.
    emitter = TokenEmitter(
        "127.0.0.1:1", spool_dir=tmp_path / f"spool-{seed}-{id(tmp_path)}", start=False
    )
    fleet = Fleet(emitter, POLICY, seed=seed, rate=2000, duration_s=1.5)
    fleet.run()
    return [(kind, values) for kind, _at, values in emitter._queue], fleet


def test_same_seed_same_fleet(tmp_path):
    first, fleet = run_fleet(7, tmp_path / "a")
    again, _ = run_fleet(7, tmp_path / "b")
    other, _ = run_fleet(8, tmp_path / "c")
    assert first == again
    assert first != other
    assert set(fleet.report.incidents) == set(INCIDENTS)
    calls = sum(1 for kind, _ in first if kind == "task-call")
    assert calls == fleet.report.calls and fleet.report.outcomes == fleet.report.tasks
