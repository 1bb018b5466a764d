from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.kafka_helpers import read_events

pytestmark = pytest.mark.integration


def call(i: int, **extra) -> dict:
    doc = {
        "kind": "call",
        "event_id": f"e-{i}",
        "ts": "2026-11-29T05:00:00Z",
        "team": "search",
        "workflow": "support-triage",
        "task_id": f"t-{i % 3}",
        "model": "gpt-4.1-mini",
        "tokens": {"input": 100, "output": 10},
    }
    doc.update(extra)
    return doc


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokengov.app.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_emit_produces_valid_lines_and_reports_invalid_ones(bootstrap, topic_names, tmp_path):
    lines = [
        json.dumps(call(1)),
        json.dumps(call(2, tokens={"input": 5, "output": 1, "cached_input": 9})),
        "",
        "{this is not json",
        json.dumps(call(3)),
        json.dumps(call(4, kind="trace")),
        json.dumps(
            {
                "kind": "outcome",
                "event_id": "o-1",
                "ts": "2026-11-29T05:01:00Z",
                "task_id": "t-1",
                "status": "success",
            }
        ),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("emit", str(path), "--bootstrap", bootstrap, "--topic", topic_names.events)
    assert result.returncode == 1
    assert "line 2: tokens: cached_input (9) + cache_write (0) exceeds input (5)" in result.stderr
    assert "line 4: not valid JSON" in result.stderr
    assert "line 6: kind: unknown kind 'trace'" in result.stderr
    assert "3 produced" in result.stdout and "3 invalid" in result.stdout
    events = read_events(bootstrap, topic_names.events, expected=3)
    assert sorted(e.event_id for _, e in events) == ["e-1", "e-3", "o-1"]


def test_emit_dry_run_from_stdin_sends_nothing(bootstrap, topic_names):
    result = run_cli("emit", "-", "--dry-run", stdin=json.dumps(call(1)) + "\n")
    assert result.returncode == 0, result.stderr
    assert "1 valid (dry run" in result.stdout


def test_tail_shows_events_readably(bootstrap, topic_names, tmp_path):
    path = tmp_path / "events.jsonl"
    tokens = {"input": 1200, "output": 300, "cached_input": 800, "cache_write": 300}
    path.write_text(
        json.dumps(call(7, tokens=tokens | {"cache_write_1h": 100}, service_tier="flex"))
        + "\n"
        + json.dumps(call(8, tokens={}, usage_missing=True))
        + "\n"
    )
    assert (
        run_cli(
            "emit", str(path), "--bootstrap", bootstrap, "--topic", topic_names.events
        ).returncode
        == 0
    )
    result = run_cli(
        "tail",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic_names.events,
        "--from-beginning",
        "--limit",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert "search/support-triage" in result.stdout and "in=1,200" in result.stdout
    assert "cached=800" in result.stdout
    assert "cache_write=300 of_which_1h=100" in result.stdout and "tier=flex" in result.stdout
    assert "usage missing" in result.stdout
