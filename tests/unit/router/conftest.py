"""Fixtures for the router's unit tests: a settable clock, an alert factory, a policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tokengov.core.contracts import Alert
from tokengov.core.policy import Policy, parse_policy

T0 = datetime(2026, 11, 29, 5, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


AlertFactory = Callable[..., Alert]


@pytest.fixture
def make_alert(clock: FakeClock) -> AlertFactory:
    def make(
        kind: str = "runaway",
        *,
        team: str = "search",
        task: str | None = "t-1",
        severity: str = "critical",
        workflow: str | None = "support-triage",
        limit: str = "max_tool_calls",
        **extra: Any,
    ) -> Alert:
        fingerprint = extra.pop("fingerprint", None) or "|".join(
            [kind, team, workflow or "", task or "", limit]
        )
        fields: dict[str, Any] = dict(
            fingerprint=fingerprint,
            kind=kind,
            severity=severity,
            team=team,
            workflow=workflow,
            task_id=task,
            labels={"limit": limit},
            summary=f"{kind} on {task}",
            evidence={"observed": 13, "limit": 12},
            starts_at=clock.now,
        )
        fields.update(extra)
        return Alert(**fields)

    return make


POLICY = """
version: 1
teams:
  search: {owner: s@example.com, receiver: search-slack}
  support: {owner: p@example.com}
receivers:
  console: {type: log}
  search-slack: {type: slack, url_env: SLACK_URL}
  search-pager: {type: pagerduty, routing_key_env: PD_KEY}
  ops-hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
cost_profiles:
  support-triage: {team: search}
  ticket-summary: {team: support}
budgets:
  - {scope: team, name: search, period: day, limit_usd: 200}
routes:
  receiver: console
  group_by: [team, kind]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - match: {team: search, severity: critical}
      receiver: search-pager
      group_wait: 2s
      continue: true
    - match: {team: search}
      receiver: ops-hook
      group_by: [team, kind, task_id]
      routes:
        - {match: {kind: loop}, receiver: console, repeat_interval: 1h}
"""


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY)
