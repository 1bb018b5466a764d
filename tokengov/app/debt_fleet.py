"""A scripted fleet that commits each token-debt pattern, beside a twin that does not.

Every wasteful workflow has a well-designed twin running the *same* tasks
(same number of tasks and calls, same random draws) with the better pattern;
what the fleet actually wasted is the difference in tokens between the two.
Tests feed :attr:`FleetRun.events` to the debt engine and compare its
estimates with :meth:`FleetRun.actual_waste_tokens_per_day`.

Nothing here is text: counts and names only, like every event.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from tokengov.core.contracts import CallEvent, Components, Outcome, TokenCounts

__all__ = ["FLEET_MODEL", "FleetRun", "Pattern", "fleet_policy_yaml", "scripted_fleet"]

FLEET_MODEL: Final = "gpt-4.1-mini"
_USER_TOKENS: Final = 200
_SYSTEM_TOKENS: Final = 800


@dataclass(frozen=True)
class Pattern:
    """One wasteful workflow, its well-designed twin, and the detector that should fire."""

    wasteful: str
    twin: str
    team: str
    detector: str
    area: str


PATTERNS: Final = (
    Pattern("triage-bloated", "triage-lean", "search", "tool_definition_bloat", "agent_design"),
    Pattern("chat-resend", "chat-summarized", "support", "history_resend", "context_management"),
    Pattern(
        "research-fullhandoff",
        "research-structured",
        "research",
        "full_context_handoff",
        "orchestration",
    ),
    Pattern("concierge-replay", "concierge-distilled", "support", "memory_replay", "memory"),
    Pattern("kb-repeat", "kb-reranked", "search", "retrieval_waste", "retrieval"),
    Pattern("ops-whole", "ops-trimmed", "ops", "tool_response_bloat", "tool_usage"),
    Pattern(
        "billing-retrystorm", "billing-backoff", "billing", "retry_without_backoff", "workflow"
    ),
    Pattern("faq-growing", "faq-stable", "support", "system_prompt_growth", "system_prompt"),
)


@dataclass
class FleetRun:
    events: list[CallEvent | Outcome]
    patterns: tuple[Pattern, ...]
    duration: timedelta
    end: datetime
    wasted_tokens: dict[str, int] = field(default_factory=dict)
    waste_period: dict[str, timedelta] = field(default_factory=dict)

    def actual_waste_tokens_per_day(self, workflow: str) -> float:
        """Tokens the wasteful workflow spent beyond its twin, per day of its run."""
        period = self.waste_period.get(workflow, self.duration)
        return self.wasted_tokens[workflow] * 86400 / period.total_seconds()

    def pattern(self, workflow: str) -> Pattern:
        return next(p for p in self.patterns if workflow in (p.wasteful, p.twin))


@dataclass
class _Builder:
    """Builds the calls of one task for one variant."""

    team: str
    workflow: str
    task_id: str
    events: list[CallEvent | Outcome]
    n: int = 0

    def call(
        self,
        ts: datetime,
        agent: str,
        *,
        step: int,
        output: int = 300,
        attempt: int = 1,
        status: str = "ok",
        parent_agent: str | None = None,
        tool_name: str | None = None,
        latency_ms: int = 800,
        **components: int,
    ) -> CallEvent:
        comps = Components(**components)
        self.n += 1
        event = CallEvent(
            event_id=f"{self.task_id}-{self.workflow}-{self.n}",
            ts=ts,
            team=self.team,
            workflow=self.workflow,
            task_id=f"{self.workflow}:{self.task_id}",
            agent=agent,
            parent_agent=parent_agent,
            step=step,
            provider="openai",
            model=FLEET_MODEL,
            tokens=TokenCounts(input=comps.total + _USER_TOKENS, output=output),
            components=comps,
            attempt=attempt,
            tool_calls=1 if tool_name else 0,
            tool_name=tool_name,
            latency_ms=latency_ms,
            status=status,  # type: ignore[arg-type]
        )
        self.events.append(event)
        return event

    def outcome(self, ts: datetime, status: str = "success", quality: float = 0.9) -> None:
        self.events.append(
            Outcome(
                event_id=f"{self.task_id}-{self.workflow}-outcome",
                ts=ts,
                team=self.team,
                workflow=self.workflow,
                task_id=f"{self.workflow}:{self.task_id}",
                status=status,  # type: ignore[arg-type]
                quality=quality,
            )
        )


TaskScript = Callable[[_Builder, datetime, random.Random, bool], datetime]


def _tool_bloat(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
    for step in range(4):
        tool = rng.choice(("search_docs", "lookup_order", "escalate"))
        tools_tokens = 6000 if wasteful else 3 * 140  # the whole catalogue vs the 3 tools used
        b.call(
            t,
            "triager",
            step=step,
            tool_name=tool,
            system=_SYSTEM_TOKENS,
            tool_definitions=tools_tokens,
            output=rng.randint(250, 350),
        )
        t += timedelta(seconds=rng.uniform(2, 4))
    return t


def _history(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
    history = 0
    for step in range(8):
        sent = history if wasteful else min(history, 1800)  # bounded summary vs transcript
        b.call(t, "assistant", step=step, system=_SYSTEM_TOKENS, history=sent)
        history += 700 + rng.randint(-50, 50)
        t += timedelta(seconds=rng.uniform(3, 6))
    return t


def _handoff(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
    retrieved = 3000 + rng.randint(-200, 200)
    planner = None
    for step in range(2):  # retrieve once; the second call carries it in its history
        planner = b.call(
            t,
            "planner",
            step=step,
            system=_SYSTEM_TOKENS,
            retrieved=retrieved if step == 0 else 0,
            history=1000 + (retrieved if step else 0),
        )
        t += timedelta(seconds=rng.uniform(2, 4))
    assert planner is not None
    handoff = planner.tokens.input if wasteful else 400  # the whole context vs a brief
    for step in range(2, 4):
        b.call(t, "writer", step=step, parent_agent="planner", system=600, handoff=handoff)
        t += timedelta(seconds=rng.uniform(2, 4))
    return t


def _memory(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
    for step in range(4):
        raw = 6000 + rng.randint(-300, 300)
        distilled = 500 + rng.randint(-50, 50)
        b.call(
            t, "concierge", step=step, system=_SYSTEM_TOKENS, memory=raw if wasteful else distilled
        )
        t += timedelta(seconds=rng.uniform(2, 4))
    return t


def _retrieval(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
    chunks = 7000 + rng.randint(-500, 500)  # the same top-k fetched on every call
    reranked = 2500 + rng.randint(-200, 200)
    for step in range(4):
        # wasteful: the same chunks every call; well designed: reranked once, then reused
        retrieved = chunks if wasteful else (reranked if step == 0 else 0)
        b.call(
            t, "answerer", step=step, system=_SYSTEM_TOKENS, retrieved=retrieved, history=300 * step
        )
        t += timedelta(seconds=rng.uniform(2, 4))
    return t


def _tool_payload(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
    for step in range(4):
        whole = 9000 + rng.randint(-500, 500)
        trimmed = 1800 + rng.randint(-100, 100)
        b.call(
            t,
            "operator",
            step=step,
            system=_SYSTEM_TOKENS,
            output=250,
            tool_responses=whole if wasteful else trimmed,
            tool_name="get_logs",
        )
        t += timedelta(seconds=rng.uniform(2, 4))
    return t


def _retries(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
    transient = rng.random() < 0.5
    for step in range(3):
        if step == 1 and transient:
            # attempt 1 fails; without backoff five more attempts go out at once and
            # the fifth retry succeeds; with backoff the first retry does.
            attempts = 6 if wasteful else 2
            for attempt in range(1, attempts + 1):
                ok = attempt == attempts
                b.call(
                    t,
                    "charger",
                    step=step,
                    attempt=attempt,
                    status="ok" if ok else "error",
                    system=_SYSTEM_TOKENS,
                    history=1500,
                    latency_ms=600,
                )
                gap = 0.05 if wasteful else 1.0 * 2 ** (attempt - 1)
                t += timedelta(milliseconds=600) + timedelta(seconds=gap)
        else:
            b.call(t, "charger", step=step, system=_SYSTEM_TOKENS, history=1500, latency_ms=600)
            t += timedelta(seconds=rng.uniform(2, 4))
    return t


def _make_prompt(day: int) -> Callable[[_Builder, datetime, random.Random, bool], datetime]:
    def script(b: _Builder, t: datetime, rng: random.Random, wasteful: bool) -> datetime:
        system = 2000 + (300 * day if wasteful else 0)  # one more paragraph every day
        for step in range(2):
            b.call(t, "faq", step=step, system=system + rng.randint(-20, 20), output=200)
            t += timedelta(seconds=rng.uniform(1, 2))
        return t

    return script


def _run_pattern(
    events_out: list[CallEvent | Outcome],
    pattern: Pattern,
    script: TaskScript,
    *,
    tasks: int,
    start: datetime,
    span: timedelta,
    rng: random.Random,
    prefix: str,
) -> int:
    """Run ``tasks`` tasks in both variants; return the tokens the wasteful one spent extra."""
    spent = {True: 0, False: 0}
    for i in range(tasks):
        begin = start + span * (i + rng.random()) / tasks
        task_seed = rng.getrandbits(64)
        quality = round(rng.uniform(0.75, 0.98), 3)
        for wasteful in (True, False):
            workflow = pattern.wasteful if wasteful else pattern.twin
            b = _Builder(pattern.team, workflow, f"{prefix}{i}", [])
            end = script(b, begin, random.Random(task_seed), wasteful)
            b.outcome(end, "success" if quality >= 0.8 else "failure", quality)
            spent[wasteful] += sum(e.tokens.total for e in b.events if isinstance(e, CallEvent))
            events_out.extend(b.events)
    return spent[True] - spent[False]


def scripted_fleet(
    *,
    end: datetime | None = None,
    duration: timedelta = timedelta(minutes=50),
    tasks_per_pattern: int = 40,
    prompt_days: int = 5,
    prompt_tasks_per_day: int = 100,
    seed: int = 7,
) -> FleetRun:
    """Every pattern of :data:`PATTERNS` and its twin, events sorted by time.

    The window patterns run over the last ``duration`` before ``end``; system-prompt
    growth runs over the ``prompt_days`` days before ``end``, growing 300 tokens a day.
    """
    end = end or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    rng = random.Random(seed)
    start = end - duration - timedelta(minutes=2)
    scripts: dict[str, TaskScript] = {
        "tool_definition_bloat": _tool_bloat,
        "history_resend": _history,
        "full_context_handoff": _handoff,
        "memory_replay": _memory,
        "retrieval_waste": _retrieval,
        "tool_response_bloat": _tool_payload,
        "retry_without_backoff": _retries,
    }
    events: list[CallEvent | Outcome] = []
    run = FleetRun(events, PATTERNS, duration, end)
    for pattern in PATTERNS:
        if pattern.detector in scripts:
            run.wasted_tokens[pattern.wasteful] = _run_pattern(
                events,
                pattern,
                scripts[pattern.detector],
                tasks=tasks_per_pattern,
                start=start,
                span=duration,
                rng=rng,
                prefix="t",
            )
    prompt = next(p for p in PATTERNS if p.detector == "system_prompt_growth")
    today = end.replace(hour=0, minute=0, second=0, microsecond=0)
    extra = 0
    for day in range(prompt_days):  # full UTC days, the last one ending at today's midnight
        day_start = today - timedelta(days=prompt_days - day)
        extra = _run_pattern(
            events,
            prompt,
            _make_prompt(day),
            tasks=prompt_tasks_per_day,
            start=day_start,
            span=timedelta(days=1) - timedelta(minutes=1),
            rng=rng,
            prefix=f"d{day}-",
        )
    # Its waste per day: what the last day's prompt cost beyond the first day's, that day.
    run.wasted_tokens[prompt.wasteful] = extra
    run.waste_period[prompt.wasteful] = timedelta(days=1)
    events.sort(key=lambda e: (e.ts, e.event_id))
    return run


def iter_fleet_lines(run: FleetRun) -> Iterator[str]:
    """The run as JSONL, for ``tokengov emit``."""
    for event in run.events:
        yield event.model_dump_json()


def fleet_policy_yaml() -> str:
    """A policy that prices the fleet's model and names its teams."""
    teams = sorted({p.team for p in PATTERNS})
    lines = ["version: 1", "teams:"]
    lines += [f"  {t}: {{owner: {t}@example.com}}" for t in teams]
    lines += [
        "prices:",
        f"  {FLEET_MODEL}: {{input: 0.40, output: 1.60, cached_input: 0.10}}",
    ]
    return "\n".join(lines) + "\n"
