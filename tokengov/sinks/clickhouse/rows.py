"""Contract objects → ClickHouse rows (pure; no I/O).

One function per table, each returning a tuple in that table's column order
(``*_COLUMNS``). Values a column cannot hold raise :class:`RowError` naming the
field, so the writer dead-letters that one item with a clear reason instead of
failing the batch. Never prompt or completion text: the contract carries none
and no column here could hold it.

``Finding`` is the shape the token-debt detectors publish on
``tokengov.findings`` (documented in docs/clickhouse.md); readers are tolerant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

import orjson
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeInt

from tokengov.core.calls import Call, Done, call_args, from_model
from tokengov.core.contracts import (
    COMPONENT_NAMES,
    SCHEMA_VERSION,
    TOKEN_NAMES,
    UNATTRIBUTED,
    Alert,
    CallEvent,
    Decision,
    Outcome,
)
from tokengov.core.pricing import EXACT_FEMTO, ZERO, CostSource, PricedCall, cost_decimal

__all__ = [
    "ALERT_COLUMNS",
    "DECISION_COLUMNS",
    "FINDING_COLUMNS",
    "OUTCOME_COLUMNS",
    "TABLE_COLUMNS",
    "TOKEN_EVENT_COLUMNS",
    "Finding",
    "RowError",
    "alert_row",
    "call_columns",
    "call_row",
    "checked_cost",
    "costs_fit",
    "decision_row",
    "done_row",
    "event_row",
    "finding_row",
    "outcome_row",
    "row_payload",
]

UINT64_MAX: Final = 2**64 - 1
#: The contract's largest integer (every count of an event); the rollups sum them in Int256.
INT_MAX: Final = 2**63 - 1
#: The event time the contract and the tables' ``ts_sane`` accept: [TS_MIN, TS_MAX).
TS_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
TS_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)
# Decimal(38, 12): 26 digits before the point.
MONEY_MAX: Final = Decimal(10) ** 26

TOKEN_EVENT_COLUMNS: Final = (
    "event_id",
    "ts",
    "team",
    "workflow",
    "task_id",
    "agent",
    "parent_agent",
    "step",
    "provider",
    "model",
    "service_tier",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "system_tokens",
    "tool_definitions_tokens",
    "retrieved_tokens",
    "history_tokens",
    "tool_responses_tokens",
    "handoff_tokens",
    "memory_tokens",
    "attempt",
    "tool_calls",
    "tool_name",
    "latency_ms",
    "status",
    "cost_usd",
    "cost_source",
    "price_version",
    "usage_missing",
    "context_window",
    "schema_version",
)
OUTCOME_COLUMNS: Final = (
    "event_id",
    "ts",
    "team",
    "workflow",
    "task_id",
    "status",
    "quality",
    "schema_version",
)
ALERT_COLUMNS: Final = (
    "alert_id",
    "fingerprint",
    "kind",
    "severity",
    "status",
    "team",
    "workflow",
    "task_id",
    "labels",
    "summary",
    "evidence",
    "starts_at",
    "ends_at",
)
DECISION_COLUMNS: Final = (
    "scope",
    "key",
    "action",
    "reason",
    "fallback_model",
    "throttle_ms",
    "issued_at",
    "expires_at",
)
FINDING_COLUMNS: Final = (
    "finding_id",
    "area",
    "team",
    "workflow",
    "agent",
    "detector",
    "evidence",
    "estimated_waste_tokens_per_day",
    "estimated_waste_usd_per_day",
    "confidence",
    "better_pattern",
    "ts",
)


#: Each table the writer fills → its columns, in the order of the row tuples.
TABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "token_events": TOKEN_EVENT_COLUMNS,
    "task_outcomes": OUTCOME_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "decisions": DECISION_COLUMNS,
    "findings": FINDING_COLUMNS,
}


class RowError(ValueError):
    """A valid contract object holds a value its ClickHouse column cannot store."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}")


def _count(field: str, value: int) -> int:
    if value > INT_MAX:
        raise RowError(field, f"{value} is beyond the contract's limit 2**63-1 ({INT_MAX})")
    return value


def _ts(ts: datetime) -> datetime:
    if not TS_MIN <= ts < TS_MAX:
        raise RowError(
            "ts", f"{ts.isoformat()} is outside [2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"
        )
    return ts


#: The integer fields of a call, checked against INT_MAX when one of them is that large.
_CALL_INTS: Final = (
    "step",
    "attempt",
    "tool_calls",
    "latency_ms",
    "context_window",
)


def _u64(field: str, value: int) -> int:
    if value > UINT64_MAX:
        raise RowError(field, f"{value} does not fit the UInt64 column (max {UINT64_MAX})")
    return value


