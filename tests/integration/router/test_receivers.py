"""Receivers against real servers on loopback: what arrives, signed and shaped right,
and secrets never in an error or a log line."""

from __future__ import annotations

import logging
import ssl
import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as email_policy

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.integration.router.conftest import check_signature
from tokengov.core.contracts import Alert
from tokengov.core.errors import DeliveryError
from tokengov.core.policy import EmailReceiver as EmailConfig
from tokengov.core.policy import PagerDutyReceiver as PagerDutyConfig
from tokengov.core.policy import SlackReceiver as SlackConfig
from tokengov.core.policy import WebhookReceiver as WebhookConfig
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.receivers import (
    EmailReceiver,
    PagerDutyReceiver,
    SlackReceiver,
    WebhookReceiver,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
SECRET = "hook-signing-secret-42"
SLACK_TOKEN = "T000/B000/XXXXslacktokenXXXX"
PD_KEY = "pd-routing-key-0123456789"


def runaway(status: str = "firing") -> Alert:
    return Alert(
        alert_id="a-1",
        fingerprint="runaway|search|support-triage|t-8812|max_tool_calls",
        kind="runaway",
        severity="critical",
        status=status,
        team="search",
        workflow="support-triage",
        task_id="t-8812",
        labels={"limit": "max_tool_calls"},
        summary="task t-8812 made 13 tool calls; its cost profile allows 12",
        evidence={
            "observed": 13,
            "limit": 12,
            "decision": {"action": "pause", "scope": "task", "key": "t-8812", "reason": "runaway"},
        },
        starts_at=NOW,
        ends_at=NOW if status == "resolved" else None,
    )


def notification(*alerts: Alert, receiver: str = "r") -> Notification:
    return Notification(
        receiver=receiver,
        route="routes.routes[0]",
        group_key='routes>r:{team="search"}',
        group_labels={"team": "search", "kind": "runaway"},
        reason="first notification",
        created_at=NOW,
        alerts=list(alerts or [runaway()]),
    )


@pytest_asyncio.fixture
async def client():
    async with httpx.AsyncClient() as c:
        yield c


async def test_webhook_posts_the_group_signed(http_capture, client):
    config = WebhookConfig(type="webhook", url_env="HOOK_URL", secret_env="HOOK_SECRET")
    env = {"HOOK_URL": f"{http_capture.url}/hook", "HOOK_SECRET": SECRET}
    await WebhookReceiver("ops-hook", config, client, env).send(notification())
    [got] = await http_capture.wait_for(1, path="/hook")
    t = check_signature(got.body, got.headers["X-Tokengov-Signature"], SECRET)
    assert abs(t - time.time()) < 300  # signed at send time, within a receiver's tolerance
    with pytest.raises(AssertionError):
        check_signature(got.body, got.headers["X-Tokengov-Signature"], "other")
    assert got.headers["X-Tokengov-Notification-Id"] == orjson.loads(got.body)["notification_id"]
    body = orjson.loads(got.body)
    assert body["status"] == "firing" and body["group_labels"]["team"] == "search"
    [alert] = body["alerts"]
    assert Alert.model_validate(alert) == runaway()  # the alert contract, whole


async def test_webhook_without_secret_is_unsigned(http_capture, client):
    config = WebhookConfig(type="webhook", url=f"{http_capture.url}/plain")
    await WebhookReceiver("hook", config, client, {}).send(notification())
    [got] = await http_capture.wait_for(1, path="/plain")
    assert "X-Tokengov-Signature" not in got.headers


async def test_slack_message_is_actionable(http_capture, client):
    config = SlackConfig(type="slack", url_env="SLACK_URL", channel="#search-oncall")
    env = {"SLACK_URL": f"{http_capture.url}/services/{SLACK_TOKEN}"}
    receiver = SlackReceiver(
        "search-slack", config, client, env, grafana_url="http://grafana.local:3000"
    )
    await receiver.send(notification())
    [got] = await http_capture.wait_for(1, path="/services/")
    message = orjson.loads(got.body)
    text = message["text"]
    for needle in (
        "task t-8812 made 13 tool calls",
        "Team: search",
        "Workflow: support-triage",
        "Task: t-8812",
        "observed 13",
        "limit 12 (max_tool_calls)",
        "Decision: pause task:t-8812 (runaway)",
        "FIRING:1",
    ):
        assert needle in text, needle
    assert message["channel"] == "#search-oncall"
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["url"].startswith("http://grafana.local:3000/d/")
    assert "var-task_id=t-8812" in buttons[0]["url"]


async def test_pagerduty_triggers_then_resolves_with_the_fingerprint(http_capture, client):
    http_capture.default_status = 202
    config = PagerDutyConfig(
        type="pagerduty", routing_key_env="PD_KEY", url=f"{http_capture.url}/v2/enqueue"
    )
    receiver = PagerDutyReceiver("pager", config, client, {"PD_KEY": PD_KEY})
    await receiver.send(notification(runaway()))
    await receiver.send(notification(runaway("resolved")))
    first, second = [
        orjson.loads(r.body) for r in await http_capture.wait_for(2, path="/v2/enqueue")
    ]
    assert first["event_action"] == "trigger" and second["event_action"] == "resolve"
    assert first["dedup_key"] == second["dedup_key"] == runaway().fingerprint
    assert first["routing_key"] == PD_KEY
    assert first["payload"]["severity"] == "critical"
    assert first["payload"]["custom_details"]["decision"].startswith("pause")


async def test_email_over_starttls_with_login(smtp_starttls, tls_files):
    config = EmailConfig(
        type="email",
        to=["search-oncall@example.com"],
        smtp_host=smtp_starttls.host,
        smtp_port=smtp_starttls.port,
        username_env="SMTP_USER",
        password_env="SMTP_PASS",
    )
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    env = {"SMTP_USER": "mailer", "SMTP_PASS": "s3cret-smtp-pass"}
    await EmailReceiver("mail", config, env, ssl_context=trust).send(notification())
    [envelope] = smtp_starttls.messages
    assert smtp_starttls.tls_sessions == 1
    assert smtp_starttls.logins == [("mailer", "s3cret-smtp-pass")]
    assert envelope.rcpt_tos == ["search-oncall@example.com"]
    mail = message_from_bytes(envelope.original_content, policy=email_policy)
    assert mail["Subject"].startswith("[FIRING:1]")
    body = mail.get_content()
    assert "Workflow:  support-triage" in body and "t-8812" in body


async def test_email_refuses_a_server_without_starttls(smtp_plain):
    config = EmailConfig(
        type="email", to=["x@example.com"], smtp_host=smtp_plain.host, smtp_port=smtp_plain.port
    )
    with pytest.raises(DeliveryError, match="does not offer STARTTLS") as info:
        await EmailReceiver("mail", config, {}).send(notification())
    assert info.value.retryable is False
    assert smtp_plain.messages == []


async def test_missing_secret_names_the_variable_not_retryable(client):
    config = WebhookConfig(type="webhook", url_env="NOT_SET_HOOK_URL")
    with pytest.raises(DeliveryError, match="NOT_SET_HOOK_URL is not set") as info:
        await WebhookReceiver("hook", config, client, {}).send(notification())
    assert not info.value.retryable


async def test_secrets_never_reach_errors_or_logs(http_capture, client, caplog, smtp_plain):
    caplog.set_level(logging.DEBUG)
    http_capture.echo = True  # the server answers with the URL and body it got
    http_capture.default_status = 500
    errors: list[str] = []
    slack = SlackReceiver(
        "s",
        SlackConfig(type="slack", url_env="U"),
        client,
        {"U": f"{http_capture.url}/services/{SLACK_TOKEN}"},
    )
    pager = PagerDutyReceiver(
        "p",
        PagerDutyConfig(
            type="pagerduty", routing_key_env="K", url=f"{http_capture.url}/v2/enqueue"
        ),
        client,
        {"K": PD_KEY},
    )
    hook = WebhookReceiver(
        "w",
        WebhookConfig(type="webhook", url_env="W", secret_env="S"),
        client,
        {"W": f"{http_capture.url}/hook?token={SECRET}x", "S": SECRET},
    )
    dead = WebhookReceiver(
        "d",
        WebhookConfig(type="webhook", url_env="W"),
        client,
        {"W": f"http://user:{SECRET}@127.0.0.1:1/closed"},
    )
    smtp_config = EmailConfig(
        type="email",
        to=["x@example.com"],
        smtp_host=smtp_plain.host,
        smtp_port=smtp_plain.port,
        starttls=False,
        username_env="U",
        password_env="P",
    )
    mail = EmailReceiver("m", smtp_config, {"U": "mailer", "P": "wrong-" + SECRET})
    for receiver in (slack, pager, hook, dead, mail):
        with pytest.raises(DeliveryError) as info:
            await receiver.send(notification())
        errors.append(str(info.value))
    assert any("HTTP 500" in e for e in errors)  # the answer is reported…
    for text in [*errors, caplog.text]:
        for secret in (SLACK_TOKEN, PD_KEY, SECRET):
            assert secret not in text  # …without the secrets it echoed
    assert "«redacted»" in errors[0]
