from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from tokengov.core.contracts import Alert, CallEvent, Outcome
from tokengov.core.pricing import PricedCall
from tokengov.sinks.clickhouse.rows import (
    ALERT_COLUMNS,
    FINDING_COLUMNS,
    TOKEN_EVENT_COLUMNS,
    Finding,
    RowError,
    alert_row,
    event_row,
    finding_row,
    outcome_row,
)

TS = datetime(2026, 11, 29, 5, tzinfo=UTC)


def _event(**kw) -> CallEvent:
    doc = {
        "event_id": "e1",
        "ts": TS,
        "model": "m",
        "tokens": {"input": 100, "output": 10, "cached_input": 40},
    } | kw
    return CallEvent.model_validate(doc)


def test_event_row_follows_the_columns():
    row = event_row(
        _event(team=None, components={"history": 30}), PricedCall(Decimal("0.1"), "catalog")
    )
    as_dict = dict(zip(TOKEN_EVENT_COLUMNS, row, strict=True))
    assert as_dict["team"] == "unattributed"
    assert as_dict["task_id"] == "e1"  # an event without task_id is its own task
    assert (as_dict["input_tokens"], as_dict["cached_input_tokens"]) == (100, 40)
    assert as_dict["history_tokens"] == 30 and as_dict["memory_tokens"] == 0
    assert (as_dict["cost_usd"], as_dict["cost_source"]) == (Decimal("0.1"), "catalog")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("step", 2**63),
        ("attempt", 2**64 - 1),
        ("tool_calls", 2**63 + 5),
        ("latency_ms", 2**63),
        ("context_window", 2**70),
    ],
)
def test_values_beyond_the_contract_name_the_field(field, value):
    # Built past the models' checks: the row refuses them whatever a decoder let through.
    event = _event().model_copy(update={field: value})
    with pytest.raises(RowError, match=f"{field}: {value} is beyond the contract's limit"):
        event_row(event, PricedCall(Decimal(0), "catalog"))


def test_huge_token_counts_are_refused():
    # the contract itself refuses counts beyond 2**63 - 1 (tokengov.core.contracts.MAX_COUNT)
    with pytest.raises(ValidationError, match=r"tokens\.input"):
        _event(tokens={"input": 2**64, "output": 1})


@pytest.mark.parametrize(("field", "value"), [("step", 2**40), ("attempt", 2**63 - 1)])
def test_values_the_contract_allows_are_kept(field, value):
    row = event_row(_event(**{field: value}), PricedCall(Decimal(0), "catalog"))
    assert row[TOKEN_EVENT_COLUMNS.index(field)] == value


