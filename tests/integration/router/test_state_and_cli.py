"""The router's state on its topic across a restart (and re-seeded from the local copy when
the topic came back empty), and the silence / test-route commands against the
real broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.core.contracts import Alert
from tokengov.core.kafka import read_to_end
from tokengov.core.policy import parse_policy
from tokengov.core.topics import TopicSpec, ensure_topics
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.kafka import SilenceTopic
from tokengov.sinks.router.silences import new_silence
from tokengov.sinks.router.snapshot import LocalSnapshot
from tokengov.sinks.router.state import PartitionState
from tokengov.sinks.router.state_topic import RouterStateTopic
from tokengov.sinks.router.tree import RouteTree

pytestmark = pytest.mark.integration

POLICY = """
version: 1
teams: {search: {owner: s@example.com, receiver: search-hook}}
receivers:
  console: {type: log}
  search-hook: {type: webhook, url: "http://127.0.0.1:9/x"}
  search-pager: {type: pagerduty, routing_key_env: PD}
routes:
  receiver: console
  group_by: [team, kind]
  group_wait: 10s
  routes:
    - match: {team: search, severity: critical}
      receiver: search-pager
      group_wait: 2s
      continue: true
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _state(topic: RouterStateTopic, partition: int) -> PartitionState:
    return PartitionState.from_records(partition, topic, topic.read([partition])[partition])


def test_state_survives_a_restart_on_the_topic_and_reseeds_an_empty_one(
    bootstrap, topic_names, data_dir
):
    clock = Clock()
    tree = RouteTree.from_policy(parse_policy(POLICY))
    alert = Alert(
        fingerprint="fp",
        kind="runaway",
        severity="warning",
        team="search",
        task_id="t-1",
        summary="s",
        starts_at=clock.now,
    )
    snapshot = LocalSnapshot.in_data_dir(data_dir)
    topic = RouterStateTopic(bootstrap, topic_names.router_state, snapshot=snapshot)
    first = Dispatcher(tree, PartitionState(1, topic), clock=clock)  # a new, empty partition
    first.ingest(alert)
    first.ingest(alert.model_copy(update={"fingerprint": "fp2", "task_id": "t-2"}))
    clock.now += timedelta(seconds=10)
    [n] = first.flush_due()
    first.delivered(n)
    topic.persist()
    silence = new_silence(
        ["team=search"],
        created_by="a",
        reason="r",
        ends_at=clock.now + timedelta(hours=1),
        now=clock.now,
    )
    snapshot.save_silence(silence)

    # another router (no local copy) reads partition 1 back from the topic: same groups,
    # same notification log, nothing in the other partitions
    other = RouterStateTopic(bootstrap, topic_names.router_state)
    read = other.read(range(4))
    assert read[0] == read[2] == read[3] == {}
    state = PartitionState.from_records(1, other, read[1])
    second = Dispatcher(tree, state, clock=clock)
    assert second.groups.keys() == first.groups.keys()
    assert second.groups[n.group_key].alerts.keys() == {"fp", "fp2"}
    second.ingest(alert)  # redelivered
    clock.now += timedelta(minutes=5)
    assert second.flush_due() == []
    second.ingest(alert.model_copy(update={"status": "resolved"}))
    clock.now += timedelta(minutes=5)
    [resolved] = second.flush_due()
    assert [(a.fingerprint, a.status) for a in resolved.alerts] == [
        ("fp", "resolved"),
        ("fp2", "firing"),
    ]
    assert resolved.reason == "some alerts resolved"
    assert state.nflog_gc(clock.now + timedelta(days=30)) == 1
    other.persist()
    # the tombstone of the forgotten entry is on the topic
    assert not _state(other, 1).nflog

    # The embedded broker restarted: the topic is back, empty. The router with the local copy
    # (which saw only its own writes) re-seeds it, then reads it as before.
    fresh = f"{topic_names.router_state}.restarted"
    ensure_topics(bootstrap, [TopicSpec(fresh, 4, {"cleanup.policy": "compact"})])
    copy = RouterStateTopic(bootstrap, fresh, snapshot=snapshot)
    third = Dispatcher(tree, _state(copy, 1), clock=clock)
    assert third.groups.keys() == first.groups.keys()
    assert [r.partition for r in read_to_end(bootstrap, fresh)] == [1] * len(snapshot.records(1))
    assert [s.reason for s in snapshot.load_silences()] == ["r"]
    # a topic that holds anything is the state of record: the copy is not read (and is made
    # what the topic holds)
    held = f"{topic_names.router_state}.held"
    ensure_topics(bootstrap, [TopicSpec(held, 4, {"cleanup.policy": "compact"})])
    writer = RouterStateTopic(bootstrap, held)
    writer.write(3, b'["other"]', b"{}")
    writer.persist()
    assert snapshot.records(1)
    assert RouterStateTopic(bootstrap, held, snapshot=snapshot).read([1]) == {1: {}}
    assert snapshot.records(1) == {}
    snapshot.close()


def test_silence_commands_and_test_route(bootstrap, topic_names, tmp_path):
    runner = CliRunner()
    topic = ["--bootstrap", bootstrap, "--silences-topic", topic_names.silences]
    added = runner.invoke(
        app,
        [
            "alerts",
            "silence",
            "add",
            "team=search",
            "kind=~runaway|loop",
            "--reason",
            "deploy in progress",
            "--by",
            "alice",
            "--duration",
            "1h",
            *topic,
        ],
        terminal_width=200,
    )
    assert added.exit_code == 0, added.output
    silence_id = added.output.split("silence ")[1].split()[0]
    listed = runner.invoke(app, ["alerts", "silence", "list", *topic], terminal_width=200)
    assert silence_id in listed.output and "alice" in listed.output and "active" in listed.output

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    routed = runner.invoke(
        app,
        [
            "alerts",
            "test-route",
            "team=search",
            "severity=critical",
            "kind=runaway",
            "--policy",
            str(policy),
            *topic,
        ],
        terminal_width=200,
    )
    assert routed.exit_code == 0, routed.output
    out = routed.output
    assert "→ search-pager via routes.routes[0]" in out
    assert "continue: true" in out
    assert "→ search-hook via routes (only the root matched: team search's own receiver)" not in out
    assert "→ console via routes" not in out  # the root is not a match when a child matched
    assert "team-budget-breached-mutes-task-alerts" in out
    assert "1 active silence(s)" in out and silence_id in out

    warning = runner.invoke(
        app,
        [
            "alerts",
            "test-route",
            "team=search",
            "severity=warning",
            "--policy",
            str(policy),
            "--no-silences",
        ],
        terminal_width=200,
    )
    assert (
        "→ search-hook via routes (only the root matched: team search's own receiver)"
        in warning.output
    )

    expired = runner.invoke(app, ["alerts", "silence", "expire", silence_id, *topic])
    assert expired.exit_code == 0, expired.output
    [after] = SilenceTopic(bootstrap, topic_names.silences).read_all()
    assert after.state(datetime.now(UTC)) == "expired" and after.created_by == "alice"
    listed = runner.invoke(app, ["alerts", "silence", "list", *topic], terminal_width=200)
    assert silence_id not in listed.output
    listed = runner.invoke(app, ["alerts", "silence", "list", "--all", *topic], terminal_width=200)
    assert silence_id in listed.output and "expired" in listed.output
    bad = runner.invoke(app, ["alerts", "silence", "add", "team", "--reason", "x", *topic])
    assert bad.exit_code == 1 and "bad matcher format" in bad.output
