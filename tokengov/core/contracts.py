"""The wire contract of DESIGN.md as pydantic v2 models: one module, imported everywhere.

Readers of the wire are tolerant: unknown fields are ignored and never stored.
What cannot be trusted (negative or impossible counts, unknown ``kind``,
unparseable or naive timestamps, oversized or control-character-laden strings)
fails validation with a message that names the field; callers dead-letter it.

A Kafka message on ``tokengov.events`` is one event (a JSON object) or a batch
envelope (a JSON array of events); :mod:`tokengov.core.decoding` turns one into
calls and outcomes (keeping the valid events of an envelope when some of its
items are bad), and is the only place that does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

__all__ = [
    "MAX_COUNT",
    "MAX_ID_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_BYTES",
    "MAX_NAME_CHARS",
    "SCHEMA_VERSION",
    "TOKEN_NAMES",
    "TS_MAX",
    "TS_MIN",
    "UNATTRIBUTED",
    "Alert",
    "AlertKind",
    "CallEvent",
    "Components",
    "Decision",
    "Event",
    "Outcome",
    "TokenCounts",
    "describe_validation_error",
    "encode_events",
    "event_adapter",
    "new_event_id",
    "utcnow",
]

SCHEMA_VERSION: Final = 1
UNATTRIBUTED: Final = "unattributed"
MAX_NAME_CHARS: Final = 256
MAX_ID_CHARS: Final = 128

# The limits of the wire (docs/streams.md, "Limits"); every layer holds the same ones.
#: The largest message on ``tokengov.events`` (one event or an envelope): 1 MiB.
MAX_MESSAGE_BYTES: Final = 1_048_576
#: JSON nesting of one event: the event object is level 1 (``tokens`` level 2).
MAX_JSON_DEPTH: Final = 64
#: The largest value of every integer field of an event (a signed 64-bit integer).
MAX_COUNT: Final = 2**63 - 1
#: Event time: ``TS_MIN <= ts < TS_MAX``.
TS_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
TS_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)

#: Printable text only: no ASCII control characters (C0 and DEL) anywhere.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS, pattern=_PRINTABLE)
]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=_PRINTABLE)
]


def _attribution(value: Any) -> Any:
    """Missing attribution is not an error: the spend is kept under ``unattributed``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return UNATTRIBUTED
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _event_time(value: datetime) -> datetime:
    """In UTC, within ``[TS_MIN, TS_MAX)`` (comparing aware datetimes cannot overflow;
    converting year 1 or 9999 with an offset can)."""
    if not TS_MIN <= value < TS_MAX:
        raise ValueError(
            f"must be from {TS_MIN:%Y-%m-%dT%H:%M:%SZ} up to (not including) "
            f"{TS_MAX:%Y-%m-%dT%H:%M:%SZ}, got {value.isoformat()}"
        )
    return value.astimezone(UTC)


Attribution = Annotated[Name, BeforeValidator(_attribution)]
UtcTimestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]
_TS_RULE: Final = (
    "With a UTC offset; 2000-01-01T00:00:00Z <= ts < 2100-01-01T00:00:00Z (outside: the event "
    "is dead-lettered)."
)
#: The time of an event: aware, and within the range every layer can hold.
EventTime = Annotated[AwareDatetime, AfterValidator(_event_time)]
#: An integer field of an event: 0 ≤ n ≤ 2**63 − 1.
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_event_id() -> str:
    return str(uuid.uuid4())


