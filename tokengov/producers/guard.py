"""The SDK's guard: obey the decisions on ``tokengov.decisions`` before each model call.

A background thread follows the compacted decisions topic from its beginning
(:func:`tokengov.core.kafka.follow_compacted`: ``assign()`` without a consumer group, the
first message arrives in ~0.1 s; it waits for a broker that is not up yet and reads a
topic that restarted empty again) and keeps the latest decision per ``scope:key``.
:meth:`Guard.before_call` then answers for one task — the most specific
active decision wins (task > workflow > team), expired ones are ignored:

- ``proceed`` (or nothing): go ahead;
- ``throttle``: sleeps ``throttle_ms`` first, then go ahead;
- ``fallback``: go ahead with ``Verdict.fallback_model``;
- ``pause``: raises :class:`TaskPaused` carrying the decision (a human lifts it
  with ``tokengov decisions lift task:<id>``).

Broker trouble never stops the agent: it is logged and the guard answers from
what it has (nothing: proceed).

    with Guard(bootstrap, topics) as guard:
        verdict = guard.before_call(task_id, workflow="support-triage", team="search")
        model = verdict.fallback_model or "gpt-4.1"
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

from confluent_kafka import KafkaError
from pydantic import ValidationError

from tokengov.core.contracts import Decision, utcnow
from tokengov.core.kafka import KafkaConnection, connection, follow_compacted
from tokengov.core.topics import Topics

__all__ = ["Guard", "TaskPaused", "Verdict"]

log = logging.getLogger(__name__)

SCOPES: tuple[Literal["task", "workflow", "team"], ...] = ("task", "workflow", "team")


class TaskPaused(Exception):
    """The task is paused by a decision; ``decision`` says why and until when."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        until = f" until {decision.expires_at.isoformat()}" if decision.expires_at else ""
        super().__init__(
            f"{decision.topic_key} is paused{until}: {decision.reason} "
            f"(lift with: tokengov decisions lift {decision.topic_key})"
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["proceed", "throttle", "fallback"]
    fallback_model: str | None = None
    throttled_ms: int = 0
    decision: Decision | None = None


class Guard:
    def __init__(
        self,
        bootstrap: KafkaConnection | str,
        topics: Topics | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        poll_timeout_s: float = 0.1,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        self.kafka = connection(bootstrap)
        self.bootstrap = self.kafka.bootstrap
        self.topic = (topics or Topics()).decisions
        self._clock = clock
        self._sleep = sleep
        self._poll_timeout_s = poll_timeout_s
        self._config: dict[str, Any] = {
            "fetch.wait.max.ms": 100,
            "socket.connection.setup.timeout.ms": 3000,
            "reconnect.backoff.max.ms": 1000,
            "error_cb": self._on_client_error,
            **(consumer_config or {}),
        }
        self._decisions: dict[str, Decision] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_log = 0.0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Guard:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name="tokengov-guard", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> Guard:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_caught_up(self, timeout_s: float = 10.0) -> bool:
        """True once the decisions that existed at start have been read."""
        return self._caught_up.wait(timeout_s)

    # ------------------------------------------------------------ answers

    def decision_for(
        self, task_id: str, workflow: str | None = None, team: str | None = None
    ) -> Decision | None:
        """The decision in force for this call: the most specific active one, or None."""
        now = self._clock()
        with self._lock:
            for scope, key in zip(SCOPES, (task_id, workflow, team), strict=True):
                if key is None:
                    continue
                decision = self._decisions.get(f"{scope}:{key}")
                if decision is not None and decision.active(now):
                    return decision
        return None

    def before_call(
        self, task_id: str, workflow: str | None = None, team: str | None = None
    ) -> Verdict:
        """Call before each model call. Sleeps for throttle, raises :class:`TaskPaused`."""
        decision = self.decision_for(task_id, workflow, team)
        if decision is None or decision.action == "proceed":
            return Verdict("proceed", decision=decision)
        if decision.action == "pause":
            raise TaskPaused(decision)
        if decision.action == "throttle":
            wait_ms = decision.throttle_ms if decision.throttle_ms is not None else 1000
            self._sleep(wait_ms / 1000)
            return Verdict("throttle", throttled_ms=wait_ms, decision=decision)
        return Verdict("fallback", fallback_model=decision.fallback_model, decision=decision)

    def snapshot(self) -> dict[str, Decision]:
        with self._lock:
            return dict(self._decisions)

    # ------------------------------------------------------------ the follower thread

    def _on_client_error(self, error: KafkaError) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 10:  # broker trouble is logged, not raised, not spammed
            self._last_error_log = now
            log.warning("guard: decisions broker %s: %s (proceeding)", self.bootstrap, error)

    def _follow(self) -> None:
        try:
            follow_compacted(
                self.kafka,
                self.topic,
                lambda record: self._apply(record.key, record.value),
                self._stop,
                on_caught_up=self._caught_up.set,
                client_id="tokengov-guard",
                poll_timeout_s=self._poll_timeout_s,
                wait_for_topic=True,  # the agent may start before the broker: proceed, retry
                options=self._config,
            )
        except Exception:  # the agent must never crash because of the guard
            log.exception("guard: the decisions follower stopped; every call now proceeds")

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        topic_key = key.decode("utf-8", "replace")
        if value is None:
            with self._lock:
                self._decisions.pop(topic_key, None)
            return
        try:
            decision = Decision.model_validate_json(value)
        except ValidationError as exc:
            log.warning("guard: ignoring an invalid decision for %s: %s", topic_key, exc)
            return
        with self._lock:
            self._decisions[decision.topic_key] = decision
