"""What the worker reads from the store before it starts: the recovery seed and debt history.

The application layer's half of tokengov/core/recovery.py: ``streams`` decides whether its state
is gone, ``sinks`` reads the store, this module joins them and hands plain core types to the
roles in :class:`~tokengov.core.worker_context.WorkerContext`. It runs before the worker's own
ClickHouse writer starts, so what it reads and what the new broker delivers never overlap.
A store that cannot be read (none yet, not migrated, a server that is down) costs the seed,
loudly, never the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tokengov.core.contracts import CallEvent, Decision, Outcome
from tokengov.core.errors import TokenGovError
from tokengov.core.recovery import RecoverySeed, SpendRow
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.sinks.clickhouse.schema import COMPONENT_KINDS, TOKEN_KINDS
from tokengov.sinks.clickhouse.store import ClickHouseStore

__all__ = [
    "DEBT_HISTORY_MAX_EVENTS",
    "read_debt_history",
    "read_seed",
    "recover",
]

log = logging.getLogger(__name__)

#: At most this many stored events are replayed into the debt engine at start.
DEBT_HISTORY_MAX_EVENTS = 200_000

_SPEND_SQL = """
SELECT day, team, workflow, sum(calls) AS calls,
       sum(input_tokens) + sum(output_tokens) AS tokens, sum(cost_usd) AS cost_usd
FROM spend_daily
WHERE day >= {since:Date}
GROUP BY day, team, workflow
ORDER BY day, team, workflow"""

_FIRED_SQL = """
SELECT DISTINCT fingerprint FROM alerts
WHERE starts_at >= {since:DateTime64(3, 'UTC')}"""

# The latest decision per key; the tuple keeps NULLs that argMax would skip.
_DECISIONS_SQL = """
SELECT scope, key,
       argMax(tuple(action, reason, fallback_model, throttle_ms, issued_at, expires_at),
              tuple(issued_at, ingested_at)) AS latest
FROM decisions
GROUP BY scope, key"""

_CALLS_SQL = """
SELECT event_id, ts, team, workflow, task_id, agent, parent_agent, step, provider, model,
       input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens,
       system_tokens, tool_definitions_tokens, retrieved_tokens, history_tokens,
       tool_responses_tokens, handoff_tokens, memory_tokens,
       attempt, tool_calls, tool_name, latency_ms, status, cost_usd
