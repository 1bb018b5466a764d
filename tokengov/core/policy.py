"""The policy file (DESIGN.md), loaded strictly.

Unknown keys are errors; receivers, teams and workflows referenced elsewhere
must be defined; limits must be positive. :func:`load_policy` reports every
problem at once, each with its path in the file and its line::

    policy.yaml:31: budgets[1].limit_usd: must be greater than 0
    policy.yaml:44: routes.routes[0].receiver: undefined receiver "pager"

Secrets never live in the file: receivers name environment variables
(``*_env``) that are read when a notification is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tokengov.core.errors import PolicyError
from tokengov.core.matchers import (
    Matcher,
    compile_regex,
    from_match,
    is_valid_label_name,
    parse_matchers,
    sort_matchers,
)
from tokengov.core.timeintervals import NamedTimeInterval

__all__ = [
    "GROUP_BY_ALL",
    "Budget",
    "CostProfile",
    "DebtPolicy",
    "Discount",
    "InhibitRule",
    "OtlpAttribution",
    "Policy",
    "Price",
    "PriceCatalog",
    "Receiver",
    "Route",
    "StreamsSettings",
    "TeamPolicy",
    "load_policy",
    "parse_duration",
    "parse_policy",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"10s"``, ``"1m"``, ``"4h"``, ``"500ms"``, ``"1d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 10s, 5m, 4h, 1d)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveMoney = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
NonNegativeMoney = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Action = Literal["proceed", "throttle", "fallback", "pause"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TeamPolicy(_Strict):
    owner: str = Field(min_length=1, description="Who owns the team's spend (an address).")
    receiver: str | None = Field(
        default=None, description="The team's own receiver, used when no route is more specific."
    )


class WebhookReceiver(_Strict):
    type: Literal["webhook"]
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = Field(default=None, description="HMAC-SHA256 signing secret.")
    timeout: Duration = timedelta(seconds=5)
    send_resolved: bool = True  # Alertmanager's default for webhook_configs

    @model_validator(mode="after")
    def _has_url(self) -> WebhookReceiver:
        if not (self.url or self.url_env):
            raise ValueError("set url or url_env")
        return self


class SlackReceiver(_Strict):
    type: Literal["slack"]
    url: str | None = None
    url_env: str | None = None
    channel: str | None = None
    timeout: Duration = timedelta(seconds=5)
    send_resolved: bool = False  # Alertmanager's default for slack_configs

    @model_validator(mode="after")
    def _has_url(self) -> SlackReceiver:
        if not (self.url or self.url_env):
            raise ValueError("set url or url_env")
        return self


class EmailReceiver(_Strict):
    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    sender: str = Field(default="tokengov@localhost", alias="from")
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    starttls: bool = True
    username_env: str | None = None
    password_env: str | None = None
    timeout: Duration = timedelta(seconds=10)
    send_resolved: bool = False  # Alertmanager's default for email_configs


class PagerDutyReceiver(_Strict):
    type: Literal["pagerduty"]
    routing_key_env: str
    url: str = "https://events.pagerduty.com/v2/enqueue"
    timeout: Duration = timedelta(seconds=5)
    send_resolved: bool = True  # Alertmanager's default for pagerduty_configs


class LogReceiver(_Strict):
    type: Literal["log"]
    send_resolved: bool = True


Receiver = Annotated[
    WebhookReceiver | SlackReceiver | EmailReceiver | PagerDutyReceiver | LogReceiver,
    Field(discriminator="type"),
]


class Price(_Strict):
    """USD per million tokens. Cache prices fall back to ``input`` (``cache_write_1h`` to
    ``cache_write``); ``reasoning`` to ``output``."""

    input: NonNegativeMoney
    output: NonNegativeMoney
    cached_input: NonNegativeMoney | None = None
    cache_write: NonNegativeMoney | None = None
    cache_write_1h: NonNegativeMoney | None = None
    reasoning: NonNegativeMoney | None = None


class Discount(_Strict):
    """A discount off the catalog's list prices (``discount: 0.15`` is 15 % off), for one
    provider, one model, or one model of one provider. Policy prices are taken as they are."""

    provider: str | None = None
    model: str | None = None
    discount: Annotated[Decimal, Field(ge=0, lt=1, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _scoped(self) -> Discount:
        if self.provider is None and self.model is None:
            raise ValueError("a discount names a provider, a model, or both")
        return self


#: An effective date in a price key: ``model@YYYY-MM-DD`` (nothing else: a Vertex model id
#: such as ``claude-sonnet-4@20250514`` is a model name, not a date).
_EFFECTIVE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def effective_date(key: str) -> tuple[str, date]:
    """The model and effective date of a ``prices:`` key (``date.min``: no date). Raises
    ValueError naming the key when the part after ``@`` is not a ``YYYY-MM-DD`` date."""
    model, at, day = key.rpartition("@") if "@" in key else (key, "", "")
    if not at:
        return key, date.min
    if not _EFFECTIVE.match(day):
        raise ValueError(
            f'"{key}": the effective date after "@" must be YYYY-MM-DD, not "{day}" '
            f'(a model id with "@" such as Vertex\'s needs its date too: "{key}@2025-01-01")'
        )
    try:
        return model, date.fromisoformat(day)
    except ValueError:
        raise ValueError(f'"{key}": effective date "{day}" is not a valid date') from None


class PriceCatalog:
    """The policy's prices (overrides and additions to the catalog) by model with effective
    dates (``model@YYYY-MM-DD`` keys in the file), and its discounts off the catalog."""

    def __init__(self, entries: Mapping[str, Price], discounts: Sequence[Discount] = ()) -> None:
        by_model: dict[str, list[tuple[date, Price]]] = {}
        for key, price in entries.items():
            model, effective = effective_date(key)
            by_model.setdefault(model, []).append((effective, price))
        self._by_model = {m: sorted(v, key=lambda e: e[0]) for m, v in by_model.items()}
        self.discounts = tuple(discounts)

    def __contains__(self, model: object) -> bool:
        return model in self._by_model

    def models(self) -> list[str]:
        return sorted(self._by_model)

    def lookup(self, model: str, at: datetime) -> Price | None:
        """The entry whose effective date is the latest not after ``at`` (UTC)."""
        entries = self._by_model.get(model)
        if not entries:
            return None
        day = at.astimezone(UTC).date()
        chosen: Price | None = None
        for effective, price in entries:
            if effective <= day:
                chosen = price
            else:
                break
        return chosen

    def discount(self, providers: Sequence[str], models: Sequence[str]) -> Discount | None:
        """The most specific discount for a call of any of ``providers`` (the event's, the
        catalog's id for it) and ``models`` (the call's model, the catalog's id): model and
        provider, then model, then provider."""
        best: tuple[int, Discount] | None = None
        for d in self.discounts:
            if d.provider is not None and d.provider not in providers:
                continue
            if d.model is not None and d.model not in models:
                continue
            rank = (2 if d.model is not None else 0) + (1 if d.provider is not None else 0)
            if best is None or rank > best[0]:
                best = (rank, d)
        return None if best is None else best[1]


class CostProfile(_Strict):
    """The design-time cost profile of one workflow (the task type)."""

    team: str
    expected_tokens_per_outcome: PositiveInt | None = None
    baseline_tokens: PositiveInt | None = None
    max_calls: PositiveInt | None = None
    max_context_tokens: PositiveInt | None = None
    max_tool_calls: PositiveInt | None = None
    max_hops: PositiveInt | None = None
    max_retries: PositiveInt | None = None
    max_tokens_per_task: PositiveInt | None = None
    max_same_tool_calls: PositiveInt | None = Field(
        default=None,
        description="Loop detection: the same tool called this often without progress.",
    )
    quality_bar: float | None = Field(default=None, ge=0, le=1)
    on_runaway: Action = "proceed"
    fallback_model: str | None = None
    throttle: Duration = timedelta(seconds=2)
    decision_ttl: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _fallback_named(self) -> CostProfile:
        if self.on_runaway == "fallback" and not self.fallback_model:
            raise ValueError("on_runaway is fallback: set fallback_model")
        return self


class DebtPolicy(_Strict):
    """The token-debt detectors (``tokengov/streams/debt``): horizon, cadence, alerting, thresholds.

    Every key has a default, so ``debt:`` may be left out of the file. The waste
    models these thresholds feed are documented in ``docs/debt.md``.
    """

    horizon: Duration = Field(
        default=timedelta(hours=1), description="Sliding window of event time the detectors judge."
    )
    min_span: Duration = Field(
        default=timedelta(minutes=10),
        description="Shortest span a per-day waste rate is extrapolated from.",
    )
    task_idle: Duration = Field(
        default=timedelta(minutes=10),
        description="A task with no call for this long (event time) is closed without an outcome.",
    )
    flush_interval: Duration = timedelta(seconds=60)
    reemit_interval: Duration = Field(
        default=timedelta(hours=1), description="A standing finding is republished this often."
    )
    min_calls: PositiveInt = Field(default=20, description="Calls a window needs to be judged.")
    min_waste_tokens_per_day: Annotated[int, Field(ge=0)] = 100_000
    alert_usd_per_day: NonNegativeMoney = Decimal(5)
    critical_usd_per_day: NonNegativeMoney = Decimal(100)
    # agent design
    tool_tokens_per_definition: PositiveInt = 150
    tool_definitions_min_share: Annotated[float, Field(gt=0, le=1)] = 0.2
    # context management
    history_budget_tokens: PositiveInt = 2000
    history_min_growth_per_turn: PositiveInt = 150
    history_max_cache_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    # orchestration
    handoff_budget_tokens: PositiveInt = 800
    handoff_min_context_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    # memory
    memory_budget_tokens: PositiveInt = 1000
    # retrieval
    retrieval_budget_tokens: PositiveInt = 4000
    retrieval_min_repeat_tokens: PositiveInt = 500
    # tool usage
    tool_response_tokens_per_output: PositiveInt = 10
    tool_response_min_tokens: PositiveInt = 500
    # workflow (retries)
    retry_bound: PositiveInt = Field(
        default=3, description="Retries allowed when the cost profile sets no max_retries."
    )
    retry_min_backoff: Duration = timedelta(milliseconds=500)
    retry_backoff_factor: Annotated[float, Field(ge=1)] = 1.5
    # system prompt growth
    system_prompt_days: PositiveInt = 14
    system_prompt_min_days: Annotated[int, Field(ge=2)] = 3
    system_prompt_min_growth: Annotated[float, Field(gt=0)] = 0.1


class Budget(_Strict):
    scope: Literal["team", "workflow"]
    name: str
    period: Literal["day", "month"]
    limit_usd: PositiveMoney | None = None
    limit_tokens: PositiveInt | None = None
    thresholds: list[Annotated[float, Field(gt=0, le=10)]] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0]
    )
    on_breach: Action = Field(default="proceed", description="Decision when 100% is crossed.")
    fallback_model: str | None = None
    throttle: Duration = Field(
        default=timedelta(seconds=2), description="For on_breach throttle: wait before each call."
    )
    forecast: bool = True

    @model_validator(mode="after")
    def _has_limit(self) -> Budget:
        if self.limit_usd is None and self.limit_tokens is None:
            raise ValueError("set limit_usd or limit_tokens")
        if self.on_breach == "fallback" and not self.fallback_model:
            raise ValueError("on_breach is fallback: set fallback_model")
        return self

    @property
    def budget_id(self) -> str:
        return f"{self.scope}:{self.name}:{self.period}"


#: ``group_by: ['...']``: group by every label (each distinct alert is its own group).
GROUP_BY_ALL = "..."


def _label_name(name: str) -> str:
    if not is_valid_label_name(name):
        raise ValueError(f'invalid label name "{name}" (use letters, digits and _)')
    return name


def _group_by_label(name: str) -> str:
    return name if name == GROUP_BY_ALL else _label_name(name)


def _regex(pattern: str) -> str:
    compile_regex(pattern)
    return pattern


def _matcher_line(line: str) -> str:
    parse_matchers(line)
    return line


LabelName = Annotated[str, AfterValidator(_label_name)]
#: A ``match_re`` value: RE2, anchored as Alertmanager anchors it.
Regex = Annotated[str, AfterValidator(_regex)]
#: A ``matchers`` line: one or more Alertmanager matchers (tokengov.core.matchers).
MatcherLine = Annotated[str, AfterValidator(_matcher_line)]


def _matchers_from(
    match: Mapping[str, str], match_re: Mapping[str, str], lines: Sequence[str]
) -> tuple[Matcher, ...]:
    """``match`` + ``match_re`` + ``matchers`` as one tuple in Alertmanager's order, as
    ``dispatch.NewRoute`` builds a route's matchers (and an inhibit rule's side)."""
    found = from_match(match, match_re)
    for line in lines:
        found.extend(parse_matchers(line))
    return sort_matchers(found)


class Route(_Strict):
    """A node of the Alertmanager-style routing tree. Unset timing and grouping inherit.

    A node matches when all its ``match`` (equality), ``match_re`` (anchored RE2 regex) and
    ``matchers`` (Alertmanager matcher strings: ``severity=~"critical|warning"``) hold."""

    receiver: str | None = None
    match: dict[LabelName, str] = Field(default_factory=dict)
    match_re: dict[LabelName, Regex] = Field(default_factory=dict)
    matchers: list[MatcherLine] = Field(
        default_factory=list,
        description='Alertmanager matchers: team="search", severity=~"critical|warning", '
        "kind!=loop; a line may hold several, comma-separated.",
    )
    group_by: list[Annotated[str, AfterValidator(_group_by_label)]] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(
        default_factory=list, description="No notification while one of these contains now."
    )
    active_time_intervals: list[str] = Field(
        default_factory=list, description="Notifications only while one of these contains now."
    )

    _parsed: tuple[Matcher, ...] = PrivateAttr(default=())

    @field_validator("group_by")
    @classmethod
    def _group_by_once(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        seen: set[str] = set()
        for label in labels:
            if label in seen:
                raise ValueError(f'duplicated label "{label}"')
            seen.add(label)
        if GROUP_BY_ALL in seen and len(seen) > 1:
            raise ValueError("cannot have '...' (group by every label) and other labels")
        return labels

    @model_validator(mode="after")
    def _valid(self) -> Route:
        for name in ("group_interval", "repeat_interval"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{name}: must be greater than 0")
        if self.group_wait is not None and self.group_wait < timedelta(0):
            raise ValueError("group_wait: must not be negative")
        self._parsed = _matchers_from(self.match, self.match_re, self.matchers)
        return self

    @property
    def parsed_matchers(self) -> tuple[Matcher, ...]:
        """``match``, ``match_re`` and ``matchers`` as matchers, in Alertmanager's order."""
        return self._parsed


