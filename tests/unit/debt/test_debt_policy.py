"""The policy's ``debt:`` section: defaults, durations, strictness."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tokengov.core.errors import PolicyError
from tokengov.core.policy import parse_policy


def test_defaults_without_a_debt_section() -> None:
    debt = parse_policy("version: 1\n").debt
    assert debt.horizon == timedelta(hours=1) and debt.alert_usd_per_day == Decimal(5)
    assert debt.min_calls == 20 and debt.retry_bound == 3


def test_overrides_and_durations() -> None:
    debt = parse_policy(
        "version: 1\ndebt: {horizon: 30m, retry_min_backoff: 250ms, "
        "alert_usd_per_day: 2.5, memory_budget_tokens: 600}\n"
    ).debt
    assert debt.horizon == timedelta(minutes=30)
    assert debt.retry_min_backoff == timedelta(milliseconds=250)
    assert debt.alert_usd_per_day == Decimal("2.5") and debt.memory_budget_tokens == 600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("debt: {horizn: 1h}", "line 2: debt.horizn: unknown key"),
        ("debt: {min_calls: 0}", "debt.min_calls"),
        ("debt: {tool_definitions_min_share: 2}", "debt.tool_definitions_min_share"),
        ("debt: {horizon: soon}", "debt.horizon"),
    ],
)
def test_bad_values_name_the_key(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("version: 1\n" + text + "\n")
    assert any(message in problem for problem in caught.value.problems), caught.value.problems
