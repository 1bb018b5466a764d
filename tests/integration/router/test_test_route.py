"""``tokengov alerts test-route`` through the CLI: what would inhibit an alert (against the
alerts a router holds in its SQLite state), and its routes' time intervals at ``--at``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.core.contracts import Alert
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.state import SqliteState
from tokengov.sinks.router.tree import RouteTree

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("wide_console")]

POLICY = """
version: 1
teams: {search: {owner: s@example.com}}
receivers:
  console: {type: log}
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
time_intervals:
  - name: weekend
    time_intervals: [{weekdays: [saturday, sunday]}]
  - name: office
    time_intervals:
      - times: [{start_time: "09:00", end_time: "17:00"}]
        weekdays: ["monday:friday"]
        location: Europe/Berlin
inhibit_rules:
  - name: critical-mutes-warning
    source_match: {severity: critical}
    target_match: {severity: warning}
    equal: [team]
  - name: critical-mutes-team
    source_match: {severity: critical}
    target_match_re: {severity: "critical|warning"}
    equal: [team]
routes:
  receiver: console
  routes:
    - match: {team: search}
      receiver: hook
      mute_time_intervals: [weekend]
      active_time_intervals: [office]
"""

SATURDAY = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def router_data_dir(tmp_path: Path) -> Path:
    """A data dir whose router state holds one firing critical alert of team search."""
    data_dir = tmp_path / "data"
    state = SqliteState.in_data_dir(data_dir)
    dispatcher = Dispatcher(
        RouteTree.from_policy(parse_policy(POLICY)), state, clock=lambda: SATURDAY
    )
    dispatcher.ingest(
        Alert(
            fingerprint="crit-1",
            kind="runaway",
            severity="critical",
            team="search",
            task_id="t-1",
            summary="runaway on t-1",
            evidence={},
            starts_at=SATURDAY,
        )
    )
    state.close()
    return data_dir


def _test_route(*args: str) -> str:
    result = CliRunner().invoke(
        app, ["alerts", "test-route", "--no-silences", *args], terminal_width=240
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_names_the_firing_alert_that_inhibits_and_the_mute_interval(
    policy_file: Path, router_data_dir: Path
) -> None:
    out = _test_route(
        "team=search",
        "severity=warning",
        "kind=runaway",
        "--policy",
        str(policy_file),
        "--data-dir",
        str(router_data_dir),
        "--at",
        "2026-11-28T12:00:00+00:00",
    )
    assert "against the 1 firing alert(s) the router holds): muted now by 2 rule(s)" in out
    assert 'critical-mutes-warning: muted now by firing alert crit-1 {kind="runaway", ' in out
    assert "Time intervals (at 2026-11-28 12:00:00 UTC)" in out
    assert (
        "routes.routes[0] → hook: muted: outside all of its active_time_intervals (office)" in out
    )
    assert "mute_time_intervals weekend: inside: mutes" in out


def test_two_sided_match_is_explained_and_not_muted(
    policy_file: Path, router_data_dir: Path
) -> None:
    out = _test_route(
        "team=search",
        "severity=critical",
        "kind=loop",
        "--policy",
        str(policy_file),
        "--data-dir",
        str(router_data_dir),
    )
    assert "against the 1 firing alert(s) the router holds): not muted now" in out
    assert 'critical-mutes-team: would be muted while an alert {severity="critical"}' in out
    assert "these labels match the rule's source side too" in out


def test_without_router_state_lists_the_rules_that_could(policy_file: Path, tmp_path: Path) -> None:
    out = _test_route(
        "team=search",
        "severity=warning",
        "--policy",
        str(policy_file),
        "--data-dir",
        str(tmp_path / "empty"),
        "--at",
        "2026-11-30T09:30+01:00",  # Monday, office hours in Berlin
    )
    assert "the router's state is not readable here" in out
    assert "2 rule(s) could mute them" in out  # no kind label: no built-in rule targets it
    assert (
        'critical-mutes-warning: would be muted while an alert {severity="critical"} with '
        'team="search" fires'
    ) in out
    assert "routes.routes[0] → hook: notifies" in out
    assert "active_time_intervals office: inside" in out
    assert "mute_time_intervals weekend: outside: does not mute" in out


def test_bad_at_is_refused(policy_file: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("alerts", "test-route", "team=search", "--no-silences"),
            *("--policy", str(policy_file), "--at", "next tuesday"),
        ],
    )
    assert result.exit_code == 1
    assert "--at: 'next tuesday' is not a time" in result.output