class InhibitRule(_Strict):
    """Alertmanager's inhibit rule: while a firing alert matches the source side
    (``source_match``, ``source_match_re``, ``source_matchers``), alerts that match the
    target side and carry the same values for the ``equal`` labels are muted.

    The router always applies its built-in budget rules as well (docs/alerting.md)."""

    name: str | None = Field(
        default=None, description="Shown by test-route and in logs (default: its path)."
    )
    source_match: dict[LabelName, str] = Field(default_factory=dict)
    source_match_re: dict[LabelName, Regex] = Field(default_factory=dict)
    source_matchers: list[MatcherLine] = Field(default_factory=list)
    target_match: dict[LabelName, str] = Field(default_factory=dict)
    target_match_re: dict[LabelName, Regex] = Field(default_factory=dict)
    target_matchers: list[MatcherLine] = Field(default_factory=list)
    equal: list[LabelName] = Field(default_factory=list)

    _source: tuple[Matcher, ...] = PrivateAttr(default=())
    _target: tuple[Matcher, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _valid(self) -> InhibitRule:
        self._source = _matchers_from(self.source_match, self.source_match_re, self.source_matchers)
        self._target = _matchers_from(self.target_match, self.target_match_re, self.target_matchers)
        if not self._source:
            raise ValueError(
                "set source_match, source_match_re or source_matchers (which alerts inhibit)"
            )
        if not self._target:
            raise ValueError(
                "set target_match, target_match_re or target_matchers (which alerts are muted)"
            )
        return self

    @property
    def source(self) -> tuple[Matcher, ...]:
        """The source side's matchers (all three keys), in Alertmanager's order."""
        return self._source

    @property
    def target(self) -> tuple[Matcher, ...]:
        """The target side's matchers (all three keys), in Alertmanager's order."""
        return self._target


class StreamsSettings(_Strict):
    """Knobs of the stream processors (``streams:`` in the file); every key has a default."""

    late_grace: Duration = Field(
        default=timedelta(seconds=30),
        description="Windows, budgets and unit metrics still count events this late (event time).",
    )
    window_idle_close: Duration = Field(
        default=timedelta(seconds=30),
        description="Publish a window that no new data has touched for this long (processing "
        "time), even when event time has not moved past its end plus the grace.",
    )
    retry_storm_min_retries: PositiveInt = Field(
        default=3, description="Retries of one step before the backoff check applies."
    )
    retry_backoff_growth: float = Field(
        default=1.3,
        gt=1,
        description="Gaps between attempts must grow this much per retry to count as backoff.",
    )
    default_max_same_tool_calls: PositiveInt = Field(
        default=6, description="Loop limit for profiles without max_same_tool_calls."
    )
    min_attribution_coverage: float | None = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Alert when the attributed share of an hour's tokens is below (null: never).",
    )
    forecast_min_elapsed: Duration = Field(
        default=timedelta(minutes=15),
        description="Forecast a budget only after this much of its period has elapsed.",
    )
    forecast_window: Duration = Field(
        default=timedelta(hours=1),
        description="The burn rate is measured over this trailing window.",
    )
    unit_metrics_interval: Duration = Field(
        default=timedelta(seconds=10),
        description="How often the unit metrics of each workflow and day are republished.",
    )
    task_idle_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="Per-task state is dropped after this long without an event (its event ids "
        "move to the global dedup set).",
    )
    dedup_horizon: Duration = Field(
        default=timedelta(hours=1),
        description="How long event ids of dropped tasks are remembered for deduplication.",
    )
    alert_ledger_lookback: Duration = Field(
        default=timedelta(minutes=15),
        description="On taking over partitions, alerts published this recently are read back so "
        "that a replay after a crash never repeats one.",
    )
    max_clock_ahead: Duration = Field(
        default=timedelta(minutes=5),
        description="An event stamped further ahead of the worker's clock is kept but governed at "
        "processing time (budgets, windows, watermarks), counted and alerted (clock_skew).",
    )
    max_clock_behind: Duration = Field(
        default=timedelta(days=1),
        description="An event stamped further behind the worker's clock is late: kept and priced "
        "into its task, but not counted into windows, budgets or unit metrics; counted and "
        "alerted (clock_skew).",
    )
    max_message_attempts: PositiveInt = Field(
        default=3,
        description="A message whose handling failed (or killed the worker) this many times is "
        "skipped: dead-lettered whole, with an ERROR log naming topic, partition and offset.",
    )

    @model_validator(mode="after")
    def _clock_bounds_positive(self) -> StreamsSettings:
        for name in ("max_clock_ahead", "max_clock_behind"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name}: must be positive")
        return self


