"""``tokengov bench stages`` runs every event of the mix through the three stages, and says
so: what it took in is counted from the workload itself, not from the bench."""

from __future__ import annotations

from datetime import UTC, datetime

from typer.testing import CliRunner

from tokengov.app.bench.stages import STAGES, run
from tokengov.app.bench.workload import Workload
from tokengov.app.cli.main import app


def test_every_event_of_the_mix_goes_through_the_three_stages() -> None:
    events = Workload(3, 8).by_partition(120, datetime.now(UTC))
    expected = sum(len(e) for e in events.values())
    r = run(tasks=120, seed=3, repeat=2)
    assert r.events == expected
    assert r.decode_failures == 0
    assert r.governed == expected  # the mix has no duplicates: every event applied
    assert r.debt_taken == expected
    assert set(r.cpu_s) == set(STAGES)
    assert all(seconds > 0 for seconds in r.cpu_s.values()) and r.baseline_cpu_s > 0


def test_the_command_prints_each_stage_the_baseline_and_the_ratio() -> None:
    result = CliRunner().invoke(app, ["bench", "stages", "--tasks", "40", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    for text in ("interpreter: ", "decode", "governance", "debt", "orjson.loads", "ratio: "):
        assert text in result.stdout
