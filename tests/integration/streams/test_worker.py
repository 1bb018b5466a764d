"""The real worker against the real broker: scripted scenarios, dead letters, metrics, reload."""

from __future__ import annotations

import base64
import signal

import orjson
import pytest

from tests.integration.streams.events import POLICY, call, now, outcome, retries, tool_calls
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_scripted_scenario_gives_exactly_the_expected_alerts_decisions_and_records(
    cluster_factory,
) -> None:
    c = cluster_factory(POLICY)
    worker = c.start_worker()
    day = now().date().isoformat()

    run = tool_calls("t-run", 6)
    c.send(*run)  # 6 tool calls > 5: runaway, on_runaway pause
    c.send(run[0], run[3])  # producer retries: counted once
    c.send(*tool_calls("t-doc", 4, workflow="doc-qa"), envelope=True)  # fallback
    c.send(*retries("t-storm", step=1000, n=4, gap_s=1.0))  # 3 retries, 1 s apart: no backoff
    c.send(*retries("t-calm", step=1001, n=4, gap_s=0.5)[:1])
    c.send(*[call("t-loop", step=7, tool_name="grep") for _ in range(5)])  # same tool, no progress
    c.send(call("t-new", workflow="brand-new", team="research"))
    c.send(call("t-unpriced", workflow="brand-new", team="research", model="gpt-9"))
    no_usage = call("t-no-usage", workflow="doc-qa", tokens={}) | {"usage_missing": True}
    c.send(no_usage, no_usage | {"event_id": no_usage["event_id"] + "-2"})  # alerted once
    c.send(call("t-spend", team="research", tokens={"input": 1_500_000, "output": 0}))  # $0.60
    c.send(outcome("t-run"), outcome("t-storm", status="failure"))
    c.send_raw(b"t-bad", b"{not json")
    good = call("t-env", tool_calls=1)
    bad = call("t-env", tokens={"input": -5, "output": 0})
    c.send(bad, good, envelope=True)

    expected = sorted(
        [
            "runaway|search|support-triage|t-run|max_tool_calls",
            "runaway|search|doc-qa|t-doc|max_tool_calls",
            "retry_storm|search|support-triage|t-storm|step-1000",
            "loop|search|support-triage|t-loop|grep",
            f"missing_cost_profile|research|brand-new|{day}",
            f"unpriced_model|research|gpt-9|{day}",
            f"missing_usage|search|doc-qa|{day}",
            f"budget_threshold|research|team:research:day|{day}|usd|0.5",
        ]
    )
    wait_for(
        lambda: len(c.fingerprints()) >= len(expected),
        40,
        "the expected alerts",
        lambda: str(c.fingerprints()),
    )
    c.wait_processed()
    assert c.fingerprints() == expected, c.tail()

    missing = next(a for a in c.alerts() if a["kind"] == "missing_usage")
    assert missing["workflow"] == "doc-qa" and missing["evidence"]["calls"] >= 1

    runaway = next(a for a in c.alerts() if a["task_id"] == "t-run")
    assert runaway["summary"] == "task t-run made 6 tool calls; its cost profile allows 5"
    assert runaway["evidence"]["observed"] == 6 and runaway["evidence"]["limit"] == 5
    assert runaway["severity"] == "critical" and runaway["team"] == "search"

    decisions = c.decisions()
    assert sorted(k for k, _ in decisions) == ["task:t-doc", "task:t-run"]
    by_key = dict(decisions)
    assert by_key["task:t-run"]["action"] == "pause"
    assert by_key["task:t-doc"]["action"] == "fallback"
    assert by_key["task:t-doc"]["fallback_model"] == "gpt-4.1-mini"

    dead = c.dead_letters()
    assert len(dead) == 2
    whole = next(d for d in dead if d["index"] is None)
    assert whole["raw_is"] == "message" and base64.b64decode(whole["raw_b64"]) == b"{not json"
    assert "not valid JSON" in whole["reason"] and whole["source_topic"] == c.topics.events
    assert base64.b64decode(whole["key_b64"]) == b"t-bad" and whole["source_offset"] >= 0
    item = next(d for d in dead if d["index"] is not None)
    assert item["index"] == 0 and item["event_id"] == bad["event_id"]
    assert "tokens.input" in item["reason"]
    assert orjson.loads(base64.b64decode(item["raw_b64"]))["task_id"] == "t-env"

    # metrics: the 1-minute windows close after 1 s idle; unit metrics every second
    def unit_metrics():
        return [
            m for m in c.metrics() if m["metric"] == "unit" and m["workflow"] == "support-triage"
        ]

    wait_for(lambda: [u for u in unit_metrics() if u["tasks_finished"] == 2], 20, "unit metrics")
    unit = [u for u in unit_metrics() if u["tasks_finished"] == 2][-1]
    assert unit["tasks_succeeded"] == 1 and unit["success_rate"] == 0.5
    assert unit["tasks_met_quality_bar"] == 1
    wait_for(lambda: [m for m in c.metrics() if m["metric"] == "usage"], 20, "usage metrics")
    usage = [m for m in c.metrics() if m["metric"] == "usage" and m["window"] == "1m"]
    assert sum(m["calls"] for m in usage if m["revision"] == 0) >= 20
    assert {m["workflow"] for m in usage} >= {"support-triage", "doc-qa", "brand-new"}
    assert any(m["model"] == "gpt-9" and m["unpriced_calls"] == 1 for m in usage)
    coverage = [m for m in c.metrics() if m["metric"] == "attribution_coverage"]
    assert coverage and all(m["token_coverage"] == 1.0 for m in coverage)

    # SIGHUP: a broken policy is refused; a valid one takes over without losing task state
    c.send(*tool_calls("t-hup", 2))
    c.wait_processed()
    c.policy.write_text("version: 1\nteams: {search: {owner: [}\n")
    worker.signal(signal.SIGHUP)
    wait_for(lambda: "REFUSED" in worker.tail(), 10, "the broken policy to be refused", c.tail)
    c.policy.write_text(POLICY.replace("max_tool_calls: 5", "max_tool_calls: 2"))
    worker.signal(signal.SIGHUP)
    wait_for(lambda: "generation 2 in force" in worker.tail(20000), 10, "the reload", c.tail)
    c.send(call("t-hup", tool_calls=1))
    fp = "runaway|search|support-triage|t-hup|max_tool_calls"
    wait_for(lambda: fp in c.fingerprints(), 20, "the runaway under the new policy", c.tail)
    hup = next(a for a in c.alerts() if a["fingerprint"] == fp)
    assert hup["evidence"]["observed"] == 3 and hup["evidence"]["limit"] == 2
    assert worker.alive()
