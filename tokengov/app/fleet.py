"""A synthetic agent fleet: several teams and workflows with realistic token shapes,
emitting through the real SDK, plus the scripted incidents the demo shows.

Token shapes: a system prompt and tool definitions on every call (mostly served
from the prompt cache), retrieval, a conversation history that grows with the
turn (bounded by summarisation in well-designed workflows), tool responses,
handoffs between agents, reasoning tokens on reasoning models.

Scripted incidents (each recorded with the moment it started, so the demo can
say how fast tokengov caught it):

* ``runaway_loop`` — a support-triage agent stuck calling the same tool; the
  policy pauses it and the agent, which asks ``task.before_call()`` before each
  call, stops when the guard raises ``TaskPaused``;
* ``retry_storm`` — retries of one step with no backoff, past ``max_retries``;
* ``chatty_handoffs`` — handoffs that resend the sender's whole context;
* ``full_history`` — a conversation that resends its whole history every turn;
* ``budget_burn`` — the research team crossing 50 %, 80 % and 100 % of its
  daily budget;
* ``missing_profile`` — traffic of a workflow with no cost profile;
* ``unpriced_model`` — calls to a model missing from the price catalog.

Everything but timestamps and event ids is a function of the seed.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tokengov.core.contracts import TokenCounts, utcnow
from tokengov.core.policy import Policy
from tokengov.core.pricing import price_tokens
from tokengov.producers.emitter import TaskContext, TokenEmitter

__all__ = ["INCIDENTS", "Fleet", "FleetReport", "Incident"]

log = logging.getLogger(__name__)

INCIDENTS = (
    "runaway_loop",
    "retry_storm",
    "chatty_handoffs",
    "full_history",
    "budget_burn",
    "missing_profile",
    "unpriced_model",
)

#: A private fine-tune: neither the policy nor the maintained catalog can know its price.
UNPRICED_MODEL = "ft:mistral-small-latest:acme:ticket-summary"
UNPROFILED_WORKFLOW = "lead-scoring"


@dataclass
class Incident:
    name: str
    description: str
    team: str
    workflow: str
    task_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class FleetReport:
    """What the fleet emitted, for the summary and for checking the history against."""

    calls: int = 0
    outcomes: int = 0
    tasks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    by_team: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_workflow: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcome_status: Counter[str] = field(default_factory=Counter)
    incidents: dict[str, Incident] = field(default_factory=dict)
    paused_tasks: list[str] = field(default_factory=list)
    fallbacks_obeyed: int = 0
    throttles_obeyed: int = 0

    def _add(
        self, bucket: dict[str, dict[str, Any]], name: str, tokens: TokenCounts, cost: Decimal
    ) -> None:
        row = bucket.setdefault(
            name, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0)}
        )
        row["calls"] += 1
        row["input_tokens"] += tokens.input
        row["output_tokens"] += tokens.output
        row["cost_usd"] += cost

    def count_call(self, team: str, workflow: str, tokens: TokenCounts, cost: Decimal) -> None:
        self.calls += 1
        self.input_tokens += tokens.input
        self.output_tokens += tokens.output
        self.cached_input_tokens += tokens.cached_input
        self.cache_write_tokens += tokens.cache_write
        self.reasoning_tokens += tokens.reasoning
        self.cost_usd += cost
        self._add(self.by_team, team, tokens, cost)
        self._add(self.by_workflow, workflow, tokens, cost)


# ------------------------------------------------------------------ task scripts
# A script is a generator: it yields once per model call it made (the fleet
# paces the yields), and gets its TaskContext and RNG from the fleet.

Script = Callable[["Fleet", TaskContext, random.Random], Iterator[None]]


@dataclass(frozen=True)
class WorkflowShape:
    team: str
    workflow: str
    model: str
    provider: str
    system: int
    tool_definitions: int
    retrieved: tuple[int, int]
    turns: tuple[int, int]
    history_per_turn: int
    history_cap: int  # summarised history stays under this
    output: tuple[int, int]
    tools: tuple[str, ...]
    reasoning_share: float = 0.0
    cache_hit_rate: float = 0.85
    success_rate: float = 0.9
    quality: tuple[float, float] = (0.75, 0.98)
    handoff_to: str | None = None
    weight: int = 1


SHAPES: tuple[WorkflowShape, ...] = (
    WorkflowShape(
        "search",
        "support-triage",
        "gpt-4.1-mini",
        "openai",
        900,
        1200,
        (600, 1800),
        (3, 6),
        700,
        2400,
        (150, 450),
        ("search_docs", "lookup_ticket"),
        weight=4,
    ),
    WorkflowShape(
        "search",
        "doc-qa",
        "gpt-4.1",
        "openai",
        700,
        600,
        (2000, 4000),
        (2, 4),
        500,
        2000,
        (200, 600),
        ("search_docs",),
        weight=3,
    ),
    WorkflowShape(
        "support",
        "ticket-summary",
        "claude-haiku-3.5",
        "anthropic",
        1100,
        400,
        (0, 300),
        (1, 3),
        900,
        3000,
        (150, 400),
        ("fetch_ticket",),
        cache_hit_rate=0.7,
        weight=3,
    ),
    WorkflowShape(
        "research",
        "deep-research",
        "o4-mini",
        "openai",
        1500,
        2200,
        (3000, 6000),
        (4, 8),
        1200,
        6000,
        (500, 1500),
        ("web_search", "read_page"),
        reasoning_share=0.5,
        handoff_to="writer",
        quality=(0.7, 0.95),
        weight=1,
    ),
)


def _components(
    shape: WorkflowShape,
    rng: random.Random,
    turn: int,
    *,
    full_history: bool = False,
    handoff: int = 0,
    tool_responses: int = 0,
) -> dict[str, int]:
    history = shape.history_per_turn * (turn - 1)
    if not full_history:
        history = min(history, shape.history_cap)
    return {
        "system": shape.system,
        "tool_definitions": shape.tool_definitions,
        "retrieved": rng.randint(*shape.retrieved),
        "history": history,
        "tool_responses": tool_responses or (rng.randint(100, 600) if turn > 1 else 0),
        "handoff": handoff,
    }


def _usage(
    shape: WorkflowShape,
    rng: random.Random,
    components: dict[str, int],
    *,
    cached: bool | None = None,
) -> TokenCounts:
    inp = sum(components.values()) + rng.randint(20, 120)  # the user's own words
    out = rng.randint(*shape.output)
    reasoning = int(out * shape.reasoning_share)
    hit = rng.random() < shape.cache_hit_rate if cached is None else cached
    cacheable = components["system"] + components["tool_definitions"]
    if shape.provider == "anthropic":
        return TokenCounts(
            input=inp,
            output=out,
            cached_input=cacheable if hit else 0,
            cache_write=0 if hit else cacheable,
            reasoning=reasoning,
        )
    return TokenCounts(
        input=inp, output=out, cached_input=cacheable if hit else 0, reasoning=reasoning
    )


def normal_task(
    fleet: Fleet, task: TaskContext, rng: random.Random, shape: WorkflowShape
) -> Iterator[None]:
    """A well-behaved task: bounded history, cache hits, a handoff where the workflow has one."""
    turns = rng.randint(*shape.turns)
    ctx = task
    try:
        for turn in range(1, turns + 1):
            model = fleet.ask_guard(ctx) or shape.model
            yield from fleet.wait_if_throttled()
            if shape.handoff_to and turn == turns and ctx is task:
                ctx = task.handoff(shape.handoff_to)
                comps = _components(shape, rng, turn, handoff=600)
            else:
                comps = _components(shape, rng, turn)
            tool = rng.choice(shape.tools)
            fleet.record(
                ctx,
                shape,
                _usage(shape, rng, comps),
                comps,
                model=model,
                tool_name=tool,
                tool_calls=1,
            )
            yield
    except Exception as exc:
        if type(exc).__name__ != "TaskPaused":
            raise
        fleet.report.paused_tasks.append(task.task_id)
        fleet.finish(task, "abandoned", None)
        return
    if rng.random() < shape.success_rate:
        fleet.finish(task, "success", round(rng.uniform(*shape.quality), 3))
    else:
        fleet.finish(task, "failure", None)


def _advance(running: list[Iterator[None]]) -> None:
    """One step of the next script in turn; a finished script leaves the rotation."""
    if not running:
        return
    script = running.pop(0)
    try:
        next(script)
        running.append(script)
    except StopIteration:
        pass


class Fleet:
    """Runs the fleet for ``duration_s`` at about ``rate`` calls per second."""

    def __init__(
        self,
        emitter: TokenEmitter,
        policy: Policy,
        *,
        seed: int = 7,
        rate: float = 40.0,
        duration_s: float = 60.0,
        incidents: tuple[str, ...] = INCIDENTS,
        on_incident: Callable[[Incident, str], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.emitter = emitter
        self.policy = policy
        self.seed = seed
        self.rate = rate
        self.duration_s = duration_s
        self.enabled = set(incidents)
        self.report = FleetReport()
        self.on_incident = on_incident or (lambda incident, what: None)
        self.clock = clock
        self._task_seq = 0
        self._open: dict[str, TaskContext] = {}
        self.tick = 0
        self._deferred_s = 0.0
        self.total_ticks = max(1, round(duration_s * rate))

    # ---------------------------------------------------------------- helpers

    def new_task(self, team: str, workflow: str, agent: str, prefix: str = "t") -> TaskContext:
        self._task_seq += 1
        self.report.tasks += 1
        task = self.emitter.task(
            team=team,
            workflow=workflow,
            task_id=f"{prefix}-{self.seed}-{self._task_seq:05d}",
            agent=agent,
        )
        self._open[task.task_id] = task
        return task

    def cost(self, model: str, tokens: TokenCounts) -> Decimal:
        return price_tokens(model, tokens, self.clock(), self.policy.catalog).cost_usd

    def record(
        self,
        ctx: TaskContext,
        shape: WorkflowShape,
        tokens: TokenCounts,
        comps: dict[str, int],
        *,
        model: str | None = None,
        retry: bool = False,
        status: str = "ok",
        tool_name: str | None = None,
        tool_calls: int = 0,
    ) -> None:
        model = model or shape.model
        ctx.record(
            tokens,
            model=model,
            provider=shape.provider,
            components=comps,
            retry=retry,
            status=status,
            tool_name=tool_name,
            tool_calls=tool_calls,
            latency_ms=int(300 + tokens.output * 2),
            context_window=128_000,
        )
        self.report.count_call(
            ctx.team or "unattributed",
            ctx.workflow or "unattributed",
            tokens,
            self.cost(model, tokens),
        )

    def finish(self, task: TaskContext, status: str, quality: float | None) -> None:
        task.outcome(status, quality)
        task.__exit__(None, None, None)
        self._open.pop(task.task_id, None)
        self.report.outcomes += 1
        self.report.outcome_status[status] += 1

    def defer(self, seconds: float) -> None:
        """The guard's ``sleep`` for a throttled agent. The fleet runs every agent on one
        thread, so instead of sleeping (and stalling them all) the throttled agent's own
        script waits that long in ticks (:meth:`wait_if_throttled`)."""
        self._deferred_s += seconds

    def wait_if_throttled(self) -> Iterator[None]:
        ticks, self._deferred_s = round(self._deferred_s * self.rate), 0.0
        for _ in range(ticks):
            yield

    def ask_guard(self, ctx: TaskContext) -> str | None:
        """The guard's answer before a call: a fallback model, or None to go on. Pauses raise."""
        verdict = ctx.before_call()
        if verdict is None:
            return None
        action = getattr(verdict, "action", "proceed")
        if action == "fallback":
            self.report.fallbacks_obeyed += 1
            return getattr(verdict, "fallback_model", None)
        if action == "throttle":
            self.report.throttles_obeyed += 1
        return None

    def start_incident(
        self, name: str, description: str, team: str, workflow: str, task_id: str | None = None
    ) -> Incident:
        incident = Incident(name, description, team, workflow, task_id, started_at=self.clock())
        self.report.incidents[name] = incident
        self.on_incident(incident, "started")
        return incident

    # ------------------------------------------------------------- incidents

    def runaway_loop(self, rng: random.Random) -> Iterator[None]:
        shape = SHAPES[0]
        task = self.new_task(shape.team, shape.workflow, "triage-agent", prefix="runaway")
        incident = self.start_incident(
            "runaway_loop",
            "an agent stuck calling lookup_ticket again and again",
            shape.team,
            shape.workflow,
            task.task_id,
        )
        try:
            for _ in range(1, 200):
                self.ask_guard(task)
                yield from self.wait_if_throttled()
                comps = _components(shape, rng, 1, tool_responses=150)
                comps["retrieved"] = 400
                self.record(
                    task,
                    shape,
                    _usage(shape, rng, comps),
                    comps,
                    tool_name="lookup_ticket",
                    tool_calls=1,
                )
                yield
        except Exception as exc:  # TaskPaused from the guard: the agent stops, as it should
            if type(exc).__name__ != "TaskPaused":
                raise
            incident.ended_at = self.clock()
            incident.notes.append(f"agent paused by tokengov after {task.step} calls: {exc}")
            self.report.paused_tasks.append(task.task_id)
            self.on_incident(incident, f"paused after {task.step} calls")
            self.finish(task, "abandoned", None)
            return
        incident.notes.append("the loop ran to its end: no pause arrived")
        self.finish(task, "failure", None)

    def retry_storm(self, rng: random.Random) -> Iterator[None]:
        shape = SHAPES[2]
        task = self.new_task(shape.team, shape.workflow, "summarizer", prefix="retry")
        self.start_incident(
            "retry_storm",
            "8 retries of one step with no backoff",
            shape.team,
            shape.workflow,
            task.task_id,
        )
        comps = _components(shape, rng, 1)
        self.record(task, shape, _usage(shape, rng, comps), comps, status="timeout")
        yield
        for _ in range(8):
            self.record(
                task,
                shape,
                _usage(shape, rng, comps, cached=False),
                comps,
                retry=True,
                status="error",
            )
            yield
        self.finish(task, "failure", None)

    def chatty_handoffs(self, rng: random.Random) -> Iterator[None]:
        """A multi-agent workflow whose every handoff resends the sender's whole context."""
        shape = WorkflowShape(
            "research",
            "market-research",
            "o4-mini",
            "openai",
            1500,
            2200,
            (3000, 6000),
            (4, 4),
            1200,
            6000,
            (500, 1500),
            ("web_search",),
            reasoning_share=0.5,
        )
        for n in range(8):  # 24 handoffs: enough for the detector to judge
            task = self.new_task(shape.team, shape.workflow, "planner", prefix="handoff")
            if n == 0:
                self.start_incident(
                    "chatty_handoffs",
                    "every handoff resends the sender's whole context",
                    shape.team,
                    shape.workflow,
                    task.task_id,
                )
            # A planner delegates three sub-questions to a researcher, resending its whole
            # context with each one instead of a short brief.
            researcher = task.handoff("researcher")
            for round_ in range(1, 4):
                comps = _components(shape, rng, round_)
                planner_tokens = _usage(shape, rng, comps)
                self.record(
                    task, shape, planner_tokens, comps, tool_name="web_search", tool_calls=1
                )
                yield
                comps = _components(shape, rng, 1)
                comps["handoff"] = planner_tokens.input  # the whole context, resent
                self.record(
                    researcher,
                    shape,
                    _usage(shape, rng, comps),
                    comps,
                    tool_name="web_search",
                    tool_calls=1,
                )
                yield
            self.finish(task, "success", round(rng.uniform(0.8, 0.9), 3))

    def full_history(self, rng: random.Random) -> Iterator[None]:
        shape = SHAPES[1]
        for n in range(2):
            task = self.new_task(shape.team, shape.workflow, "chat-agent", prefix="history")
            if n == 0:
                self.start_incident(
                    "full_history",
                    "a conversation resending its whole transcript every turn",
                    shape.team,
                    shape.workflow,
                    task.task_id,
                )
            for turn in range(1, 13):
                comps = _components(shape, rng, turn, full_history=True)
                comps["retrieved"] = 800
                searched = turn % 3 == 1  # a search every third turn: within max_tool_calls
                self.record(
                    task,
                    shape,
                    _usage(shape, rng, comps, cached=False),
                    comps,
                    tool_name="search_docs" if searched else None,
                    tool_calls=1 if searched else 0,
                )
                yield
            self.finish(task, "success", 0.85)

    def budget_burn(self, rng: random.Random) -> Iterator[None]:
        """Research spends steadily so that 50 %, 80 % and 100 % of its daily budget fall
        at about 35 %, 55 % and 75 % of the run."""
        budget = next(
            (
                b
                for b in self.policy.budgets
                if b.scope == "team" and b.name == "research" and b.limit_usd is not None
            ),
            None,
        )
        if budget is None or budget.limit_usd is None:
            log.warning("budget_burn: the policy has no USD budget for team research; skipped")
            return
        shape = SHAPES[3]
        self.start_incident(
            "budget_burn",
            f"research burning through its ${budget.limit_usd}/day budget",
            "research",
            shape.workflow,
        )
        target = budget.limit_usd * Decimal("1.08")
        burn_ticks = self.total_ticks * 0.72  # paced in ticks, so the run is a function of the seed
        start_tick = self.tick
        model = "claude-sonnet-4"

        def due() -> Decimal:
            return target * Decimal(min(1.0, (self.tick - start_tick) / burn_ticks))

        while self._team_cost("research") < target:
            task = self.new_task("research", shape.workflow, "deep-researcher", prefix="burn")
            for turn in range(1, 4):
                while self._team_cost("research") > due() and self.tick - start_tick < burn_ticks:
                    yield  # ahead of schedule: wait
                comps = _components(shape, rng, turn)
                comps["retrieved"] = 30_000
                tokens = _usage(shape, rng, comps)
                fallback = self.ask_guard(task)
                yield from self.wait_if_throttled()
                self.record(
                    task,
                    shape,
                    tokens,
                    comps,
                    model=fallback or model,
                    tool_name="read_page",
                    tool_calls=1,
                )
                yield
            self.finish(task, "success", round(rng.uniform(0.8, 0.95), 3))

    def _team_cost(self, team: str) -> Decimal:
        row = self.report.by_team.get(team)
        return row["cost_usd"] if row else Decimal(0)

    def _well_run_tasks(
        self,
        name: str,
        description: str,
        shape: WorkflowShape,
        agent: str,
        prefix: str,
        tasks: int,
        rng: random.Random,
    ) -> Iterator[None]:
        """Ordinary tasks whose only fault is their setting (no profile, no price)."""
        for n in range(tasks):
            task = self.new_task(shape.team, shape.workflow, agent, prefix=prefix)
            if n == 0:
                self.start_incident(name, description, shape.team, shape.workflow, task.task_id)
            yield from normal_task(self, task, rng, shape)

    def missing_profile(self, rng: random.Random) -> Iterator[None]:
        shape = WorkflowShape(
            "growth",
            UNPROFILED_WORKFLOW,
            "gpt-4.1-mini",
            "openai",
            600,
            300,
            (200, 800),
            (2, 3),
            400,
            1200,
            (100, 300),
            ("crm_lookup",),
        )
        description = f"workflow {UNPROFILED_WORKFLOW} has no cost profile"
        return self._well_run_tasks(
            "missing_profile", description, shape, "scorer", "growth", 4, rng
        )

    def unpriced_model(self, rng: random.Random) -> Iterator[None]:
        shape = WorkflowShape(
            "support",
            "ticket-summary",
            UNPRICED_MODEL,
            "mistral",
            1100,
            400,
            (0, 300),
            (1, 2),
            900,
            3000,
            (150, 400),
            ("fetch_ticket",),
        )
        description = f"calls to {UNPRICED_MODEL}, which has no price"
        return self._well_run_tasks(
            "unpriced_model", description, shape, "summarizer", "unpriced", 3, rng
        )

    # ------------------------------------------------------------------- run

    def _schedule(self) -> list[tuple[float, str]]:
        """When each incident starts, as a share of the run."""
        at = {
            "budget_burn": 0.02,
            "missing_profile": 0.08,
            "runaway_loop": 0.12,
            "chatty_handoffs": 0.18,
            "unpriced_model": 0.25,
            "retry_storm": 0.33,
            "full_history": 0.40,
        }
        return sorted((share, name) for name, share in at.items() if name in self.enabled)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> FleetReport:
        rng = random.Random(self.seed)
        shapes = [s for s in SHAPES for _ in range(s.weight)]
        running: list[Iterator[None]] = []
        schedule = self._schedule()
        interval = 1.0 / self.rate
        next_tick = time.monotonic()
        # Scheduling counts ticks (one script step each), not seconds: what happens is a
        # function of the seed; the clock only paces it.
        while not should_stop() and self.tick < self.total_ticks:
            while schedule and self.tick >= schedule[0][0] * self.total_ticks:
                _, name = schedule.pop(0)
                running.append(getattr(self, name)(random.Random(f"{self.seed}:{name}")))
            if len(running) < 12 and self.tick < self.total_ticks * 0.9:
                shape = rng.choice(shapes)
                task = self.new_task(
                    shape.team, shape.workflow, "planner" if shape.handoff_to else "agent"
                )
                running.append(normal_task(self, task, random.Random(rng.random()), shape))
            self.tick += 1
            _advance(running)
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                next_tick = time.monotonic()  # fell behind: do not burst to catch up
        # Wind down: no new tasks; let running ones finish, paced, for a little longer;
        # whatever is still open then ends as abandoned, so every task has its outcome.
        wind_down = self.tick + max(3 * self.rate, 0.15 * self.total_ticks)
        while running and self.tick < wind_down and not should_stop():
            self.tick += 1
            _advance(running)
            time.sleep(interval)
        for task in list(self._open.values()):
            self.finish(task, "abandoned", None)
        return self.report