class _Wire(BaseModel):
    """Tolerant reader of the wire: unknown fields are ignored, models are frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class TokenCounts(_Wire):
    """Token counts of one call. ``cached_input`` and ``cache_write`` are parts of ``input``;
    ``cache_write_1h`` is the part of ``cache_write`` written with a 1-hour TTL (Anthropic's
    ``ephemeral_1h_input_tokens``; the rest of ``cache_write`` is 5-minute writes);
    ``reasoning`` is part of ``output`` (DESIGN.md)."""

    input: Count = 0
    output: Count = 0
    cached_input: Count = 0
    cache_write: Count = 0
    cache_write_1h: Count = Field(
        default=0, description="The part of cache_write written with a 1-hour TTL."
    )
    reasoning: Count = 0

    @model_validator(mode="after")
    def _parts_within_totals(self) -> TokenCounts:
        if self.cached_input + self.cache_write > self.input:
            raise ValueError(
                f"cached_input ({self.cached_input}) + cache_write ({self.cache_write}) "
                f"exceeds input ({self.input}); both are parts of input"
            )
        if self.cache_write_1h > self.cache_write:
            raise ValueError(
                f"cache_write_1h ({self.cache_write_1h}) exceeds cache_write "
                f"({self.cache_write}); 1-hour writes are part of cache_write"
            )
        if self.reasoning > self.output:
            raise ValueError(
                f"reasoning ({self.reasoning}) exceeds output ({self.output}); "
                "reasoning is part of output"
            )
        return self

    @property
    def total(self) -> int:
        return self.input + self.output


#: The token counts of a call, in :class:`TokenCounts` order (the wire's ``tokens`` keys).
TOKEN_NAMES: Final = tuple(TokenCounts.model_fields)

COMPONENT_NAMES: Final = (
    "system",
    "tool_definitions",
    "retrieved",
    "history",
    "tool_responses",
    "handoff",
    "memory",
)


class Components(_Wire):
    """Where the input tokens came from. May be partial; absent components are 0."""

    system: Count = 0
    tool_definitions: Count = 0
    retrieved: Count = 0
    history: Count = 0
    tool_responses: Count = 0
    handoff: Count = 0
    memory: Count = 0

    @property
    def total(self) -> int:
        return (
            self.system
            + self.tool_definitions
            + self.retrieved
            + self.history
            + self.tool_responses
            + self.handoff
            + self.memory
        )


class CallEvent(_Wire):
    """One model call. Never prompt or completion text: counts and names only."""

    kind: Literal["call"] = "call"
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier = Field(description="The idempotency key: the same id counts once.")
    ts: EventTime = Field(description=_TS_RULE)
    team: Attribution = UNATTRIBUTED
    workflow: Attribution = UNATTRIBUTED
    task_id: Identifier | None = Field(
        default=None, description="Absent: the event is its own task (task_id = event_id)."
    )
    agent: Name = "agent"
    parent_agent: Name | None = None
    step: Count = 0
    provider: Name = "unknown"
    model: Name
    tokens: TokenCounts = Field(default_factory=TokenCounts)
    components: Components = Field(default_factory=Components)
    attempt: int = Field(default=1, ge=1, le=MAX_COUNT)
    tool_calls: Count = 0
    tool_name: Name | None = None
    latency_ms: Count | None = None
    status: Literal["ok", "error", "timeout"] = "ok"
    cost_usd: Decimal | None = Field(
        default=None, ge=0, max_digits=28, decimal_places=12, allow_inf_nan=False
    )
    context_window: Count | None = Field(
        default=None,
        description="The model's context window in tokens, where the agent reports it "
        "(context utilization = input / context_window).",
    )
    service_tier: Name | None = Field(
        default=None,
        description="The provider's service tier of the call, as the response reports it "
        "(default, flex, priority, batch, scale, ...).",
    )
    usage_missing: bool = Field(
        default=False,
        description="The response carried no usage (a stream without usage, an SDK object "
        "without usage): the token counts are unknown (0 here) and the call is never priced "
        "as a normal one (cost_source missing_usage).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CallEvent:
        if self.usage_missing and (self.tokens.input or self.tokens.output):
            raise ValueError(
                "usage_missing: the call carries no usage, so tokens.input and tokens.output "
                f"must be 0 (got {self.tokens.input} and {self.tokens.output})"
            )
        if self.components.total > self.tokens.input:
            raise ValueError(
                f"components: sum to {self.components.total}, more than tokens.input "
                f"({self.tokens.input}); components break input down"
            )
        if self.task_id is None:
            object.__setattr__(self, "task_id", self.event_id)
        return self

    @property
    def task(self) -> str:
        """The task id, never None (an event without one is its own task)."""
        return self.task_id or self.event_id

    @property
    def is_retry(self) -> bool:
        return self.attempt > 1

    @property
    def is_handoff(self) -> bool:
        return self.parent_agent is not None


class Outcome(_Wire):
    """How a task ended: one per task."""

    kind: Literal["outcome"] = "outcome"
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier = Field(description="The idempotency key: the same id counts once.")
    ts: EventTime = Field(description=_TS_RULE)
    team: Attribution = UNATTRIBUTED
    workflow: Attribution = UNATTRIBUTED
    task_id: Identifier
    status: Literal["success", "failure", "abandoned"]
    quality: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)

    def met_quality_bar(self, quality_bar: float | None) -> bool:
        """Success and (when a bar is set) ``quality`` at or above it."""
        if self.status != "success":
            return False
        if quality_bar is None:
            return True
        return self.quality is not None and self.quality >= quality_bar


Event = Annotated[CallEvent | Outcome, Field(discriminator="kind")]
event_adapter: TypeAdapter[CallEvent | Outcome] = TypeAdapter(Event)

AlertKind = Literal[
    "runaway",
    "retry_storm",
    "loop",
    "budget_threshold",
    "budget_forecast",
    "missing_cost_profile",
    "unpriced_model",
    "missing_usage",
    "attribution_coverage",
    "debt_finding",
    "receiver_failing",
    "clock_skew",
]


class Alert(_Wire):
    """An alert on ``tokengov.alerts`` (key = team), in ClickHouse and in every notification."""

    alert_id: str = Field(default_factory=new_event_id)
    fingerprint: str
    kind: AlertKind
    severity: Literal["info", "warning", "critical"]
    status: Literal["firing", "resolved"] = "firing"
    team: Attribution = UNATTRIBUTED
    workflow: str | None = None
    task_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    starts_at: UtcTimestamp = Field(default_factory=utcnow)
    ends_at: UtcTimestamp | None = None

    def label_set(self) -> dict[str, str]:
        """Every label routing can match on: the alert's own fields plus ``labels``."""
        base = {"kind": self.kind, "severity": self.severity, "team": self.team}
        if self.workflow:
            base["workflow"] = self.workflow
        if self.task_id:
            base["task_id"] = self.task_id
        return {**base, **self.labels}


