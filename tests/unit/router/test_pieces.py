"""Labels, silences, inhibition rules, rendering, SQL, secrets: small pure pieces."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tokengov.core.errors import DeliveryError, PolicyError
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.delivery import RetryPolicy
from tokengov.sinks.router.history import list_alerts_sql, notifications_sql
from tokengov.sinks.router.inhibit import Inhibitor, rules_from_policy
from tokengov.sinks.router.labels import routing_labels
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.receivers import (
    Secrets,
    dashboard_url,
    email_message,
    pagerduty_event,
    slack_message,
)
from tokengov.sinks.router.receivers.base import hook_url
from tokengov.sinks.router.silences import Silence, SilenceStore, new_silence

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def test_budget_alerts_get_derived_labels(make_alert):
    breach = make_alert(
        "budget_threshold",
        task=None,
        workflow=None,
        labels={},
        evidence={"budget_id": "team:search:day", "threshold": 1.0},
    )
    labels = routing_labels(breach)
    assert labels["budget"] == "team:search:day" and labels["budget_scope"] == "team"
    assert labels["budget_breached"] == "true" and labels["threshold"] == "1"
    eighty = make_alert(
        "budget_threshold", labels={"budget": "workflow:wf:month", "threshold": "80%"}
    )
    assert routing_labels(eighty)["budget_breached"] == "false"
    assert routing_labels(eighty)["threshold"] == "80%"  # the alert's own label is kept
    assert "budget" not in routing_labels(make_alert("runaway"))


def test_policy_inhibit_rules(make_alert):
    policy = parse_policy("""
version: 1
receivers: {c: {type: log}}
routes: {receiver: c}
inhibit_rules:
  - source_match: {kind: attribution_coverage}
    target_match_re: {kind: "unpriced_model"}
    equal: [team]
""")
    inhibitor = Inhibitor(rules_from_policy(policy.inhibit_rules))
    source = make_alert("attribution_coverage", task=None, fingerprint="cov")
    inhibitor.observe("cov", routing_labels(source), firing=True)
    target = routing_labels(make_alert("unpriced_model"))
    assert inhibitor.muted_by("x", target, NOW) is not None
    other_team = routing_labels(make_alert("unpriced_model", team="growth"))
    assert inhibitor.muted_by("y", other_team, NOW) is None
    inhibitor.observe("cov", routing_labels(source), firing=True, ends_at=NOW)
    assert inhibitor.muted_by("x", target, NOW) is None  # its ends_at has passed
    with pytest.raises(PolicyError, match="set target_match"):
        parse_policy(
            "version: 1\nreceivers: {c: {type: log}}\nroutes: {receiver: c}\n"
            "inhibit_rules: [{source_match: {kind: x}}]\n"
        )


def test_silence_validation_and_latest_version_wins():
    with pytest.raises(ValidationError, match="must not mute everything"):
        new_silence(
            ["team=~.*"], created_by="a", reason="r", ends_at=NOW + timedelta(hours=1), now=NOW
        )
    with pytest.raises(ValidationError, match="reason"):
        new_silence(["team=search"], created_by="a", reason="", ends_at=NOW, now=NOW)
    s = new_silence(
        ["team=search", "kind!=loop"],
        created_by="alice",
        reason="deploy",
        ends_at=NOW + timedelta(hours=1),
        now=NOW,
    )
    assert Silence.from_json(s.to_json()) == s
    assert s.mutes({"team": "search", "kind": "runaway"}, NOW)
    assert not s.mutes({"team": "search", "kind": "loop"}, NOW)
    store = SilenceStore([s])
    expired = s.expired(NOW + timedelta(minutes=1))
    assert store.apply(expired) and not store.apply(s)  # an older version does not come back
    assert store.muting({"team": "search"}, NOW + timedelta(minutes=2)) == []
    assert expired.state(NOW + timedelta(minutes=1)) == "expired"


def note(*alerts):
    return Notification(
        receiver="r",
        route="routes",
        group_key="g",
        group_labels={"team": "search"},
        reason="first notification",
        created_at=NOW,
        alerts=list(alerts),
    )


def test_messages_carry_what_a_person_needs(make_alert):
    alert = make_alert(evidence={"observed": 13, "limit": 12, "decision": "pause"})
    text = slack_message(note(alert), grafana_url=None)["text"]
    assert "Decision: pause" in text and "Dashboard" not in text
    mail = email_message(note(alert), sender="t@x", to=["a@x", "b@x"], grafana_url="http://g")
    assert mail["To"] == "a@x, b@x" and "http://g/d/" in mail.get_content()
    event = pagerduty_event(alert, "key", grafana_url="http://g/")
    assert event["links"][0]["href"].startswith("http://g/d/tokengov-overview?var-team=search")
    assert dashboard_url(None, alert) is None
    resolved = pagerduty_event(
        alert.model_copy(update={"status": "resolved"}), "key", grafana_url=None
    )
    assert resolved == {
        "routing_key": "key",
        "event_action": "resolve",
        "dedup_key": alert.fingerprint,
    }


def test_secrets_are_scrubbed_from_text():
    secrets = Secrets(
        "hook", {"URL": "https://hooks.slack.com/services/T1/B2/abcdef", "K": "pd-key-123"}
    )
    url = secrets.get("URL", "url_env")
    secrets.get("K", "routing_key_env")
    text = secrets.redact(f"POST {url} failed; body echoed /services/T1/B2/abcdef and pd-key-123")
    assert text == "POST «redacted» failed; body echoed «redacted» and «redacted»"
    with pytest.raises(DeliveryError, match="MISSING is not set"):
        secrets.get("MISSING", "secret_env")


def test_a_hook_url_is_a_secret_from_the_file_or_the_environment():
    in_file = Secrets("slack", {})
    url = hook_url("https://hooks.slack.com/services/T1/B2/abcdef", "UNUSED", in_file)
    assert url == "https://hooks.slack.com/services/T1/B2/abcdef"
    assert in_file.redact(f"POST {url}: echoed /services/T1/B2/abcdef") == (
        "POST «redacted»: echoed «redacted»"
    )
    from_env = Secrets("hook", {"W": "http://127.0.0.1:9/hook?token=s3cret"})
    url = hook_url(None, "W", from_env)
    assert url == "http://127.0.0.1:9/hook?token=s3cret"
    assert from_env.redact("GET /hook?token=s3cret") == "GET «redacted»?«redacted»"
    with pytest.raises(DeliveryError, match="url_env: environment variable W is not set") as info:
        hook_url(None, "W", Secrets("hook", {}))
    assert info.value.retryable is False


def test_sql_is_parameterised():
    sql, params = list_alerts_sql(
        team="search'; DROP TABLE alerts --", status="firing", kind=None, limit=5
    )
    assert "DROP" not in sql and params["team"].startswith("search'")
    assert "team = {team:String}" in sql and "WHERE status = {status:String}" in sql
    assert sql.endswith("LIMIT {limit:UInt32}")
    sql, params = notifications_sql(["a", "b"])
    assert "IN {ids:Array(String)}" in sql and params == {"ids": ["a", "b"]}


def test_backoff_grows_with_jitter_and_is_bounded():
    policy = RetryPolicy(initial_backoff_s=1, multiplier=2, max_backoff_s=10)
    rng = random.Random(7)
    delays = [policy.delay_s(n, rng) for n in range(1, 7)]
    caps = [1, 2, 4, 8, 10, 10]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len({round(policy.delay_s(3, rng), 6) for _ in range(20)}) > 1  # jittered
