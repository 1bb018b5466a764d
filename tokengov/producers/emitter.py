"""The agent-side emitter: one event per model call, never in the agent's way.

At the call site :meth:`TokenEmitter.emit` (and :meth:`TaskContext.record`)
only captures the values and appends them to an in-memory queue; a background
thread validates them against the contract, batches the events of one task
into envelopes, and produces them with confluent-kafka (idempotent,
``acks=all``, compressed, key = ``task_id``, murmur2 partitioning as Java
clients and aiokafka do). Nothing raises into the agent: an invalid event is
logged with the field at fault and counted; a full queue counts the overflow.

The sender builds each recorded call as the document the models would write,
serialises the envelope of a task once (msgspec) and checks it with the contract's
fast path: the recorded calls on the very values written
(:func:`tokengov.core.decoding.check_calls`: ``msgspec.convert`` checks their types,
ranges and lengths in C, no JSON read back), any other event on its bytes
(:func:`tokengov.core.decoding.check_message`); both take only what the models take.
The events they are not sure about go one by one through the pydantic models, which
keep the valid events and name the field at fault in the others.

When the broker cannot take messages (all brokers down, delivery timeout, a
fatal producer error) the emitter purges what librdkafka still holds into a
local disk spool, keeps spooling new events behind them, and replays the spool
oldest first once the broker answers again, so per-task order holds.
:meth:`close` returns only when every event was delivered or safely spooled;
the next emitter on the same spool directory replays what is left.
Delivery is at least once: a replay may resend a message the broker had
already taken, and consumers count each ``event_id`` once.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import orjson
from confluent_kafka import KafkaError, KafkaException, Producer
from pydantic import ValidationError

from tokengov.core.contracts import (
    COMPONENT_NAMES,
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    TOKEN_NAMES,
    UNATTRIBUTED,
    CallEvent,
    Components,
    Outcome,
    TokenCounts,
    describe_validation_error,
    new_event_id,
)
from tokengov.core.decoding import check_calls, check_message
from tokengov.core.errors import ContractError
from tokengov.core.kafka import KafkaConnection, connection
from tokengov.core.topics import EVENTS, NO_AUTO_CREATE
from tokengov.producers.adapters import read_usage, read_usage_counts
from tokengov.producers.spool import Spool

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["EmitterStats", "TaskContext", "TokenEmitter"]

log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger(f"{__name__}.librdkafka")

#: orjson writes an aware UTC datetime as ``…Z``, as the models' JSON does.
_JSON_OPTIONS: Final = orjson.OPT_UTC_Z
_NO_COMPONENTS: Final = dict.fromkeys(COMPONENT_NAMES, 0)
_NO_TOKENS: Final = TokenCounts()


@dataclass
class EmitterStats:
    """Counters of what happened to every event handed to the emitter."""

    accepted: int = 0  # taken at the call site
    produced: int = 0  # handed to librdkafka
    delivered: int = 0  # acknowledged by the broker (messages may hold several events)
    spooled: int = 0  # written to the disk spool
    replayed: int = 0  # delivered from the spool
    invalid: int = 0  # failed validation: logged with the field, not sent
    overflow: int = 0  # the in-memory queue was full: logged, not sent
    probes: int = 0  # while spooling: times the broker was asked whether the topic is back

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# What the call site enqueues: cheap to build, validated on the sender thread.
# kind "model": a built event; "call"/"outcome": a dict of values; "task-call": a _Recorded
# (the hot path of TaskContext.record).
_Pending = tuple[str, float, Any]


class _CallDoc(msgspec.Struct, gc=False, tag_field="kind", tag="call"):
    """A recorded call as the models write it, every field, in one C call rather than a dict;
    encoded with msgspec and checked as bytes (any value: the check judges what is written).

    Not tracked by the garbage collector: a drain keeps up to 50,000 of them alive until their
    envelopes are written, and the collector walking tracked documents cost the sender a
    third of its time. Safe: it holds no reference cycle (its only dicts are the usage
    reader's counts and the components, of numbers)."""

    schema_version: int
    event_id: str
    ts: datetime
    team: Any
    workflow: Any
    task_id: str
    agent: Any
    parent_agent: Any
    step: Any
    provider: Any
    model: Any
    tokens: Any
    components: Any
    attempt: Any
    tool_calls: Any
    tool_name: Any
    latency_ms: Any
    status: Any
    cost_usd: None
    context_window: Any
    service_tier: Any
    usage_missing: bool


_ENCODER: Final = msgspec.json.Encoder()
# What the sender batches per task: each event (to be written with the others, or already
# written: the models' JSON, the values' JSON), and what was queued.
_Part = _CallDoc | msgspec.Raw
_Bucket = tuple[list[_Part | None], list[_Pending]]
_KNOWN_FIELDS: Final = {
    "call": frozenset(CallEvent.model_fields) | {"usage"},
    "outcome": frozenset(Outcome.model_fields),
}
_REQUIRED: Final = {"event_id": "-", "ts": "2026-01-01T00:00:00Z", "task_id": "-"}
#: The models' JSON of the fields not given, from the models themselves.
_DEFAULTS: Final = {
    kind: {
        name: value
        for name, value in model.model_validate({**_REQUIRED, **required})
        .model_dump(mode="json")
        .items()
        if name not in _REQUIRED and name not in required
    }
    for kind, model, required in (
        ("call", CallEvent, {"model": "-"}),
        ("outcome", Outcome, {"status": "success"}),
    )
}


def _attribution(value: Any) -> Any:
    """The contract's rule for team and workflow (``contracts.Attribution``): missing or blank
    is ``unattributed``; anything else is left for the validation to judge."""
    if value is None or (type(value) is str and not value.strip()):
        return UNATTRIBUTED
    return value


#: A random UUID's version (4) and variant (10xx) bits, RFC 9562: kept by the AND mask,
#: set by the OR mask, over each 16 bytes.
_UUID_KEEP: Final = bytes.fromhex("ffffffffffff0fff3fffffffffffffff")
_UUID_SET: Final = bytes.fromhex("00000000000040008000000000000000")
#: The five groups of a UUID's text, 8-4-4-4-12 hex digits.
_UUID_GROUPS: Final = re.compile(r"(.{8})(.{4})(.{4})(.{4})(.{12})", re.DOTALL)


def _event_id_batch(count: int) -> list[str]:
    """``count`` event ids as :func:`~tokengov.core.contracts.new_event_id` makes them (random
    UUIDs, version 4, in their usual text) from one ``os.urandom`` call, the bits and the
    dashes set for all at once in C: the sender makes one per recorded call, and
    ``str(uuid.uuid4())`` cost as much as validating the event."""
    size = 16 * count
    bits = int.from_bytes(os.urandom(size)) & int.from_bytes(_UUID_KEEP * count)
    text = (bits | int.from_bytes(_UUID_SET * count)).to_bytes(size).hex()
    return list(map("-".join, _UUID_GROUPS.findall(text)))


_TIMESTAMPS: Final = list[datetime]


def _timestamps(times: list[float]) -> list[datetime]:
    """``datetime.fromtimestamp(t, UTC)`` of each Unix time, in one C call: msgspec reads a
    number as a Unix time, an aware UTC datetime rounded to the nearest microsecond (a time
    exactly halfway, one float in about 15,000 near today's, rounded up where
    ``fromtimestamp`` rounds to even; ``tests/unit/producers/test_sender.py`` checks it); a
    ``fromtimestamp`` per call cost the sender 0.4 µs an event."""
    try:
        return msgspec.convert(times, _TIMESTAMPS, strict=False)
    except msgspec.ValidationError:  # not one a datetime holds: each as the models would
        return [datetime.fromtimestamp(t, UTC) for t in times]


def _event_ids() -> Iterator[str]:
    """Endless event ids, 1,024 at a time (iterated in C: ``next`` is cheap)."""
    return itertools.chain.from_iterable(map(_event_id_batch, itertools.repeat(1024)))


def _tokens_doc(tokens: TokenCounts | Mapping[str, int]) -> dict[str, Any]:
    """The six counts of ``tokens`` as the models write them (0 where not reported)."""
    if isinstance(tokens, TokenCounts):
        return {name: getattr(tokens, name) for name in TOKEN_NAMES}
    return {name: tokens.get(name, 0) for name in TOKEN_NAMES}


class _Recorded(msgspec.Struct, gc=False):
    """What :meth:`TaskContext.record` queues: its values, in one C call. Not tracked by the
    garbage collector (nor, once it has seen them, the tuples that hold it): with 200,000
    calls queued, the collector walking them tripled the call site's CPU time. Safe: it
    holds no reference cycle (the caller's values only)."""

    team: Any
    workflow: Any
    task_id: Any
    agent: Any
    parent_agent: Any
    step: Any
    attempt: Any
    provider: Any
    model: Any
    usage: Any
    components: Any
    tool_calls: Any
    tool_name: Any
    latency_ms: Any
    status: Any
    cost_usd: Any
    context_window: Any
    service_tier: Any


class TokenEmitter:
    """Publishes call events and outcomes to ``tokengov.events``.

    Use it as a context manager or call :meth:`close` before the process exits.
    """

    def __init__(
        self,
        bootstrap: KafkaConnection | str,
        *,
        topic: str = EVENTS,
        spool_dir: str | Path | None = None,
        envelope_max_events: int = 200,
        linger_ms: float = 5.0,
        delivery_timeout_ms: int = 15_000,
        max_queue_events: int = 1_000_000,
        probe_interval_s: float = 1.0,
        producer_config: Mapping[str, Any] | None = None,
        guard: Any | None = None,
        start: bool = True,
    ) -> None:
        self.kafka = connection(bootstrap)
        self.bootstrap = self.kafka.bootstrap
        self.topic = topic
        self.stats = EmitterStats()
        self.guard = guard
        self._envelope_max = max(1, envelope_max_events)
        self._linger_s = linger_ms / 1000
        self._max_queue = max_queue_events
        self._probe_interval_s = probe_interval_s
        self._config: dict[str, Any] = {
            **self.kafka.librdkafka_config(),
            # A metadata request for tokengov.events while the broker has no such topic (an
            # embedded broker restarted empty) must not create it with the broker's default
            # partition count: the emitter spools until tokengov has created it.
            **NO_AUTO_CREATE,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.timeout.ms": delivery_timeout_ms,
            "socket.connection.setup.timeout.ms": 3000,
            "reconnect.backoff.max.ms": 1000,
            "logger": _rdkafka_log,
            "log.connection.close": False,
            **(producer_config or {}),
        }
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._spool = Spool(Path(spool_dir) if spool_dir else Path(".tokengov") / "spool")
        self._spooling = bool(self._spool)  # leftovers from an earlier process: replay first
        self._unhealthy = False  # set from librdkafka's error callback
        self._delivery_failed = False  # set from delivery callbacks
        self._producer: Producer | None = None
        self._last_probe = 0.0
        self._ids = _event_ids()  # the sender thread's only
        self._thread = threading.Thread(target=self._run, name="tokengov-emitter", daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------ call site

    def emit(self, event: CallEvent | Outcome) -> None:
        """Queue a built event. Never blocks, never raises."""
        self._enqueue("model", event, None)

    def emit_call(self, **values: Any) -> None:
        """Queue a call event from raw values (validated on the sender thread)."""
        self._enqueue("call", None, values)

    def emit_outcome(self, **values: Any) -> None:
        self._enqueue("outcome", None, values)

    def _enqueue(self, kind: str, event: Any, values: Any) -> None:
        if len(self._queue) >= self._max_queue or self._closed:
            self._overflow()
            return
        self._queue.append((kind, time.time(), values if values is not None else event))
        self.stats.accepted += 1
        if len(self._queue) >= self._envelope_max:
            self._wake.set()

    def _overflow(self) -> None:
        self.stats.overflow += 1
        if self.stats.overflow == 1 or self.stats.overflow % 10_000 == 0:
            log.error(
                "tokengov emitter %s: %d event(s) not sent (queue of %d full or emitter closed)",
                self.topic,
                self.stats.overflow,
                self._max_queue,
            )

    def task(
        self,
        *,
        team: str | None = None,
        workflow: str | None = None,
        task_id: str | None = None,
        agent: str = "agent",
        provider: str = "unknown",
    ) -> TaskContext:
        """A task context: stamps task_id, step, attempt and agents; emits the outcome on exit."""
        return TaskContext(
            self,
            team=team,
            workflow=workflow,
            task_id=task_id or new_event_id(),
            agent=agent,
            provider=provider,
        )

    # -------------------------------------------------------------- control

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def spooling(self) -> bool:
        return self._spooling

    @property
    def spooled_pending(self) -> int:
        return self._spool.pending_messages

    def prometheus_collector(self) -> Collector:
        """These counters as a Prometheus collector: ``REGISTRY.register(
        emitter.prometheus_collector())``. Needs prometheus-client (``tokengov[metrics]``),
        imported only here: the SDK does not depend on it otherwise."""
        try:
            from tokengov.producers.metrics import EmitterCollector
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                f"the emitter's Prometheus collector needs prometheus-client ({exc.name} is "
                "not installed): pip install 'tokengov[metrics]'",
                name=exc.name,
            ) from exc
        return EmitterCollector(self)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is delivered (or spooled). True when done."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            producer = self._producer
            in_flight = len(producer) if producer is not None else 0
            if not self._queue and in_flight == 0 and not self._busy:
                return True
            self._wake.set()
            time.sleep(0.005)
        return False

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver or spool every event, then stop. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 5)
        elif self._queue:  # never started: handle the queue here
            self._shutdown(timeout_s)

    def __enter__(self) -> TokenEmitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------- sender thread

    _busy = False

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._linger_s)
            self._wake.clear()
            self._busy = True
            try:
                self._step()
            except Exception:  # the agent must not notice; the next step tries again
                log.exception("tokengov emitter: sender step failed; retrying")
                time.sleep(0.1)
            finally:
                self._busy = False
        try:
            self._shutdown(30.0)
        except Exception:
            log.exception("tokengov emitter: shutdown failed; spooling what is left")
            self._drain_to_spool()

    def _step(self) -> None:
        if self._producer is not None and (self._unhealthy or self._delivery_failed):
            self._enter_spooling("the broker is unreachable")
        if self._spooling:
            now = time.monotonic()
            if now - self._last_probe >= self._probe_interval_s:
                self._last_probe = now
                self._try_replay()
        if self._spooling:
            self._drain_to_spool()
            return
        producer = self._ensure_producer()
        # Everything drained goes to librdkafka; should the broker go away meanwhile,
        # the next step purges it all into the spool in order.
        for key, value, count in self._messages():
            self._produce(producer, key, value, count)
        producer.poll(0)

    def _messages(self) -> Iterator[tuple[bytes, bytes, int]]:
        """Drain the queue into (key, value, event count) messages, one envelope per task."""
        by_task: dict[str, _Bucket] = {}
        queue, envelope_max = self._queue, self._envelope_max
        part: _Part
        # up to 50,000 at a time (what the call site adds meanwhile waits for the next step)
        drained = [queue.popleft() for _ in range(min(len(queue), 50_000))]
        for pending, ts in zip(drained, _timestamps([p[1] for p in drained]), strict=True):
            recorded = pending[0] == "task-call"  # the usual: TaskContext.record's
            call = self._task_call_doc(ts, pending[2]) if recorded else None
            if call is not None:
                key, part = call.task_id, call
            else:
                prepared = self._prepare(pending)
                if prepared is None:
                    continue
                key, part = prepared
            bucket = by_task.get(key)
            if bucket is None:
                by_task[key] = bucket = ([], [])
            bucket[0].append(part)
            bucket[1].append(pending)
            if len(bucket[0]) >= envelope_max:
                message = self._envelope(key, *bucket)
                if message is not None:
                    yield message
                by_task[key] = ([], [])
        for key, bucket in by_task.items():  # dicts keep insertion order: first task first
            if bucket[0]:
                message = self._envelope(key, *bucket)
                if message is not None:
                    yield message

    def _prepare(self, pending: _Pending) -> tuple[str, _Part] | None:
        """(key, the event) for what :meth:`_task_call_doc` did not take: its values' JSON,
        to be checked with its envelope, or the models' JSON of it when they had to decide
        now. None: invalid (logged and counted)."""
        kind, at, values = pending
        if kind in ("call", "outcome") and values.keys() <= _KNOWN_FIELDS[kind]:
            doc = self._values_doc(kind, at, values)
            if doc is not None:
                try:
                    return doc["task_id"], msgspec.Raw(orjson.dumps(doc, option=_JSON_OPTIONS))
                except TypeError:  # a value JSON cannot hold: the models decide
                    pass
        event = self._build(kind, at, values)
        if event is None:
            return None
        key = event.task if isinstance(event, CallEvent) else event.task_id
        return key, msgspec.Raw(self._encode(event))

    def _envelope(
        self, key: str, parts: list[_Part | None], pendings: list[_Pending]
    ) -> tuple[bytes, bytes, int] | None:
        """One message of a task, written once and checked whole by the contract's fast path
        (:func:`~tokengov.core.decoding.check_message` on its bytes, or, for recorded calls
        alone, :func:`~tokengov.core.decoding.check_calls` on the values written); the events it is not sure
        about go one by one through the models, which keep the valid ones and name the field
        at fault in the others."""
        slow: Any = None
        try:
            raw = _ENCODER.encode(parts if len(parts) > 1 else parts[0])
            slow = self._check(parts, raw)
        except (TypeError, ValueError):  # a value JSON cannot hold: the models decide each
            pass
        if slow == []:
            return key.encode(), raw, len(parts)
        for index in range(len(parts)) if slow is None else slow:
            event = self._build(*pendings[index])
            parts[index] = None if event is None else msgspec.Raw(self._encode(event))
        kept = [part for part in parts if part is not None]
        if not kept:
            return None
        return key.encode(), _ENCODER.encode(kept if len(kept) > 1 else kept[0]), len(kept)

    @staticmethod
    def _check(parts: list[_Part | None], raw: bytes) -> list[int] | None:
        """The contract's fast path on a message: the recorded calls on the values written
        (:func:`~tokengov.core.decoding.check_calls`, which also refuses a float JSON would
        write as null), the others (already the models' JSON, or the values') on their bytes
        (:func:`~tokengov.core.decoding.check_message`). The indexes the models must decide;
        None: all of them."""
        calls = [i for i, part in enumerate(parts) if type(part) is _CallDoc]
        if len(calls) == len(parts):
            return check_calls(list(map(msgspec.structs.astuple, parts)), raw)  # type: ignore[arg-type]
        slow = [i for i, part in enumerate(parts) if type(part) is not _CallDoc]
        if len(raw) > MAX_MESSAGE_BYTES:
            return None
        slow = [i for i in slow if check_message(bytes(parts[i])) != []]  # type: ignore[arg-type]
        if calls:
            slow_calls = check_calls([msgspec.structs.astuple(parts[i]) for i in calls], raw)  # type: ignore[arg-type]
            slow += range(len(calls)) if slow_calls is None else [calls[i] for i in slow_calls]
        return sorted(slow)

    def _task_call_doc(self, ts: datetime, values: _Recorded) -> _CallDoc | None:
        """The call :meth:`TaskContext.record` captured, as the models would write it; None
        when only the models can tell (a reported cost, a task id that is not text, a usage
        payload the readers refuse)."""
        (
            team,
            workflow,
            task_id,
            agent,
            parent,
            step,
            attempt,
            provider,
            model,
            usage,
            components,
            tool_calls,
            tool_name,
            latency_ms,
            status,
            cost_usd,
            context_window,
            service_tier,
        ) = msgspec.structs.astuple(values)
        # A float anywhere (NaN, which JSON writes as null, included) is refused by
        # check_calls, which judges these values as they are: the models then decide.
        if cost_usd is not None or type(task_id) is not str:
            return None
        try:
            tokens, usage_tier, missing = read_usage_counts(str(provider or "unknown"), usage)
        except (ContractError, TypeError, ValueError):
            return None  # the models' path says why
        if not components:
            parts = _NO_COMPONENTS
        elif type(components) is dict:
            # in the models' order, 0 where not given; a part the contract does not know
            # stays, for check_calls to refuse and the models to name
            parts = {**_NO_COMPONENTS, **components}
        else:
            return None
        if service_tier is None:
            service_tier = usage_tier
        return _CallDoc(
            SCHEMA_VERSION,
            next(self._ids),
            ts,
            UNATTRIBUTED if team is None or (type(team) is str and not team.strip()) else team,
            UNATTRIBUTED
            if workflow is None or (type(workflow) is str and not workflow.strip())
            else workflow,
            task_id,
            agent,
            parent,
            step,
            provider,
            model,
            # a dict is the readers' six counts; a TokenCounts (given, or a span's) is not
            tokens if type(tokens) is dict else _tokens_doc(tokens),
            parts,
            attempt,
            tool_calls,
            tool_name,
            latency_ms,
            status,
            None,
            context_window,
            service_tier,
            missing,
        )

    def _values_doc(self, kind: str, at: float, values: dict[str, Any]) -> dict[str, Any] | None:
        """A call or outcome given as values (:meth:`emit_call`, :meth:`emit_outcome`), as the
        models would write it; None when only the models can tell."""
        doc = dict(values)
        for value in doc.values():
            if type(value) is float and kind == "call":
                return None  # NaN would be written as null; 3.0 for an int is the models' call
        if kind == "call":
            if "usage" in doc:
                try:
                    tokens, usage_tier, missing = read_usage_counts(
                        str(doc.get("provider") or "unknown"), doc.pop("usage")
                    )
                except (ContractError, TypeError, ValueError):
                    return None
                doc["tokens"] = tokens
                if missing:
                    doc["usage_missing"] = True
                if doc.get("service_tier") is None and usage_tier is not None:
                    doc["service_tier"] = usage_tier
            given, components = doc.get("tokens", _NO_TOKENS), doc.get("components", {})
            if type(given) is dict or isinstance(given, TokenCounts):
                doc["tokens"] = _tokens_doc(given)
            else:
                return None
            if doc.get("cost_usd") is not None or type(components) is not dict:
                return None
            doc["components"] = {**_NO_COMPONENTS, **components}
        else:
            quality = doc.get("quality")
            if type(quality) is float and not math.isfinite(quality):
                return None
        event_id = doc.setdefault("event_id", new_event_id())
        if "ts" not in doc:
            doc["ts"] = datetime.fromtimestamp(at, UTC)
        elif type(doc["ts"]) is not str:
            return None  # a datetime: the models check its zone and range
        task_id = doc.get("task_id")
        if task_id is None and kind == "call":
            task_id = doc["task_id"] = event_id
        if type(task_id) is not str:
            return None
        for name in ("team", "workflow"):
            doc[name] = _attribution(doc.get(name))
        return {**_DEFAULTS[kind], **doc}

    @staticmethod
    def _encode(event: CallEvent | Outcome) -> bytes:
        return event.__pydantic_serializer__.to_json(event)

    def _build(self, kind: str, at: float, values: Any) -> CallEvent | Outcome | None:
        try:
            if kind == "model":
                if not isinstance(values, CallEvent | Outcome):
                    raise ContractError(
                        f"expected CallEvent or Outcome, got {type(values).__name__}"
                    )
                return values
            if kind == "task-call":
                doc = msgspec.structs.asdict(values)
                kind = "call"
            else:
                doc = dict(values)
            doc.setdefault("event_id", new_event_id())
            doc.setdefault("ts", datetime.fromtimestamp(at, UTC))
            if kind == "call":
                if "usage" in doc:  # None, a response, its usage: never a silent zero
                    usage = read_usage(str(doc.get("provider") or "unknown"), doc.pop("usage"))
                    doc["tokens"] = usage.tokens
                    if usage.missing:
                        doc["usage_missing"] = True
                    if doc.get("service_tier") is None and usage.service_tier is not None:
                        doc["service_tier"] = usage.service_tier
                return CallEvent.model_validate(doc)
            return Outcome.model_validate(doc)
        except ValidationError as exc:
            self._invalid(describe_validation_error(exc))
        except (ContractError, TypeError, ValueError) as exc:
            self._invalid(f"{type(exc).__name__}: {exc}")
        return None

    def _invalid(self, reason: str) -> None:
        self.stats.invalid += 1
        log.warning("tokengov emitter: event not sent, it breaks the contract: %s", reason)

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer({**self._config, "error_cb": self._on_error})
        return self._producer

    def _on_error(self, err: KafkaError) -> None:
        # Connection trouble alone is not a reason to spool (brokers close idle connections
        # and librdkafka reconnects): messages that cannot be delivered within
        # message.timeout.ms fail in order and are spooled then. A fatal error is.
        if err.fatal():
            log.warning("tokengov emitter: %s; spooling to %s", err.str(), self._spool.directory)
            self._unhealthy = True
        else:
            _rdkafka_log.debug("librdkafka: %s", err.str())

    def _produce(self, producer: Producer, key: bytes, value: bytes, count: int) -> None:
        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                self.stats.delivered += count
            else:
                # Purged or timed out: it goes to the spool, in the order librdkafka reports.
                self._spool.append(key, value)
                self.stats.spooled += count
                if not self._delivery_failed and not self._spooling:
                    log.warning("tokengov emitter: delivery failed (%s); spooling", err.str())
                self._delivery_failed = True

        while True:
            try:
                producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
                self.stats.produced += count
                return
            except BufferError:
                producer.poll(0.05)  # librdkafka's own queue is full: let it drain
            except KafkaException as exc:
                log.warning("tokengov emitter: produce failed (%s); spooling", exc)
                self._enter_spooling(str(exc))
                self._spool.append(key, value)
                self.stats.spooled += count
                return

    def _enter_spooling(self, why: str) -> None:
        """Move everything librdkafka still holds to the spool, in order, and spool from now on."""
        self._spooling = True
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaException):
                producer.purge(in_queue=True, in_flight=True, blocking=True)
            deadline = time.monotonic() + 5
            while len(producer) and time.monotonic() < deadline:
                producer.poll(0.05)
        self._spool.seal()
        self._unhealthy = False
        self._delivery_failed = False
        log.info(
            "tokengov emitter spooling (%s); %d message(s) on disk",
            why,
            self._spool.pending_messages,
        )

    def _drain_to_spool(self) -> None:
        for key, value, count in self._messages():
            self._spool.append(key, value)
            self.stats.spooled += count
        self._spool.seal()

    def _broker_ready(self, producer: Producer) -> bool:
        try:
            metadata = producer.list_topics(self.topic, timeout=1.0)
        except KafkaException:
            return False
        topic = metadata.topics.get(self.topic)
        return (
            bool(metadata.brokers)
            and topic is not None
            and topic.error is None
            and bool(topic.partitions)
        )

    def _try_replay(self) -> None:
        """Replay the spool oldest first; back to direct sending when it is empty."""
        self._drain_to_spool()
        producer = Producer({**self._config, "error_cb": self._on_error})
        self.stats.probes += 1
        if not self._broker_ready(producer):
            producer.flush(0)
            return
        self._unhealthy = False
        for segment in self._spool.segments():
            lines = list(self._spool.read(segment))
            failed = 0
            delivered = 0

            def on_delivery(err: KafkaError | None, _msg: Any) -> None:
                nonlocal failed, delivered
                if err is None:
                    delivered += 1
                else:
                    failed += 1

            for key, value in lines:
                while True:
                    try:
                        producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.flush(self._config["message.timeout.ms"] / 1000 + 5)
            if failed or delivered < len(lines):
                log.warning(
                    "tokengov emitter: replay of %s incomplete (%d/%d delivered); will retry",
                    segment.name,
                    delivered,
                    len(lines),
                )
                self._unhealthy = False
                return
            self._spool.remove(segment, len(lines))
            self.stats.replayed += len(lines)
            log.info("tokengov emitter: replayed %d message(s) from %s", len(lines), segment.name)
        self._producer = producer
        self._spooling = False
        log.info("tokengov emitter: spool empty, sending directly again")

    def _shutdown(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        if self._spooling:
            self._try_replay()
        while self._queue and not self._spooling:
            self._step()
        if self._spooling:
            self._drain_to_spool()
            return
        producer = self._producer
        if producer is not None:
            producer.flush(max(0.0, deadline - time.monotonic()))
            if len(producer) or self._delivery_failed:
                self._enter_spooling("close() timed out before the broker took everything")
        self._drain_to_spool()
        self._spool.seal()


@dataclass
class _TaskState:
    """What every agent's view of one task shares."""

    step: int = 0
    attempt: int = 1
    outcome: tuple[str, float | None] | None = None
    done: bool = False


class TaskContext:
    """One task as an agent sees it: ``with emitter.task(...) as task: task.record(...)``.

    ``record`` stamps ``task_id``, ``step`` (advanced per call, kept for a
    retry), ``attempt``, ``agent`` and ``parent_agent``. ``handoff(agent)``
    returns a view for the agent that received the task. On exit the outcome is
    emitted once: the one set with :meth:`outcome`, else ``success``, or
    ``failure`` when the block raised (``abandoned`` for a paused task).
    """

    def __init__(
        self,
        emitter: TokenEmitter,
        *,
        team: str | None,
        workflow: str | None,
        task_id: str,
        agent: str,
        provider: str,
        parent_agent: str | None = None,
        _shared: _TaskState | None = None,
    ) -> None:
        self.emitter = emitter
        self.team = team
        self.workflow = workflow
        self.task_id = task_id
        self.agent = agent
        self.provider = provider
        self.parent_agent = parent_agent
        self._shared = _shared if _shared is not None else _TaskState()

    @property
    def step(self) -> int:
        return self._shared.step

    def handoff(self, agent: str) -> TaskContext:
        """The task as seen by ``agent``, which receives it from this context's agent."""
        return TaskContext(
            self.emitter,
            team=self.team,
            workflow=self.workflow,
            task_id=self.task_id,
            agent=agent,
            provider=self.provider,
            parent_agent=self.agent,
            _shared=self._shared,
        )

    def before_call(self) -> Any:
        """Ask the guard (if the emitter has one) whether to proceed: may sleep (throttle),
        return a fallback model, or raise ``TaskPaused``."""
        guard = self.emitter.guard
        if guard is None:
            return None
        return guard.before_call(self.task_id, workflow=self.workflow, team=self.team)

    def record(
        self,
        usage: TokenCounts | Mapping[str, Any] | Any,
        *,
        model: str,
        provider: str | None = None,
        components: Components | Mapping[str, int] | None = None,
        retry: bool = False,
        tool_calls: int = 0,
        tool_name: str | None = None,
        latency_ms: int | None = None,
        status: str = "ok",
        cost_usd: Decimal | None = None,
        context_window: int | None = None,
        step: int | None = None,
        attempt: int | None = None,
        service_tier: str | None = None,
    ) -> None:
        """Record one model call. ``retry=True`` marks another attempt of the last step.

        ``usage`` is the response itself (an OpenAI ``ChatCompletion``/``Response``, an
        Anthropic ``Message``, their JSON), its ``usage``, OpenTelemetry span attributes or
        :class:`TokenCounts`; the service tier is read from the response unless given. None,
        or a response without usage (a stream without ``include_usage``), records the call
        with ``usage_missing``: counted and alerted as such, never as a free call."""
        shared = self._shared
        if step is not None:
            shared.step, shared.attempt = step, attempt or 1
        elif retry:
            shared.attempt += 1
        else:
            shared.step += 1
            shared.attempt = 1
        if attempt is not None:
            shared.attempt = attempt
        emitter = self.emitter
        if emitter._closed or len(emitter._queue) >= emitter._max_queue:
            emitter._overflow()
            return
        emitter._queue.append(
            (
                "task-call",
                time.time(),
                _Recorded(
                    self.team,
                    self.workflow,
                    self.task_id,
                    self.agent,
                    self.parent_agent,
                    shared.step,
                    shared.attempt,
                    provider or self.provider,
                    model,
                    usage,
                    components or {},
                    tool_calls,
                    tool_name,
                    latency_ms,
                    status,
                    cost_usd,
                    context_window,
                    service_tier,
                ),
            )
        )
        emitter.stats.accepted += 1

    def outcome(self, status: str, quality: float | None = None) -> None:
        """Set how the task ended; emitted when the context exits."""
        self._shared.outcome = (status, quality)

    def __enter__(self) -> TaskContext:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if self._shared.done:
            return
        self._shared.done = True
        chosen = self._shared.outcome
        if chosen is None:
            if exc_type is None:
                chosen = ("success", None)
            elif exc_type.__name__ == "TaskPaused":
                chosen = ("abandoned", None)
            else:
                chosen = ("failure", None)
        status, quality = chosen
        self.emitter.emit_outcome(
            team=self.team,
            workflow=self.workflow,
            task_id=self.task_id,
            status=status,
            quality=quality,
        )
