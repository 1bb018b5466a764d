"""Secrets never leave in any form: receivers that echo everything back (a real HTTP
server answering 4xx/5xx with the whole request in many encodings, cut or whole; a real
SMTP server quoting the base64 login), and every sink of text searched afterwards —
the ``notifications`` rows in chdb, the router's state file, the logs at DEBUG, the
dead-letter topic and the ``receiver_failing`` alerts on the real broker, the console —
for each secret in every encoding and every 8-character piece of it."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import clickhouse_connect
import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

from tests.integration.router.conftest import (
    EchoServer,
    echo_formats,
    eventually,
    read_topic,
)
from tests.secret_forms import leaks
from tokengov.core.contracts import Alert
from tokengov.core.deadletter import read_dead_letter
from tokengov.core.errors import DeliveryError
from tokengov.core.kafka import CheckedProducer, read_to_end
from tokengov.core.policy import EmailReceiver as EmailConfig
from tokengov.core.policy import PagerDutyReceiver as PagerDutyConfig
from tokengov.core.policy import WebhookReceiver as WebhookConfig
from tokengov.core.policy import parse_policy
from tokengov.sinks.router.delivery import RetryPolicy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.kafka import KafkaAlertSink, KafkaDeadLetters
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.notification_log import ClickHouseNotificationLog
from tokengov.sinks.router.receivers import (
    EmailReceiver,
    PagerDutyReceiver,
    WebhookReceiver,
    build_receivers,
)
from tokengov.sinks.router.redact import REDACTED
from tokengov.sinks.router.router import Router
from tokengov.sinks.router.snapshot import LocalSnapshot
from tokengov.sinks.router.state import PartitionState
from tokengov.sinks.router.state_topic import RouterStateTopic
from tokengov.sinks.router.tree import RouteTree

pytestmark = [pytest.mark.integration]

SMTP_USER = "mailer-user-31"
SECRETS = {
    "hook_password": "hook-userinfo-pass-7f3a9c",
    "hook_token": "hook-query-token-b81d22e0",
    "hook_signing": "hook-signing-secret-42aa",
    "slack_path": "T0ABC123/B0DEF456/slackHookToken9x8y7z",
    "pd_key": "pd-routing-key-0123456789abcdef",
    "smtp_user": SMTP_USER,
    "smtp_password": "smtp-pass-Zq81_xY!w",
}
#: Loggers of the test's own servers (the remote side): what they log is theirs.
REMOTE_LOGGERS = ("mail.log", "aiohttp")

POLICY = """
version: 1
teams:
  t-hook: {{owner: a@example.com, receiver: hook}}
  t-slack: {{owner: a@example.com, receiver: slack}}
  t-pager: {{owner: a@example.com, receiver: pager}}
  t-mail: {{owner: a@example.com, receiver: mail}}
  t-mail2: {{owner: a@example.com, receiver: mail2}}
receivers:
  console: {{type: log}}
  hook: {{type: webhook, url_env: LEAK_HOOK_URL, secret_env: LEAK_HOOK_SECRET}}
  slack: {{type: slack, url_env: LEAK_SLACK_URL}}
  pager: {{type: pagerduty, routing_key_env: LEAK_PD_KEY, url: "{echo}/v2/enqueue"}}
  mail: {{type: email, to: [x@example.com], smtp_host: 127.0.0.1, smtp_port: {smtp1},
         starttls: false, username_env: LEAK_SMTP_USER, password_env: LEAK_SMTP_PASS}}
  mail2: {{type: email, to: [x@example.com], smtp_host: 127.0.0.1, smtp_port: {smtp2},
          starttls: false, username_env: LEAK_SMTP_USER, password_env: LEAK_SMTP_PASS}}
routes:
  receiver: console
  group_by: [team, kind, receiver]   # each receiver_failing alert its own group
  group_wait: 50ms
  group_interval: 1h                 # a dead-lettered group is not tried again here
  repeat_interval: 1h