FROM token_events
WHERE ts >= {since:DateTime64(3, 'UTC')}
ORDER BY ts
LIMIT {limit:UInt64}"""

_OUTCOMES_SQL = """
SELECT event_id, ts, team, workflow, task_id, status, quality
FROM task_outcomes
WHERE ts >= {since:DateTime64(3, 'UTC')}
ORDER BY ts
LIMIT {limit:UInt64}"""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def read_seed(store: ClickHouseStore, now: datetime) -> RecoverySeed:
    """The month's stored spend, the alerts already published this month and the decisions
    still in force at ``now``."""
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spend = tuple(
        SpendRow(
            day=day,
            team=str(team),
            workflow=str(workflow),
            calls=int(calls),
            tokens=int(tokens),
            cost_usd=Decimal(str(cost)),
        )
        for day, team, workflow, calls, tokens, cost in store.fetch(
            _SPEND_SQL, {"since": month_start.date()}
        ).rows
    )
    fired = frozenset(str(row[0]) for row in store.fetch(_FIRED_SQL, {"since": month_start}).rows)
    decisions: list[Decision] = []
    for scope, key, latest in store.fetch(_DECISIONS_SQL).rows:
        action, reason, fallback_model, throttle_ms, issued_at, expires_at = latest
        if action == "proceed":
            continue  # lifted: nothing to restore
        if expires_at is not None and _aware(expires_at) <= now:
            continue
        try:
            decisions.append(
                Decision(
                    scope=scope,
                    key=key,
                    action=action,
                    reason=reason,
                    fallback_model=fallback_model,
                    throttle_ms=throttle_ms,
                    issued_at=_aware(issued_at),
                    expires_at=_aware(expires_at) if expires_at is not None else None,
                )
            )
        except ValidationError as exc:
            log.error("recovery: stored decision %s:%s is not valid, skipped: %s", scope, key, exc)
    return RecoverySeed(as_of=now, spend=spend, fired=fired, decisions=tuple(decisions))


def _call(row: Sequence[Any]) -> CallEvent:
    (event_id, ts, team, workflow, task_id, agent, parent_agent, step, provider, model) = row[:10]
    tokens = dict(zip(TOKEN_KINDS, row[10:15], strict=True))
    components = dict(zip(COMPONENT_KINDS, row[15:22], strict=True))
    attempt, tool_calls, tool_name, latency_ms, status, cost_usd = row[22:28]
    return CallEvent.model_validate(
        {
            "event_id": event_id,
            "ts": _aware(ts),
            "team": team,
            "workflow": workflow,
            "task_id": task_id,
            "agent": agent,
            "parent_agent": parent_agent,
            "step": step,
            "provider": provider,
            "model": model,
            "tokens": tokens,
            "components": components,
            "attempt": attempt,
            "tool_calls": tool_calls,
            "tool_name": tool_name,
            "latency_ms": latency_ms,
            "status": status,
            "cost_usd": Decimal(str(cost_usd)),
        }
    )


def read_debt_history(
    store: ClickHouseStore, since: datetime, *, limit: int = DEBT_HISTORY_MAX_EVENTS
) -> tuple[CallEvent | Outcome, ...]:
    """The calls and outcomes stored since ``since``, oldest first (at most ``limit`` each)."""
    events: list[CallEvent | Outcome] = []
    skipped = 0
    params = {"since": since, "limit": limit}
    for row in store.fetch(_CALLS_SQL, params).rows:
        try:
            events.append(_call(row))
        except ValidationError:
            skipped += 1
    for event_id, ts, team, workflow, task_id, status, quality in store.fetch(
        _OUTCOMES_SQL, params
    ).rows:
        try:
            events.append(
                Outcome(
                    event_id=event_id,
                    ts=_aware(ts),
                    team=team,
                    workflow=workflow,
                    task_id=task_id,
                    status=status,
                    quality=quality,
                )
            )
        except ValidationError:
            skipped += 1
    if skipped:
        log.warning("recovery: %d stored event(s) did not fit the contract; not replayed", skipped)
    events.sort(key=lambda e: e.ts)
    return tuple(events)


def recover(
    settings: Settings,
    topics: Topics,
    roles: Sequence[str],
    *,
    debt_horizon: timedelta,
    mode: str = "auto",
    group: str = "tokengov-worker",
    now: datetime | None = None,
) -> tuple[RecoverySeed | None, tuple[CallEvent | Outcome, ...]]:
    """What a worker with ``roles`` should be handed: the seed (only when the streams' state
    topics are empty) and the debt engine's history (whenever the debt detectors run).

    ``mode``: ``always`` seeds whenever the state topics are empty (the embedded stack: its
    memory-only broker starts empty, so nothing on its topics is in the store yet); ``auto``
    also requires that stage 1 (consumer group ``group``) reads no partition of
    ``tokengov.events`` from its beginning — records it would read again may already be in
    the store, and a seed would count them twice; ``never`` seeds nothing."""
    from tokengov.app.worker_app import expand_roles
    from tokengov.streams.recovery import stage1_would_reread, state_gone

    wanted = set(expand_roles(roles))
    governance = bool(wanted & {"streams", "governance"})
    debt = bool(wanted & {"streams", "debt"})
    if not governance and not debt:
        return None, ()
    now = now or datetime.now(UTC)
    gone = governance and mode != "never" and state_gone(settings.kafka, topics)
    if governance and mode == "never":
        log.info("recovery: --recover never; nothing is seeded")
    elif governance and not gone:
        log.info("recovery: the streams' state topics hold state; nothing is seeded")
    if gone and mode == "auto":
        reread = stage1_would_reread(settings.kafka, topics.events, group)
        if reread:
            log.warning(
                "recovery: the streams' state topics are empty, but stage 1 (group %s) would "
                "read partitions %s of %s from their beginning, and what it reads again may "
                "already be in the store: nothing is seeded, to count nothing twice (pass "
                "--recover always when those records are not in the store)",
                group,
                reread,
                topics.events,
            )
            gone = False
    seed: RecoverySeed | None = None
    history: tuple[CallEvent | Outcome, ...] = ()
    if settings.embedded_clickhouse and not _embedded_store_exists(settings.clickhouse_dsn):
        log.info("recovery: no store yet at %s; nothing to recover", settings.clickhouse_dsn)
        return None, ()
    # tokengov's own read, like the writer's lookups (not an analyst's session): with chdb this
    # process is about to open the same store for its writer, so nothing session-wide (such
    # as a read-only setting) may be left behind on it.
    store = ClickHouseStore(settings.clickhouse_dsn)
    try:
        if gone:
            try:
                seed = read_seed(store, now)
            except TokenGovError as exc:
                log.error(
                    "recovery: the streams' state topics are empty but %s cannot be read (%s): "
                    "budgets restart from zero, alerts already sent may be sent again",
                    store.redacted_dsn,
                    exc,
                )
            else:
                log.warning(
                    "recovery: the streams' state topics are empty; seeding from %s: %s",
                    store.redacted_dsn,
                    seed.summary(),
                )
        if debt:
            try:
                history = read_debt_history(store, now - debt_horizon)
            except TokenGovError as exc:
                log.error(
                    "recovery: cannot read the debt history from %s (%s); the debt detectors "
                    "start from what arrives",
                    store.redacted_dsn,
                    exc,
                )
    finally:
        store.close()
    return seed, history


def _embedded_store_exists(dsn: str) -> bool:
    path = Path(dsn.removeprefix("chdb:").removeprefix("//")).expanduser()
    return path.is_dir() and any(path.iterdir())
