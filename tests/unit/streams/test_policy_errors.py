"""The strict policy loader: every problem reported at once with its path (and line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.core.errors import PolicyError
from tokengov.core.policy import load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[3]

BROKEN = """version: 1
teams:
  search: {owner: s@example.com, receiver: nowhere}
receivers:
  console: {type: log}
cost_profiles:
  triage: {team: ghosts, max_tool_calls: 0, on_runaway: fallback}
budgets:
  - {scope: team, name: search, period: day, limit_usd: 10}
  - {scope: team, name: search, period: day, limit_usd: 0}
  - {scope: workflow, name: nope, period: month, limit_tokens: 5}
routes:
  receiver: console
  routes:
    - {match: {team: search}, receiver: pager}
streams:
  late_grace: soon
  colour: blue
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    return info.value.problems


def test_every_problem_is_reported_with_its_path_and_line() -> None:
    found = problems(BROKEN)
    expected = [
        "line 10: budgets[1].limit_usd: must be greater than 0",
        'line 15: routes.routes[0].receiver: undefined receiver "pager" used in route',
        'line 3: teams.search.receiver: undefined receiver "nowhere"',
        'line 7: cost_profiles.triage.team: undefined team "ghosts"',
        'line 11: budgets[2].name: undefined workflow "nope" (no cost profile)',
        "line 17: streams.late_grace: not a duration: 'soon' (use e.g. 500ms, 10s, 5m, 4h, 1d)",
        "line 18: streams.colour: unknown key (not allowed here)",
        "line 7: cost_profiles.triage.max_tool_calls: must be greater than 0",
    ]
    for line in expected:
        assert any(line in p for p in found), (line, found)


def test_fallback_without_a_model_is_an_error() -> None:
    text = (
        "version: 1\nteams: {a: {owner: x}}\ncost_profiles:\n  w: {team: a, on_runaway: fallback}\n"
    )
    assert any("set fallback_model" in p for p in problems(text))


def test_budget_needs_a_limit() -> None:
    text = "version: 1\nteams: {a: {owner: x}}\nbudgets:\n  - {scope: team, name: a, period: day}\n"
    assert any("set limit_usd or limit_tokens" in p for p in problems(text))


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML" in problems("version: [1\n")[0]
    assert "mapping" in problems("- 1\n")[0]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_streams_settings_have_defaults_and_parse_durations() -> None:
    policy = parse_policy("version: 1\nstreams: {late_grace: 2m, retry_backoff_growth: 1.5}\n")
    assert policy.streams.late_grace.total_seconds() == 120
    assert policy.streams.retry_backoff_growth == 1.5
    assert policy.streams.task_idle_timeout.total_seconds() == 3600
    assert any(
        "greater than 1" in p for p in problems("version: 1\nstreams: {retry_backoff_growth: 1}\n")
    )


def test_example_policy_is_valid_and_check_exits_zero() -> None:
    result = CliRunner().invoke(app, ["policy", "check", str(ROOT / "examples" / "policy.yaml")])
    assert result.exit_code == 0, result.output
    assert "support-triage" in result.output


def test_check_prints_every_problem_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert "budgets[1].limit_usd: must be greater than 0" in result.output
    assert 'undefined receiver "pager"' in result.output
