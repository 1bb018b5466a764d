"""The SDK's guard: obey the decisions on ``tokengov.decisions`` before each model call.

A background thread follows the compacted decisions topic from its beginning
(confluent-kafka, ``assign()`` without a consumer group: the first message
arrives in ~0.1 s) and keeps the latest decision per ``scope:key``.
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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import ValidationError

from tokengov.contracts import Decision, utcnow
from tokengov.kafka import KafkaConnection, connection
from tokengov.topics import NO_AUTO_CREATE, Topics

__all__ = ["Guard", "TaskPaused", "Verdict"]

log = logging.getLogger(__name__)

#: How often an idle guard checks whether the decisions topic restarted (see ``_restarted``).
RESTART_CHECK_INTERVAL_S = 1.0

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
        self._config = {
            **self.kafka.librdkafka_config(),
            **NO_AUTO_CREATE,  # the consumers' default too: say it
            "group.id": f"tokengov-guard-{uuid.uuid4().hex}",  # never joined: assign() only
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # see _restarted
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": True,
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
        consumer: Consumer | None = None
        try:
            consumer = Consumer(self._config)
            behind = self._assign(consumer)  # partitions not read to their end yet
            checked = time.monotonic()
            while not self._stop.is_set():
                if behind is None:
                    behind = self._assign(consumer)
                    continue
                msg = consumer.poll(self._poll_timeout_s)
                if msg is None:
                    if time.monotonic() - checked >= RESTART_CHECK_INTERVAL_S:
                        checked = time.monotonic()
                        if self._restarted(consumer):
                            behind = self._assign(consumer)
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        behind.discard(msg.partition())
                        if not behind:
                            self._caught_up.set()
                    else:
                        self._on_client_error(err)
                    continue
                self._apply(msg.key(), msg.value())
        except Exception:  # the agent must never crash because of the guard
            log.exception("guard: the decisions follower stopped; every call now proceeds")
        finally:
            if consumer is not None:
                try:
                    consumer.close()
                except (KafkaException, RuntimeError):
                    log.debug("guard: closing the consumer failed", exc_info=True)

    def _restarted(self, consumer: Consumer) -> bool:
        """True when the topic's end went below our position: a broker that restarted empty
        (the embedded one keeps topics in memory) numbers the new topic's offsets from 0,
        and a fetch at our old position just finds nothing there. The end is what the
        broker's fetch responses reported (``cached``), which is exact."""
        try:
            for tp in consumer.position(consumer.assignment()):
                _, end = consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and 0 <= end < tp.offset:
                    log.warning(
                        "guard: %s[%d] ends at offset %d, before our position %d: the broker "
                        "restarted with a new topic; reading it again from its start",
                        self.topic,
                        tp.partition,
                        end,
                        tp.offset,
                    )
                    return True
        except KafkaException as exc:  # the broker is away: the next check tries again
            log.debug("guard: cannot compare %s's end with our position: %s", self.topic, exc)
        return False

    def _assign(self, consumer: Consumer) -> set[int] | None:
        """Assign every partition from the beginning; None when the broker does not answer."""
        try:
            metadata = consumer.list_topics(self.topic, timeout=2.0)
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                raise KafkaException(f"no topic {self.topic}")
            partitions = sorted(topic.partitions)
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            return set(partitions)
        except KafkaException as exc:
            now = time.monotonic()
            if now - self._last_error_log > 10:
                self._last_error_log = now
                log.warning(
                    "guard: cannot follow %s on %s yet: %s", self.topic, self.bootstrap, exc
                )
            self._stop.wait(1.0)
            return None

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
