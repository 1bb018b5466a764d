"""``tokengov alerts test-route`` through the CLI: what would inhibit an alert (against the
alerts the routers hold on the router-state topic, or in this machine's router snapshot when
the broker cannot be read), and its routes' time intervals at ``--at``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.kafka_helpers import DeadPort
from tokengov.app.cli.main import app
from tokengov.app.local.broker import free_port
from tokengov.core.contracts import Alert
from tokengov.core.policy import parse_policy
from tokengov.core.topics import Topics
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.ownership import partition_of
from tokengov.sinks.router.snapshot import LocalSnapshot
from tokengov.sinks.router.state import PartitionState
from tokengov.sinks.router.state_topic import RouterStateTopic
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
def router_data_dir(tmp_path: Path, bootstrap: str, topic_names: Topics) -> Path:
    """A router's state holding one firing critical alert of team search: on the (test's)
    router-state topic, and in the data dir's snapshot, as a running router keeps them."""
    data_dir = tmp_path / "data"
    snapshot = LocalSnapshot.in_data_dir(data_dir)
    topic = RouterStateTopic(bootstrap, topic_names.router_state, snapshot=snapshot)
    state = PartitionState(partition_of(b"search", 4), topic)
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
    topic.persist()
    topic.close()
    snapshot.close()
    return data_dir


@pytest.fixture
def on_broker(bootstrap: str, topic_names: Topics) -> list[str]:
    return ["--bootstrap", bootstrap, "--router-state-topic", topic_names.router_state]


@pytest.fixture
def no_broker() -> Iterator[list[str]]:
    """A bootstrap address whose broker is down (the port refuses every connection)."""
    port = free_port()
    dead = DeadPort(port)
    try:
        yield ["--bootstrap", f"127.0.0.1:{port}"]
    finally:
        dead.close()


def _test_route(*args: str) -> str:
    result = CliRunner().invoke(
        app, ["alerts", "test-route", "--no-silences", *args], terminal_width=240
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_names_the_firing_alert_that_inhibits_and_the_mute_interval(
    policy_file: Path, router_data_dir: Path, on_broker: list[str], topic_names: Topics
) -> None:
    out = _test_route(
        *on_broker,
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
    assert (
        f"against the 1 firing alert(s) the routers hold, read from topic "
        f"{topic_names.router_state}): muted now by 2 rule(s)"
    ) in out
    assert 'critical-mutes-warning: muted now by firing alert crit-1 {kind="runaway", ' in out
    assert "Time intervals (at 2026-11-28 12:00:00 UTC)" in out
    assert (
        "routes.routes[0] → hook: muted: outside all of its active_time_intervals (office)" in out
    )
    assert "mute_time_intervals weekend: inside: mutes" in out


def test_two_sided_match_is_explained_and_not_muted(
    policy_file: Path, router_data_dir: Path, on_broker: list[str]
) -> None:
    out = _test_route(
        *on_broker,
        "team=search",
        "severity=critical",
        "kind=loop",
        "--policy",
        str(policy_file),
        "--data-dir",
        str(router_data_dir),
    )
    assert "firing alert(s) the routers hold, read from topic" in out
    assert "): not muted now" in out
    assert 'critical-mutes-team: would be muted while an alert {severity="critical"}' in out
    assert "these labels match the rule's source side too" in out


def test_broker_down_reads_this_machines_router_snapshot(
    policy_file: Path, router_data_dir: Path, no_broker: list[str]
) -> None:
    out = _test_route(
        *no_broker,
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
    snapshot = router_data_dir / "router" / "snapshot.sqlite"
    assert "against the 1 firing alert(s) the routers hold, read from" in out
    assert str(snapshot) in out.replace("\n", "")
    assert "muted now by 2 rule(s)" in out


def test_without_router_state_lists_the_rules_that_could(
    policy_file: Path, tmp_path: Path, no_broker: list[str]
) -> None:
    out = _test_route(
        *no_broker,
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