class Decision(_Wire):
    """A governance decision on ``tokengov.decisions`` (compacted, key = ``scope:key``)."""

    scope: Literal["task", "workflow", "team"]
    key: Name
    action: Literal["proceed", "throttle", "fallback", "pause"]
    reason: str
    fallback_model: str | None = None
    throttle_ms: NonNegativeInt | None = Field(
        default=None, description="For throttle: how long the agent waits before each call."
    )
    issued_at: UtcTimestamp = Field(default_factory=utcnow)
    expires_at: UtcTimestamp | None = None

    @property
    def topic_key(self) -> str:
        return f"{self.scope}:{self.key}"

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


_FRIENDLY = {
    "string_pattern_mismatch": "must not contain control characters",
    "timezone_aware": "timestamp must carry a UTC offset (e.g. 2026-11-29T05:00:00Z)",
    "missing": "required",
    "int_parsing_size": f"an integer beyond 64 bits (the largest allowed is {MAX_COUNT})",
}


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """One readable line per problem, each naming the field: ``tokens.input: must be ≥ 0``."""
    parts: list[str] = []
    for item in error.errors(include_url=False):
        loc = [p for p in item["loc"] if p not in ("call", "outcome")]
        path = ".".join(str(p) for p in loc)
        message = _FRIENDLY.get(item["type"]) or item["msg"].removeprefix("Value error, ")
        if path:
            parts.append(f"{prefix}{path}: {message}")
        else:  # a whole-event check: its message names the fields itself
            parts.append(f"{prefix}{message}")
    return "; ".join(parts)


def encode_events(events: Iterable[CallEvent | Outcome]) -> bytes:
    """Encode one event as an object, several as a batch envelope (a JSON array)."""
    docs = [e.model_dump(mode="json", exclude_none=False) for e in events]
    return orjson.dumps(docs[0] if len(docs) == 1 else docs)