def _receiver_name(name: str) -> str:
    if not name:
        raise ValueError("a receiver needs a name")
    return name


class OtlpAttribution(_Strict):
    """How the OTLP receiver attributes a GenAI span (``otlp:`` in the file; docs/otlp.md).

    Each list names attributes tried in order, on the span first and then on its resource;
    the first one set wins."""

    task_id: list[str] = Field(
        default_factory=lambda: ["gen_ai.conversation.id"],
        description="Attributes that give the task id; none set: the span's trace id.",
    )
    task_from_trace: bool = Field(
        default=True,
        description="No task attribute set: the trace id (hex) is the task id (false: the "
        "span is its own task).",
    )
    workflow: list[str] = Field(
        default_factory=lambda: ["tokengov.workflow", "gen_ai.workflow.name", "service.name"],
        description="Attributes that give the workflow.",
    )
    team: list[str] = Field(
        default_factory=lambda: ["tokengov.team"],
        description="Attributes that give the team.",
    )
    service_teams: dict[str, str] = Field(
        default_factory=dict,
        description="A team per service.name, when no team attribute is set; then the "
        "workflow's cost profile's team; else unattributed.",
    )

    @model_validator(mode="after")
    def _names(self) -> OtlpAttribution:
        for name in ("task_id", "workflow", "team"):
            if any(not key.strip() for key in getattr(self, name)):
                raise ValueError(f"{name}: attribute names must not be empty")
        return self