@pytest.mark.parametrize(
    "ts",
    [
        datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
        datetime(2150, 6, 1, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
    ],
)
def test_times_outside_the_contract_name_ts(ts):
    event = _event().model_copy(update={"ts": ts})
    with pytest.raises(RowError, match=r"^ts: .* is outside \[2000-01-01T00:00:00Z, 2100"):
        event_row(event, PricedCall(Decimal(0), "catalog"))
    outcome = Outcome(event_id="o", ts=TS, task_id="t", status="success")
    with pytest.raises(RowError, match=r"^ts: "):
        outcome_row(outcome.model_copy(update={"ts": ts}))


@pytest.mark.parametrize(
    "ts",
    [datetime(2000, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)],
)
def test_the_edges_of_the_time_range_are_kept(ts):
    row = event_row(_event().model_copy(update={"ts": ts}), PricedCall(Decimal(0), "catalog"))
    assert row[1] == ts


@pytest.mark.parametrize("value", [2**63, 2**63 + 5, 2**64 - 1, 2**64])
def test_huge_token_counts_are_refused_by_the_row(value):
    # Built past the models' checks (the contract refuses them too, where it checks).
    event = _event()
    big = event.model_copy(update={"tokens": event.tokens.model_copy(update={"input": value})})
    with pytest.raises(RowError, match=rf"tokens\.input: {value} is beyond"):
        event_row(big, PricedCall(Decimal(0), "catalog"))
    parts = event.components.model_copy(update={"history": value})
    with pytest.raises(RowError, match=rf"components\.history: {value} is beyond"):
        event_row(event.model_copy(update={"components": parts}), PricedCall(Decimal(0), "catalog"))


def test_alert_row_stores_evidence_as_sorted_json():
    alert = Alert(
        fingerprint="f",
        kind="runaway",
        severity="critical",
        summary="s",
        evidence={"z": 1, "a": [1, 2]},
        labels={"limit": "x"},
    )
    row = dict(zip(ALERT_COLUMNS, alert_row(alert), strict=True))
    assert row["evidence"] == '{"a":[1,2],"z":1}'
    assert row["labels"] == {"limit": "x"}


def test_finding_is_tolerant_and_gets_a_stable_id():
    doc = {
        "area": "history_resent",
        "evidence": {"turns": 3},
        "ts": "2026-11-29T05:00:00Z",
        "workflow": "",
        "unknown": "ignored",
        "confidence": 0.5,
    }
    first, second = Finding.model_validate(doc), Finding.model_validate_json(orjson.dumps(doc))
    assert first.id == second.id and len(first.id) == 32
    row = dict(zip(FINDING_COLUMNS, finding_row(first), strict=True))
    assert row["workflow"] == "unattributed" and row["evidence"] == '{"turns":3}'
    assert Finding.model_validate(doc | {"finding_id": "f-1"}).id == "f-1"
    with pytest.raises(ValueError):
        Finding.model_validate(doc | {"confidence": 1.5})


@pytest.mark.parametrize("cost", [None, "0.25"])
def test_a_dead_letter_rebuilt_from_the_row_is_the_same_event(cost):
    from tokengov.core.decoding import parse_event
    from tokengov.sinks.clickhouse.rows import row_payload

    event = _event(
        team="search",
        parent_agent="planner",
        tool_name="t",
        latency_ms=5,
        context_window=128_000,
        components={"history": 30},
        cost_usd=cost,
    )
    source = "reported" if cost else "catalog"
    row = event_row(event, PricedCall(Decimal(cost or "0.1"), source))
    assert parse_event(orjson.loads(row_payload("token_events", row))) == event


def test_event_row_writes_the_usage_fields_and_the_price_version():
    event = _event(
        tokens={"input": 1000, "output": 10, "cache_write": 300, "cache_write_1h": 200},
        service_tier="flex",
    )
    values = event_row(event, PricedCall(Decimal("0.5"), "catalog"))
    row = dict(zip(TOKEN_EVENT_COLUMNS, values, strict=True))
    assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (300, 200)
    assert row["service_tier"] == "flex" and row["usage_missing"] is False
    assert row["price_version"] == ""  # a pricer without a catalog version


def test_a_call_without_usage_is_written_as_missing_usage_whatever_the_pricer_says():
    missing = _event(tokens={}, usage_missing=True)
    for priced in (PricedCall(Decimal("0.3"), "catalog"), PricedCall(Decimal(0), "unpriced")):
        row = dict(zip(TOKEN_EVENT_COLUMNS, event_row(missing, priced), strict=True))
        assert (row["cost_usd"], row["cost_source"]) == (Decimal(0), "missing_usage")
        assert row["usage_missing"] is True and row["input_tokens"] == 0
    # a cost the agent reported is kept (the flag still says the usage was missing)
    reported = _event(tokens={}, usage_missing=True, cost_usd="0.25")
    values = event_row(reported, PricedCall(Decimal("0.25"), "reported"))
    row = dict(zip(TOKEN_EVENT_COLUMNS, values, strict=True))
    assert (row["cost_usd"], row["cost_source"], row["usage_missing"]) == (
        Decimal("0.25"),
        "reported",
        True,
    )