def _money(field: str, value: Decimal) -> Decimal:
    if value >= MONEY_MAX:
        raise RowError(field, f"{value} does not fit Decimal(38, 12)")
    return value


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def event_row(event: CallEvent, priced: PricedCall) -> tuple[Any, ...]:
    """The row of a contract model (tests, fixtures; the writer stores decoded calls with
    :func:`call_row`): every integer is checked against the contract's 2**63-1 here."""
    t = event.tokens
    counts = {f"tokens.{k}": v for k, v in t.model_dump().items()}
    counts |= {f"components.{k}": v for k, v in event.components.model_dump().items()}
    counts |= {k: getattr(event, k) or 0 for k in _CALL_INTS}
    if max(counts.values()) > INT_MAX:
        for name, value in counts.items():
            _count(name, value)
    call = from_model(event)
    assert isinstance(call, Call)
    return call_row(call, priced)


#: A call whose response carried no usage: costed 0, whatever the pricer says.
MISSING_USAGE: Final = "missing_usage"


def call_row(call: Call, priced: PricedCall) -> tuple[Any, ...]:
    """The row of a decoded call (:class:`tokengov.core.calls.Call`) priced by the pricer
    (its ``cost_usd``, ``source`` and, where it has one, ``price_version``): the counts are
    within the contract's 2**63-1 (the decoder's rule), so only the time and the cost are
    checked. A call without usage (``usage_missing``) is written with cost 0 and cost_source
    ``missing_usage``, whatever the pricer says — it is never a normally priced call — unless
    the agent reported its cost (then ``reported``; ``usage_missing`` still says it). The
    columns are :func:`call_columns`'."""
    if call.usage_missing and call.cost_femto is None:
        cost_usd, source, version = ZERO, MISSING_USAGE, ""
    else:
        cost_usd, source = priced.cost_usd, priced.source
        version = priced.price_version  # the catalog's release ('' for the other sources)
        _money("cost_usd", cost_usd)
    ts = call.ts
    if not TS_MIN <= ts < TS_MAX:
        _ts(ts)
    columns = call_columns(list(zip(call_args(call))), [ts], [cost_usd], [source], [version])
    return tuple(column[0] for column in columns)


def checked_cost(ts: datetime, amount: int | Decimal, source: CostSource) -> None:
    """What :func:`call_row` checks of a call at ``ts`` priced ``(amount, source)``
    (:meth:`tokengov.core.pricing.Pricer.cost`): its time, and a cost that fits the column;
    raises :class:`RowError` naming the field. The hot path's check: no Decimal for a cost
    in femto-USD in [0, EXACT_FEMTO) (below 10**13 USD)."""
    if not TS_MIN <= ts < TS_MAX:
        _ts(ts)
    if type(amount) is not int or not 0 <= amount < EXACT_FEMTO:
        _money("cost_usd", cost_decimal(amount, source))


def costs_fit(stamps: Sequence[datetime], amounts: Sequence[int | Decimal]) -> bool:
    """:func:`checked_cost`'s test for a whole column of calls at once (``stamps`` and
    ``amounts`` of the same calls, at least one): True when every one would pass it on its
    fast branch — every time in range, every cost an integer femto-USD in [0, EXACT_FEMTO).
    False: check them one by one with :func:`checked_cost`, which names what fails."""
    return (
        set(map(type, amounts)) == {int}
        and min(amounts) >= 0
        and max(amounts) < EXACT_FEMTO
        and min(stamps) >= TS_MIN
        and max(stamps) < TS_MAX
    )


def call_columns(
    calls: Sequence[Sequence[Any]],
    ts: list[Any],
    cost_usd: list[Any],
    cost_source: list[Any],
    price_version: list[Any],
) -> list[Sequence[Any]]:
    """token_events' columns (:data:`TOKEN_EVENT_COLUMNS` order) of ``calls``, given as
    columns in :data:`~tokengov.core.calls.CALL_ARGS` order (a column of the calls'
    :data:`~tokengov.core.calls.CallArgs` each, as
    :func:`~tokengov.core.decoding.decode_call_columns` gives them) — the one place that lays
    a call out as a row. The
    time and the cost come as columns of their own: datetimes and Decimal USD for rows
    (:func:`call_row`), or whatever a Native block is serialized from
    (:mod:`tokengov.sinks.clickhouse.encode`: milliseconds, scaled integers). Unchecked: see
    :func:`call_row` and :func:`checked_cost`."""
    (
        event_id,
        _ts,
        team,
        workflow,
        task_id,
        agent,
        parent_agent,
        step,
        model,
        input,
        output,
        cached_input,
        cache_write,
        reasoning,
        components,
        attempt,
        tool_calls,
        tool_name,
        status,
        _cost_femto,
        context_window,
        provider,
        latency_ms,
        cache_write_1h,
        service_tier,
        usage_missing,
    ) = calls
    parts = list(zip(*components, strict=True)) if components else [()] * len(COMPONENT_NAMES)
    return [
        event_id,
        ts,
        team,
        workflow,
        task_id,
        agent,
        parent_agent,
        step,
        provider,
        model,
        service_tier,
        input,
        output,
        cached_input,
        cache_write,
        cache_write_1h,
        reasoning,
        *parts,
        attempt,
        tool_calls,
        tool_name,
        latency_ms,
        status,
        cost_usd,
        cost_source,
        price_version,
        usage_missing,
        context_window,
        [SCHEMA_VERSION] * len(event_id),
    ]


