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
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from tokengov.core.errors import PolicyError

__all__ = [
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


class PagerDutyReceiver(_Strict):
    type: Literal["pagerduty"]
    routing_key_env: str
    url: str = "https://events.pagerduty.com/v2/enqueue"
    timeout: Duration = timedelta(seconds=5)


class LogReceiver(_Strict):
    type: Literal["log"]


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


class Route(_Strict):
    """A node of the Alertmanager-style routing tree. Unset timing and grouping inherit."""

    receiver: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _regexes_compile(self) -> Route:
        for name in ("group_interval", "repeat_interval"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{name}: must be greater than 0")
        if self.group_wait is not None and self.group_wait < timedelta(0):
            raise ValueError("group_wait: must not be negative")
        for label, pattern in self.match_re.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match_re.{label}: invalid regular expression: {exc}") from exc
        return self


class InhibitRule(_Strict):
    """Alertmanager's inhibit rule: while a firing alert matches ``source_*``, alerts that
    match ``target_*`` and carry the same values for the ``equal`` labels are muted.

    The router always applies its built-in budget rules as well (docs/alerting.md)."""

    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> InhibitRule:
        for side in ("source_match_re", "target_match_re"):
            for label, pattern in getattr(self, side).items():
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{side}.{label}: invalid regular expression: {exc}") from exc
        if not (self.source_match or self.source_match_re):
            raise ValueError("set source_match or source_match_re (which alerts inhibit)")
        if not (self.target_match or self.target_match_re):
            raise ValueError("set target_match or target_match_re (which alerts are muted)")
        return self


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
    receivers: dict[str, Receiver] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    discounts: list[Discount] = Field(default_factory=list)
    cost_profiles: dict[str, CostProfile] = Field(default_factory=dict)
    budgets: list[Budget] = Field(default_factory=list)
    routes: Route = Field(default_factory=lambda: Route(receiver="console"))
    debt: DebtPolicy = Field(default_factory=DebtPolicy)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
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
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            if part in {"webhook", "slack", "email", "pagerduty", "log"} and out.startswith(
                "receivers"
            ):
                continue  # the discriminator tag pydantic inserts into the location
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


def _line_index(text: str) -> dict[tuple[int | str, ...], int]:
    """Map each path in the YAML document to its 1-based line number."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[int | str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[int | str, ...]) -> None:
        lines[path] = node.start_mark.line + 1
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
    return lines


def _nearest_line(
    lines: dict[tuple[int | str, ...], int], loc: tuple[int | str, ...]
) -> int | None:
    path = tuple(p for p in loc if p not in {"webhook", "slack", "email", "pagerduty", "log"})
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


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse and validate a policy document. Raises :class:`PolicyError` with every problem."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(doc, dict):
        raise PolicyError(source, ["the policy must be a mapping with version: 1 at the top"])
    lines = _line_index(text)
    found: list[tuple[int | None, str]] = []
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            found.append(
                (_nearest_line(lines, loc), f"{_format_loc(loc)}: {_friendly(err['msg'])}")
            )
    for loc, message in _reference_problems(doc):
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