class Policy(_Strict):
    version: Literal[1]
    teams: dict[str, TeamPolicy] = Field(default_factory=dict)
    receivers: dict[Annotated[str, AfterValidator(_receiver_name)], Receiver] = Field(
        default_factory=dict
    )
    prices: dict[str, Price] = Field(default_factory=dict)
    discounts: list[Discount] = Field(default_factory=list)
    cost_profiles: dict[str, CostProfile] = Field(default_factory=dict)
    budgets: list[Budget] = Field(default_factory=list)
    routes: Route = Field(default_factory=lambda: Route(receiver="console"))
    debt: DebtPolicy = Field(default_factory=DebtPolicy)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    otlp: OtlpAttribution = Field(default_factory=OtlpAttribution)

    streams: StreamsSettings = Field(default_factory=StreamsSettings)

    @property
    def catalog(self) -> PriceCatalog:
        cached: PriceCatalog | None = self.__dict__.get("_catalog")
        if cached is None:
            cached = PriceCatalog(self.prices, self.discounts)
            self.__dict__["_catalog"] = cached
        return cached

    def profile(self, workflow: str) -> CostProfile | None:
        return self.cost_profiles.get(workflow)

    def owner_team(self, workflow: str) -> str | None:
        profile = self.cost_profiles.get(workflow)
        return profile.team if profile else None