"""


def alert(team: str) -> Alert:
    return Alert(
        fingerprint=f"runaway|{team}|wf|t-1|max_calls",
        kind="runaway",
        severity="critical",
        team=team,
        workflow="wf",
        task_id="t-1",
        summary=f"{team}: t-1 ran away",
        evidence={"observed": 9, "limit": 8},
        starts_at=datetime.now(UTC),
    )


def found(text: str, secrets: list[str]) -> dict[str, list[str]]:
    out = {s: leaks(text, s, user=SMTP_USER) for s in secrets}
    return {s: forms for s, forms in out.items() if forms}


def our_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(REMOTE_LOGGERS)
    )


def files_text(folder: Path) -> str:
    """Every file under ``folder`` (the SQLite database, its WAL and shm), as text."""
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in folder.rglob("*") if p.is_file()
    )


@pytest.mark.asyncio
async def test_no_sink_of_text_holds_a_secret_in_any_form(
    echo_server: EchoServer,
    smtp_refusing_auth,
    smtp_refusing_data,
    bootstrap,
    topic_names,
    data_dir,
    chdb_dsn,
    caplog,
):
    caplog.set_level(logging.DEBUG)
    secrets = list(SECRETS.values())
    echo_server.formats = echo_formats(secrets)
    echo_server.statuses = [500] * (len(echo_server.formats) - 1) + [400]
    env = {
        "LEAK_HOOK_URL": (
            f"http://bot:{SECRETS['hook_password']}@{echo_server.url.removeprefix('http://')}"
            f"/hook?token={SECRETS['hook_token']}"
        ),
        "LEAK_HOOK_SECRET": SECRETS["hook_signing"],
        "LEAK_SLACK_URL": f"{echo_server.url}/services/{SECRETS['slack_path']}",
        "LEAK_PD_KEY": SECRETS["pd_key"],
        "LEAK_SMTP_USER": SMTP_USER,
        "LEAK_SMTP_PASS": SECRETS["smtp_password"],
    }
    policy = parse_policy(
        POLICY.format(
            echo=echo_server.url, smtp1=smtp_refusing_auth.port, smtp2=smtp_refusing_data.port
        )
    )
    console_out = io.StringIO()
    snapshot = LocalSnapshot.in_data_dir(data_dir)
    state_topic = RouterStateTopic(bootstrap, topic_names.router_state, snapshot=snapshot)
    state = PartitionState(0, state_topic)
    publisher = CheckedProducer(bootstrap)
    async with httpx.AsyncClient() as client:
        router = Router(
            Dispatcher(RouteTree.from_policy(policy), state),
            build_receivers(
                policy,
                client=client,
                env=env,
                console=Console(file=console_out, width=500, color_system=None),
            ),
            notification_log=ClickHouseNotificationLog.from_dsn(chdb_dsn),
            dead_letters=KafkaDeadLetters(publisher, topic_names.deadletter),
            alert_sink=KafkaAlertSink(publisher, topic_names.alerts),
            retry=RetryPolicy(
                max_attempts=len(echo_server.formats), initial_backoff_s=0.005, max_backoff_s=0.01
            ),
            log_flush_interval_s=0.2,
        )
        await router.start()
        try:
            for team in ("t-hook", "t-slack", "t-pager", "t-mail", "t-mail2"):
                router.ingest(alert(team))
            await eventually(lambda: router.dead_lettered == 5, timeout_s=30, what="5 dead letters")
            names = ("hook", "slack", "pager", "mail", "mail2")
            await eventually(
                lambda: all(f"receiver {n} keeps failing" in console_out.getvalue() for n in names),
                timeout_s=15,
                what="the receiver_failing alerts on the console",
            )
        finally:
            await router.stop()
            router.close()
            state_topic.persist()
            snapshot.close()
    assert publisher.flush(10) == 0

    # The receivers really echoed every secret (else this test proves nothing).
    echoed = "\n".join([*echo_server.answers, *smtp_refusing_auth.replies])
    echoed += "\n".join(smtp_refusing_data.replies)
    # (All but the signing secret, which only keys the HMAC and is never sent.)
    assert set(found(echoed, secrets)) == set(secrets) - {SECRETS["hook_signing"]}
    # Each HTTP receiver met every answer format, and the email ones their refusal.
    assert len(echo_server.answers) == 3 * len(echo_server.formats)
    assert smtp_refusing_auth.replies and smtp_refusing_data.replies

    # --- every sink of text
    ch = clickhouse_connect.get_client(dsn=chdb_dsn)
    try:
        rows = ch.query(
            "SELECT receiver, error FROM notifications WHERE result != 'delivered'"
        ).result_rows
    finally:
        ch.close()
    errors = [error for _, error in rows]
    assert len(errors) == 3 * len(echo_server.formats) + 2  # every attempt recorded
    assert sum("HTTP 500" in e for e in errors) == 3 * (len(echo_server.formats) - 1)
    # The secrets in the URL (the request line) are redacted from every excerpt that
    # quotes it (all but the two answers quoting the body only); the routing key sits in
    # the body, past the 200-character excerpt in some answers.
    for receiver in ("hook", "slack", "pager", "mail", "mail2"):
        redacted = [REDACTED in error for name, error in rows if name == receiver]
        at_least = {"hook": len(echo_server.formats) - 2, "slack": len(echo_server.formats) - 2}
        assert sum(redacted) >= at_least.get(receiver, 1), receiver
    dead = read_topic(bootstrap, topic_names.deadletter, 5)
    alerts = read_topic(bootstrap, topic_names.alerts, 5)
    assert len(dead) == 5 and len(alerts) == 5
    sinks = {
        "notifications.error": "\n".join(errors),
        "dead-letter topic": "\n".join(
            (m.value() or b"").decode()
            + read_dead_letter(m.value())[0].raw().decode("utf-8", "replace")
            for m in dead
        ),
        "alerts topic": "\n".join((m.value() or b"").decode() for m in alerts),
        "router state files": files_text(data_dir / "router"),
        "router state topic": "\n".join(
            (r.value or b"").decode() for r in read_to_end(bootstrap, topic_names.router_state)
        ),
        "logs": our_log(caplog),
        "console": console_out.getvalue(),
    }
    assert "authentication refused: 535" in sinks["notifications.error"]
    assert "554" in sinks["notifications.error"]
    for where, text in sinks.items():
        assert text, where
        assert found(text, secrets) == {}, where


# ------------------------------------------------------------------ hypothesis

SECRET_TEXT = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=8, max_size=32
)
ASCII_SECRET = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=32)


def notification() -> Notification:
    return Notification(
        receiver="r",
        route="routes",
        group_key="g",
        group_labels={"team": "search"},
        reason="first notification",
        created_at=datetime.now(UTC),
        alerts=[alert("search")],
    )


async def _errors(echo_url: str, smtp_port: int, pd_key: str, token: str, password: str):
    out: list[str] = []
    async with httpx.AsyncClient() as client:
        pager = PagerDutyReceiver(
            "p",
            PagerDutyConfig(type="pagerduty", routing_key_env="K", url=f"{echo_url}/v2/enqueue"),
            client,
            {"K": pd_key},
        )
        hook = WebhookReceiver(
            "w",
            WebhookConfig(type="webhook", url_env="U", secret_env="S"),
            client,
            {"U": f"{echo_url}/hook?token={quote(token, safe='')}", "S": token},
        )
        mail = EmailReceiver(
            "m",
            EmailConfig(
                type="email",
                to=["x@example.com"],
                smtp_host="127.0.0.1",
                smtp_port=smtp_port,
                starttls=False,
                username_env="U",
                password_env="P",
            ),
            {"U": SMTP_USER, "P": password},
        )
        for receiver in (pager, hook, mail):
            try:
                await receiver.send(notification())
            except DeliveryError as exc:
                out.append(str(exc))
    return out


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pd_key=SECRET_TEXT,
    token=SECRET_TEXT,
    password=ASCII_SECRET,
    answer=st.integers(min_value=0, max_value=len(echo_formats([])) - 1),
    status=st.sampled_from([400, 401, 404, 500, 503]),
)
def test_generated_secrets_never_reach_errors_or_logs(
    echo_server: EchoServer, smtp_refusing_auth, caplog, pd_key, token, password, answer, status
):
    """Secrets from a wide alphabet (any script, symbols, spaces; the SMTP password is
    ASCII, all smtplib can send), each answer format in turn."""
    secrets = [pd_key, token, password]
    # What tokengov writes itself around a redacted message (DeliveryError's prefix) is
    # not a leak even when a generated secret happens to spell it (hypothesis tries the
    # test's own literals, "receiver" among them).
    assume(not found("receiver 'p': receiver 'w': receiver 'm': ", secrets))
    # A receiver only knows its own secrets: the webhook cannot redact the SMTP password
    # from an echo that happens to spell it (say "Tokengov", in X-Tokengov-Signature).
    own = {"p": [pd_key], "w": [token], "m": [password]}
    echo_server.formats = [echo_formats(secrets)[answer]]
    echo_server.statuses = [status]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        errors = asyncio.run(_errors(echo_server.url, smtp_refusing_auth.port, *secrets))
    assert [e[len("receiver '") :][0] for e in errors] == ["p", "w", "m"]
    for error in errors:
        assert found(error, own[error[len("receiver '")]]) == {}
    assert found(our_log(caplog), secrets) == {}