def done_row(done: Done) -> tuple[Any, ...]:
    """The row of a decoded outcome (:class:`tokengov.core.calls.Done`)."""
    return (
        done.event_id,
        _ts(done.ts),
        done.team,
        done.workflow,
        done.task_id,
        done.status,
        done.quality,
        SCHEMA_VERSION,
    )


def outcome_row(outcome: Outcome) -> tuple[Any, ...]:
    done = from_model(outcome)
    assert isinstance(done, Done)
    return done_row(done)


def alert_row(alert: Alert) -> tuple[Any, ...]:
    return (
        alert.alert_id,
        alert.fingerprint,
        alert.kind,
        alert.severity,
        alert.status,
        alert.team,
        alert.workflow,
        alert.task_id,
        dict(alert.labels),
        alert.summary,
        _json(alert.evidence),
        alert.starts_at,
        alert.ends_at,
    )


def decision_row(decision: Decision) -> tuple[Any, ...]:
    return (
        decision.scope,
        decision.key,
        decision.action,
        decision.reason,
        decision.fallback_model,
        decision.throttle_ms,
        decision.issued_at,
        decision.expires_at,
    )


def _attribution(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return UNATTRIBUTED
    return value


def _evidence(value: Any) -> Any:
    """Evidence arrives as a JSON object or as a JSON string; it is stored as a string."""
    if isinstance(value, str):
        return value
    return _json(value)


class Finding(BaseModel):
    """A token-debt finding on ``tokengov.findings`` (one JSON object per message)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    finding_id: str | None = Field(
        default=None,
        description="Stable id; absent → derived from area, team, workflow, agent and ts.",
    )
    area: str = Field(min_length=1, max_length=256)
    team: Annotated[str, BeforeValidator(_attribution)] = UNATTRIBUTED
    workflow: Annotated[str, BeforeValidator(_attribution)] = UNATTRIBUTED
    agent: str | None = None
    detector: str = Field(default="", max_length=256, description="The detector's name.")
    evidence: Annotated[str, BeforeValidator(_evidence)] = "{}"
    estimated_waste_tokens_per_day: NonNegativeInt = 0
    estimated_waste_usd_per_day: Decimal = Field(
        default=Decimal(0), ge=0, max_digits=28, decimal_places=12, allow_inf_nan=False
    )
    confidence: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    better_pattern: str = ""
    ts: AwareDatetime

    @property
    def id(self) -> str:
        if self.finding_id:
            return self.finding_id
        parts = (self.detector, self.area, self.team, self.workflow, self.agent or "")
        basis = "|".join((*parts, self.ts.isoformat()))
        return hashlib.sha256(basis.encode()).hexdigest()[:32]


def finding_row(finding: Finding) -> tuple[Any, ...]:
    return (
        finding.id,
        finding.area,
        finding.team,
        finding.workflow,
        finding.agent,
        finding.detector,
        finding.evidence,
        _u64("estimated_waste_tokens_per_day", finding.estimated_waste_tokens_per_day),
        _money("estimated_waste_usd_per_day", finding.estimated_waste_usd_per_day),
        finding.confidence,
        finding.better_pattern,
        finding.ts,
    )


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def row_payload(table: str, row: tuple[Any, ...]) -> bytes:
    """The contract JSON of an event or outcome row (for a dead letter): what
    ``tokengov emit`` would accept again once the store takes it."""
    if table == "token_events":
        r = dict(zip(TOKEN_EVENT_COLUMNS, row, strict=True))
        doc: dict[str, Any] = {"kind": "call"}
        for key in (
            "schema_version",
            "event_id",
            "ts",
            "team",
            "workflow",
            "task_id",
            "agent",
            "parent_agent",
            "step",
            "provider",
            "model",
            "service_tier",
        ):
            doc[key] = _iso(r[key])
        doc["tokens"] = {k: r[f"{k}_tokens"] for k in TOKEN_NAMES}
        doc["components"] = {
            k: r[f"{k}_tokens"]
            for k in (
                "system",
                "tool_definitions",
                "retrieved",
                "history",
                "tool_responses",
                "handoff",
                "memory",
            )
        }
        for key in (
            "attempt",
            "tool_calls",
            "tool_name",
            "latency_ms",
            "status",
            "context_window",
            "usage_missing",
        ):
            doc[key] = r[key]
        doc["cost_usd"] = str(r["cost_usd"]) if r["cost_source"] == "reported" else None
    elif table == "task_outcomes":
        r = dict(zip(OUTCOME_COLUMNS, row, strict=True))
        doc = {"kind": "outcome", **{k: _iso(v) for k, v in r.items()}}
    else:
        raise ValueError(f"no contract payload for {table} rows")
    return orjson.dumps(doc)