# ---------------------------------------------------------------- loading


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue  # pydantic's marker for an error in a mapping's key
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            if part in {"webhook", "slack", "email", "pagerduty", "log"} and out.startswith(
                "receivers"
            ):
                continue  # the discriminator tag pydantic inserts into the location
            part = part if part != "" else '""'
            out += f".{part}" if out else str(part)
    return out


_MESSAGE_REWRITES = (
    ("Input should be ", "must be "),
    ("Extra inputs are not permitted", "unknown key (not allowed here)"),
    ("Field required", "required"),
    ("Value error, ", ""),
)


def _friendly(message: str) -> str:
    for old, new in _MESSAGE_REWRITES:
        message = message.replace(old, new)
    return message


_Path = tuple[int | str, ...]


class _PolicyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that records every duplicate mapping key (YAML would keep the
    last one silently: two receivers with one name, two ``match`` keys in a route…)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        #: (the mapping, the key, the line of its first occurrence, the line of the repeat)
        self.duplicates: list[tuple[yaml.MappingNode, Any, int, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first:
                self.duplicates.append((node, key, first[key], line))
            else:
                first[key] = line
        return super().construct_mapping(node, deep=deep)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _load(text: str) -> tuple[Any, dict[_Path, int], list[tuple[_Path, str]]]:
    """The document, the 1-based line of each path in it, and its duplicate keys (the
    path of the key and a message). Raises yaml.YAMLError."""
    loader = _PolicyLoader(text)
    try:
        root = loader.get_single_node()
        doc = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    lines: dict[_Path, int] = {}
    paths: dict[int, _Path] = {}

    def walk(node: yaml.Node, path: _Path) -> None:
        lines[path] = node.start_mark.line + 1
        paths[id(node)] = path
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    duplicates = [
        (
            (*paths.get(id(node), ()), str(key)),
            f'duplicate key "{key}" (first at line {first}, again at line {again}; '
            "YAML would keep only the last)",
        )
        for node, key, first, again in loader.duplicates
    ]
    return doc, lines, duplicates


def _nearest_line(
    lines: dict[tuple[int | str, ...], int], loc: tuple[int | str, ...]
) -> int | None:
    path = tuple(
        p for p in loc if p not in {"webhook", "slack", "email", "pagerduty", "log", "[key]"}
    )
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def _reference_problems(doc: Mapping[str, Any]) -> Iterator[tuple[tuple[int | str, ...], str]]:
    """Cross-references, checked on the raw document so they are reported with shape errors."""
    teams = doc.get("teams") if isinstance(doc.get("teams"), dict) else {}
    receivers = doc.get("receivers") if isinstance(doc.get("receivers"), dict) else {}
    profiles = doc.get("cost_profiles") if isinstance(doc.get("cost_profiles"), dict) else {}
    assert isinstance(teams, dict) and isinstance(receivers, dict) and isinstance(profiles, dict)

    for name, team in teams.items():
        if isinstance(team, dict) and team.get("receiver") and team["receiver"] not in receivers:
            yield ("teams", name, "receiver"), f'undefined receiver "{team["receiver"]}"'
    for name, profile in profiles.items():
        if isinstance(profile, dict) and profile.get("team") and profile["team"] not in teams:
            yield ("cost_profiles", name, "team"), f'undefined team "{profile["team"]}"'
    otlp = doc.get("otlp")
    service_teams = otlp.get("service_teams") if isinstance(otlp, dict) else None
    for service, team in (service_teams if isinstance(service_teams, dict) else {}).items():
        if team not in teams:
            yield ("otlp", "service_teams", service), f'undefined team "{team}"'
    budgets = doc.get("budgets")
    for i, budget in enumerate(budgets if isinstance(budgets, list) else []):
        if not isinstance(budget, dict):
            continue
        scope, name = budget.get("scope"), budget.get("name")
        if scope == "team" and name not in teams:
            yield ("budgets", i, "name"), f'undefined team "{name}"'
        if scope == "workflow" and name not in profiles:
            yield ("budgets", i, "name"), f'undefined workflow "{name}" (no cost profile)'

    def walk(
        route: Any, path: tuple[int | str, ...]
    ) -> Iterator[tuple[tuple[int | str, ...], str]]:
        if not isinstance(route, dict):
            return
        receiver = route.get("receiver")
        if receiver is not None and receiver not in receivers:
            yield (*path, "receiver"), f'undefined receiver "{receiver}" used in route'
        match = route.get("match")
        if isinstance(match, dict):
            if "team" in match and match["team"] not in teams:
                yield (*path, "match", "team"), f'undefined team "{match["team"]}"'
            if "workflow" in match and match["workflow"] not in profiles:
                yield (*path, "match", "workflow"), f'undefined workflow "{match["workflow"]}"'
        children = route.get("routes")
        for j, child in enumerate(children if isinstance(children, list) else []):
            yield from walk(child, (*path, "routes", j))

    routes = doc.get("routes")
    if isinstance(routes, dict):
        if not routes.get("receiver"):
            yield ("routes", "receiver"), "the root route needs a default receiver"
        yield from walk(routes, ("routes",))
    prices = doc.get("prices")
    for key in prices if isinstance(prices, dict) else {}:
        try:
            effective_date(str(key))
        except ValueError as exc:
            yield ("prices", key), str(exc)


def _time_interval_problems(doc: Mapping[str, Any]) -> Iterator[tuple[tuple[int | str, ...], str]]:
    """Alertmanager's checks: unique names, routes name defined intervals, none on the root."""
    names: set[str] = set()
    intervals = doc.get("time_intervals")
    for i, interval in enumerate(intervals if isinstance(intervals, list) else []):
        name = interval.get("name") if isinstance(interval, dict) else None
        if isinstance(name, str) and name in names:
            yield ("time_intervals", i, "name"), f'time interval "{name}" is not unique'
        elif isinstance(name, str):
            names.add(name)

    def walk(
        route: Any, path: tuple[int | str, ...]
    ) -> Iterator[tuple[tuple[int | str, ...], str]]:
        if not isinstance(route, dict):
            return
        for key in ("mute_time_intervals", "active_time_intervals"):
            used = route.get(key)
            used = used if isinstance(used, list) else []
            if path == ("routes",) and used:
                kind = key.partition("_")[0]  # mute | active
                yield (*path, key), f"root route must not have any {kind} time intervals"
            for j, name in enumerate(used):
                if isinstance(name, str) and name not in names:
                    yield (*path, key, j), f'undefined time interval "{name}" used in route'
        children = route.get("routes")
        for j, child in enumerate(children if isinstance(children, list) else []):
            yield from walk(child, (*path, "routes", j))

    yield from walk(doc.get("routes"), ("routes",))


def _root_route_problems(doc: Mapping[str, Any]) -> Iterator[tuple[_Path, str]]:
    """What Alertmanager refuses on the root route (config.go, ``Config.UnmarshalYAML``)."""
    routes = doc.get("routes")
    if not isinstance(routes, dict):
        return
    for key in ("match", "match_re", "matchers"):
        if routes.get(key):
            yield (
                ("routes", key),
                "the root route must not have any matchers: it is where every alert "
                "starts, and an alert it did not match would reach no receiver at all",
            )
    if routes.get("continue") is True:
        yield ("routes", "continue"), "the root route cannot have continue"


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse and validate a policy document. Raises :class:`PolicyError` with every problem."""
    try:
        doc, lines, duplicates = _load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(doc, dict):
        raise PolicyError(source, ["the policy must be a mapping with version: 1 at the top"])
    found: list[tuple[int | None, str]] = []
    for loc, message in duplicates:
        found.append((_nearest_line(lines, loc), f"{_format_loc(loc)}: {message}"))
    for loc, message in _root_route_problems(doc):
        found.append((_nearest_line(lines, loc), f"{_format_loc(loc)}: {message}"))
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            found.append(
                (_nearest_line(lines, loc), f"{_format_loc(loc)}: {_friendly(err['msg'])}")
            )
    for loc, message in [*_reference_problems(doc), *_time_interval_problems(doc)]:
        found.append((_nearest_line(lines, loc), f"{_format_loc(loc)}: {message}"))
    if found or policy is None:
        problems = [f"line {line}: {msg}" if line else msg for line, msg in found]
        raise PolicyError(source, problems)
    return policy


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    return parse_policy(text, source=str(path))
