"""The SDK's guard against the real broker (and the real worker): pause, fallback, lift."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from tests.integration.streams.events import POLICY, call, tool_calls
from tests.waiting import wait_for
from tokengov.app.cli.main import app
from tokengov.app.local.broker import free_port
from tokengov.core.contracts import Decision, utcnow
from tokengov.producers.guard import Guard, TaskPaused, Verdict

pytestmark = pytest.mark.integration


def paused(guard: Guard, task: str, **scope: str) -> TaskPaused | None:
    try:
        guard.before_call(task, **scope)
    except TaskPaused as exc:
        return exc
    return None


def test_guard_pauses_a_runaway_task_and_a_human_lifts_it(cluster_factory) -> None:
    c = cluster_factory(POLICY)
    c.start_worker()
    with Guard(c.bootstrap, c.topics) as guard:
        assert guard.wait_caught_up(10)
        scope = {"workflow": "support-triage", "team": "search"}
        for event in tool_calls("t-agent", 6):  # the agent asks before each call, then calls
            assert guard.before_call("t-agent", **scope) == Verdict("proceed")
            c.send(event)
        exc = wait_for(lambda: paused(guard, "t-agent", **scope), 30, "the pause", c.tail)
        assert exc.decision.scope == "task" and exc.decision.key == "t-agent"
        assert exc.decision.reason == "runaway: max_tool_calls 6 > 5"
        assert "tokengov decisions lift task:t-agent" in str(exc)
        assert guard.before_call("t-other", **scope).action == "proceed"  # only that task

        # fallback: the doc-qa profile names a cheaper model
        c.send(*tool_calls("t-doc", 4, workflow="doc-qa"))
        verdict = wait_for(
            lambda: (v := guard.before_call("t-doc", workflow="doc-qa")).action == "fallback" and v,
            30,
            "the fallback",
            c.tail,
        )
        assert verdict.fallback_model == "gpt-4.1-mini"

        # a human lifts the pause
        runner = CliRunner()
        args = ["--bootstrap", c.bootstrap, "--topic-prefix", c.prefix]
        result = runner.invoke(app, ["decisions", "lift", "task:t-agent", "--reason", "ok", *args])
        assert result.exit_code == 0, result.output
        wait_for(lambda: paused(guard, "t-agent", **scope) is None, 10, "the lift")
        assert guard.before_call("t-agent", **scope).decision.reason.endswith(": ok")
        listing = runner.invoke(app, ["decisions", "list", "--json", *args])
        assert listing.exit_code == 0, listing.output
        listed = {(d["scope"], d["key"]): d for d in map(json.loads, listing.output.splitlines())}
        assert listed[("task", "t-agent")]["action"] == "proceed"
        assert listed[("task", "t-doc")]["action"] == "fallback"

        # the task keeps running; the limit it already crossed does not fire again
        c.send(call("t-agent", tool_calls=1))
        c.wait_processed()
        assert paused(guard, "t-agent", **scope) is None
        assert c.fingerprints().count("runaway|search|support-triage|t-agent|max_tool_calls") == 1


def publish(bootstrap: str, topic: str, *decisions: Decision) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for d in decisions:
        producer.produce(topic, key=d.topic_key.encode(), value=d.model_dump_json().encode())
    assert producer.flush(10) == 0


def test_most_specific_active_decision_wins(bootstrap, topic_names) -> None:
    now = utcnow()
    slept: list[float] = []
    publish(
        bootstrap,
        topic_names.decisions,
        Decision(scope="team", key="search", action="pause", reason="budget"),
        Decision(scope="workflow", key="triage", action="throttle", reason="x", throttle_ms=250),
        Decision(scope="task", key="t-1", action="fallback", reason="y", fallback_model="mini"),
        Decision(
            scope="task", key="t-old", action="pause", reason="over", expires_at=now - timedelta(1)
        ),
    )
    with Guard(bootstrap, topic_names, sleep=slept.append) as guard:
        assert guard.wait_caught_up(10)
        assert guard.before_call("t-1", "triage", "search").fallback_model == "mini"
        throttled = guard.before_call("t-2", "triage", "search")
        assert throttled.action == "throttle" and throttled.throttled_ms == 250
        assert slept == [0.25]
        assert paused(guard, "t-3", workflow="other", team="search") is not None
        # an expired task pause falls through to the next scope
        assert guard.before_call("t-old", "triage").action == "throttle"
        assert guard.before_call("t-old").action == "proceed"
        # a new decision is seen while the guard runs
        publish(
            bootstrap,
            topic_names.decisions,
            Decision(scope="team", key="search", action="proceed", reason="lifted"),
        )
        wait_for(lambda: paused(guard, "t-3", workflow="other", team="search") is None, 5, "lift")


def test_broker_trouble_never_stops_the_agent() -> None:
    guard = Guard(f"127.0.0.1:{free_port()}").start()  # nothing listens there
    try:
        assert not guard.wait_caught_up(0.5)
        assert guard.before_call("t-1", "w", "team") == Verdict("proceed")
    finally:
        guard.close()
