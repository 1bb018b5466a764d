"""Replay-safe webhooks, end to end: the router delivers a real notification to a real
HTTP server, which fails it twice; every attempt is checked with an HMAC written here
(not tokengov's), carries the same notification id, and is signed at its own time. The
captured request is then replayed: ``tokengov.core.signing.verify`` rejects it once it is
older than the tolerance, and rejects it tampered with at once."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.router.conftest import Capture, check_signature, eventually
from tokengov.core.contracts import Alert
from tokengov.core.policy import WebhookReceiver as WebhookConfig
from tokengov.core.policy import parse_policy
from tokengov.core.signing import DEFAULT_TOLERANCE_S, SignatureError, verify
from tokengov.sinks.router.delivery import RetryPolicy
from tokengov.sinks.router.dispatcher import Dispatcher
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.notification_log import MemoryNotificationLog
from tokengov.sinks.router.receivers import WebhookReceiver, build_receivers
from tokengov.sinks.router.router import Router
from tokengov.sinks.router.state import MemoryState
from tokengov.sinks.router.tree import RouteTree

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SECRET = "whsec-router-test-5b1e"
POLICY = """
version: 1
teams:
  search: {{owner: s@example.com, receiver: hook}}
receivers:
  hook: {{type: webhook, url: "{url}/hook", secret_env: SIGNING_TEST_SECRET}}
routes:
  receiver: hook
  group_by: [team]
  group_wait: 10ms
  group_interval: 1h
  repeat_interval: 1h
"""


async def test_retries_carry_one_id_each_signed_and_a_replay_is_refused(http_capture: Capture):
    http_capture.statuses = [500, 503]  # then 200
    policy = parse_policy(POLICY.format(url=http_capture.url))
    log = MemoryNotificationLog()
    state = MemoryState()
    async with httpx.AsyncClient() as client:
        router = Router(
            Dispatcher(RouteTree.from_policy(policy), state),
            build_receivers(policy, client=client, env={"SIGNING_TEST_SECRET": SECRET}),
            notification_log=log,
            retry=RetryPolicy(max_attempts=5, initial_backoff_s=0.01, max_backoff_s=0.02),
        )
        await router.start()
        try:
            router.ingest(
                Alert(
                    fingerprint="runaway|search|wf|t-1|max_calls",
                    kind="runaway",
                    severity="critical",
                    team="search",
                    workflow="wf",
                    task_id="t-1",
                    summary="t-1 ran away",
                    evidence={"observed": 13, "limit": 12},
                    starts_at=datetime.now(UTC),
                )
            )
            received = await http_capture.wait_for(3, path="/hook")
            await eventually(
                lambda: any(a.result == "delivered" for a in log.attempts), what="delivery"
            )
        finally:
            await router.stop()
            router.close()

    assert [a.result for a in log.attempts] == ["failed", "failed", "delivered"]
    ids = {r.headers["X-Tokengov-Notification-Id"] for r in received}
    assert len(ids) == 1  # one notification, retried: one id for receivers that deduplicate
    [notification_id] = ids
    assert {orjson.loads(r.body)["notification_id"] for r in received} == {notification_id}
    assert len({r.body for r in received}) == 1  # the same bytes every time
    signed_at = [
        check_signature(r.body, r.headers["X-Tokengov-Signature"], SECRET) for r in received
    ]
    assert signed_at == sorted(signed_at)  # each attempt signed when it was made
    assert all(abs(t - time.time()) < DEFAULT_TOLERANCE_S for t in signed_at)

    # What a receiver does with tokengov.core.signing, on the request it really got.
    last = received[-1]
    header = last.headers["X-Tokengov-Signature"]
    assert verify(last.body, header, SECRET).timestamp() == signed_at[-1]
    # Replayed later than the tolerance: refused, though the signature itself is good.
    with pytest.raises(SignatureError, match="beyond the tolerance"):
        verify(last.body, header, SECRET, now=signed_at[-1] + DEFAULT_TOLERANCE_S + 1)
    # Tampered with (the team changed): refused at once.
    tampered = last.body.replace(b'"team":"search"', b'"team":"finops"')
    assert tampered != last.body
    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify(tampered, header, SECRET, now=signed_at[-1])
    # Another endpoint's secret: refused.
    with pytest.raises(SignatureError):
        verify(last.body, header, "whsec-someone-else", now=signed_at[-1])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_the_documented_node_snippet_verifies_a_real_notification(http_capture: Capture):
    """docs/alerting.md's Node verifier, run as written, on what a receiver really got."""
    docs = (Path(__file__).resolve().parents[3] / "docs" / "alerting.md").read_text()
    [snippet] = re.findall(r"```js\n(.*?)```", docs, flags=re.DOTALL)
    config = WebhookConfig(type="webhook", url=f"{http_capture.url}/hook", secret_env="S")
    async with httpx.AsyncClient() as client:
        await WebhookReceiver("hook", config, client, {"S": SECRET}).send(_notification())
    [got] = await http_capture.wait_for(1, path="/hook")
    driver = snippet + (
        "const [body, header, secret] = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "const raw = Buffer.from(body, 'base64');\n"
        "const tampered = Buffer.concat([raw, Buffer.from(' ')]);\n"
        "console.log(JSON.stringify([verifyTokengov(raw, header, secret),"
        " verifyTokengov(tampered, header, secret), verifyTokengov(raw, header, 'other'),"
        " verifyTokengov(raw, header, secret, -1)]));\n"
    )
    stdin = orjson.dumps(
        [base64.b64encode(got.body).decode(), got.headers["X-Tokengov-Signature"], SECRET]
    )
    result = await asyncio.to_thread(
        subprocess.run, ["node", "-e", driver], input=stdin, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    # good · tampered body · wrong secret · outside a (negative) tolerance
    assert orjson.loads(result.stdout) == [True, False, False, False]


def _notification() -> Notification:
    return Notification(
        receiver="hook",
        route="routes",
        group_key="g",
        group_labels={"team": "search"},
        reason="first notification",
        created_at=datetime.now(UTC),
        alerts=[
            Alert(
                fingerprint="runaway|search|wf|t-2|max_calls",
                kind="runaway",
                severity="critical",
                team="search",
                summary="t-2 ran away — “quoted”, ünïcode",
                starts_at=datetime.now(UTC),
            )
        ],
    )
