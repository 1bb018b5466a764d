"""OTLP spans → call events: the GenAI model-call spans of one request, attributed.

One pass over a request (:meth:`SpanConverter.convert`):

- every span's parent link is kept (two ids), so that a model-call span finds its agent and
  the agent that handed off to it up the span tree, through spans of any kind;
- a span is a GenAI span when it carries ``gen_ai.operation.name``, ``gen_ai.provider.name``
  or ``gen_ai.system``; any other span is ignored there (of its attributes only the names
  below are taken, in the one pass that looks for those);
- of a GenAI span only the attributes tokengov uses are read (:data:`READ_PREFIX`,
  the names of :data:`~tokengov.producers.adapters.OTEL_ATTRIBUTES` and the policy's
  attribution names), never its events nor content attributes (:func:`is_content`);
- :func:`~tokengov.producers.adapters.from_otel_span` (the one span reader) says whether it
  is a model call (``invoke_agent``, ``execute_tool`` … spans are not counted again) and
  reads model, provider, usage and status; the span adds latency (end − start), time (its
  end), its status code, its ``execute_tool`` children (tool calls) and its ids;
- attribution follows the policy's ``otlp:`` section (:class:`OtlpAttribution`): span
  attributes first, then those of the GenAI spans above it (an ``invoke_agent`` span may
  carry the conversation id), then resource attributes; the task defaults to the trace id;
- the event id is ``otel-<trace id>-<span id>``: an export sent twice counts once;
- the events are the contract's JSON documents, put in envelopes per task and checked by
  the one decoder (:func:`~tokengov.core.decoding.decode_events`, the rules every consumer
  of ``tokengov.events`` applies) before anything is produced.

A span that cannot become a valid event is rejected with the reason (the receiver answers
``partial_success`` and dead-letters it as :func:`span_document` shows it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tokengov.core.contracts import SCHEMA_VERSION, UNATTRIBUTED
from tokengov.core.decoding import decode_events
from tokengov.core.errors import ContractError
from tokengov.core.policy import OtlpAttribution
from tokengov.producers.adapters import OTEL_ATTRIBUTES, from_otel_span

__all__ = [
    "CONTENT_ATTRIBUTES",
    "ENVELOPE_MAX_EVENTS",
    "Conversion",
    "Rejected",
    "SpanConverter",
    "is_content",
    "span_document",
]

_OPERATION: Final = OTEL_ATTRIBUTES["GEN_AI_OPERATION_NAME"]
_PROVIDER: Final = OTEL_ATTRIBUTES["GEN_AI_PROVIDER_NAME"]
_SYSTEM: Final = OTEL_ATTRIBUTES["GEN_AI_SYSTEM"]
_AGENT_NAME: Final = OTEL_ATTRIBUTES["GEN_AI_AGENT_NAME"]
_AGENT_ID: Final = OTEL_ATTRIBUTES["GEN_AI_AGENT_ID"]
_TOOL_NAME: Final = OTEL_ATTRIBUTES["GEN_AI_TOOL_NAME"]
_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
_SERVICE_NAME: Final = "service.name"
_GENAI_MARKERS: Final = frozenset((_OPERATION, _PROVIDER, _SYSTEM))
#: Every attribute starting so is read (the usage counts, in any spelling).
READ_PREFIX: Final = "gen_ai.usage."
_READ: Final = frozenset((*OTEL_ATTRIBUTES.values(), _FINISH_REASONS))
_AGENT_OPERATIONS: Final = frozenset(("invoke_agent", "create_agent"))
_TOOL_FINISH: Final = frozenset(("tool_calls", "tool_use", "function_call"))
_MAX_DEPTH: Final = 64
#: Events in one envelope at most (200 call events are ~150 KiB).
ENVELOPE_MAX_EVENTS: Final = 200
_STATUS_ERROR: Final = Status.STATUS_CODE_ERROR

#: Attributes that carry message content (semantic conventions and older instrumentations):
#: never read into events, logs or dead letters.
CONTENT_ATTRIBUTES: Final = frozenset(
    (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
    )
)
_CONTENT_WORDS: Final = (
    "prompt",
    "completion",
    "message",
    "content",
    "instruction",
    "argument",
    "result",
    "input.value",
    "output.value",
    "entity.input",
    "entity.output",
)


def is_content(key: str) -> bool:
    """Whether an attribute may carry prompt or completion text (then it is never read).
    Token counts (``gen_ai.usage.*``, ``*_tokens``) are not content, whatever their name."""
    if key.startswith(READ_PREFIX) or key.endswith("_tokens"):
        return False
    if key in CONTENT_ATTRIBUTES:
        return True
    lowered = key.lower()
    return any(word in lowered for word in _CONTENT_WORDS)


_SCALARS: Final = frozenset(("string_value", "int_value", "double_value", "bool_value"))


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(v, kind)
    if kind == "array_value":
        items = []
        for item in v.array_value.values:
            inner = item.WhichOneof("value")
            items.append(getattr(item, inner) if inner in _SCALARS else _value(item))
        return items
    return None  # kvlist and bytes values: tokengov reads none


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text.strip() or None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A span that could not become an event: why, and its document (no content)."""

    reason: str
    document: bytes
    trace_id: str
    span_id: str


@dataclass(slots=True)
class Conversion:
    """What one request became: its events (the contract's JSON documents) by task in span
    order, the same as messages for ``tokengov.events`` (``envelopes``: task key and value,
    each checked by the one decoder), the rejected spans, and how many spans were not
    counted (``ignored``: not GenAI; ``aggregate``: agent/workflow/tool spans whose model
    calls are spans of their own)."""

    by_task: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    envelopes: list[tuple[str, bytes]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    spans: int = 0
    ignored: int = 0
    aggregate: int = 0

    @property
    def events(self) -> int:
        return sum(len(events) for events in self.by_task.values())


@lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _iso_time(unix_nano: int) -> str:
    """``datetime.fromtimestamp(unix_nano / 1e9, UTC)`` in ISO 8601 with microseconds and
    ``Z``, exactly (the same float, rounded half to even as CPython rounds it), with the
    formatting of each second done once (spans of a request end within a few seconds)."""
    fraction, whole = math.modf(unix_nano / 1e9)
    second, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_iso_second(second)}.{micros:06d}Z"


def _encode(docs: list[dict[str, Any]]) -> bytes:
    """One event as an object, several as a batch envelope (as ``encode_events`` does)."""
    return orjson.dumps(docs[0] if len(docs) == 1 else docs)


def _attributes(kvs: Iterable[KeyValue], wanted: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        key = kv.key
        if key in wanted or key.startswith(READ_PREFIX):
            value = kv.value
            kind = value.WhichOneof("value")  # _value, inlined for the scalars
            out[key] = getattr(value, kind) if kind in _SCALARS else _value(value)
    return out


def span_document(span: Span, resource: Iterable[KeyValue]) -> bytes:
    """A span as JSON for a dead letter: ids (hex), name, times, status and its attributes
    and its resource's, content attributes left out (:func:`is_content`)."""

    def safe(kvs: Iterable[KeyValue]) -> dict[str, Any]:
        return {kv.key: _value(kv.value) for kv in kvs if not is_content(kv.key)}

    doc = {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "kind": span.kind,
        "start_time_unix_nano": str(span.start_time_unix_nano),
        "end_time_unix_nano": str(span.end_time_unix_nano),
        "status_code": span.status.code,
        "attributes": safe(span.attributes),
        "resource": safe(resource),
    }
    return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)


@dataclass(frozen=True, slots=True)
class _Inherited:
    values: dict[str, str]
    agents: list[str]
    service: str | None


@dataclass(slots=True)
class _GenAiSpan:
    span: Span
    attributes: dict[str, Any]
    resource: dict[str, Any]
    resource_kvs: Any


class SpanConverter:
    """Turns requests into call events under one attribution policy (swap it with
    :meth:`use`). ``owner_team(workflow)`` gives the team of a workflow's cost profile."""

    def __init__(
        self,
        attribution: OtlpAttribution,
        owner_team: Callable[[str], str | None] = lambda _workflow: None,
    ) -> None:
        self.use(attribution, owner_team)

    def use(
        self,
        attribution: OtlpAttribution,
        owner_team: Callable[[str], str | None] = lambda _workflow: None,
    ) -> None:
        self.attribution = attribution
        self._owner_team = owner_team
        names = {*attribution.task_id, *attribution.workflow, *attribution.team}
        # a content attribute is never read, even when the policy names it
        names = {name for name in names if not is_content(name)}
        self._span_keys = _READ | names
        self._resource_keys = frozenset({*names, _SERVICE_NAME})
        self._attribution_keys = tuple(sorted(names))

        def readable(keys: list[str]) -> tuple[str, ...]:
            return tuple(key for key in keys if key in names)

        self._task_keys = readable(attribution.task_id)
        self._workflow_keys = readable(attribution.workflow)
        self._team_keys = readable(attribution.team)

    # -- attribution and the span tree ------------------------------------------------

    def _inherited(
        self,
        parent: bytes,
        resource: Mapping[str, Any],
        parents: Mapping[bytes, bytes],
        genai: Mapping[bytes, dict[str, Any]],
    ) -> _Inherited:
        """What a span under ``parent`` inherits: each attribution name's value on the
        nearest GenAI span above it that has one (an ``invoke_agent`` span often carries the
        conversation id), else on the resource; and the agents above it, nearest first."""
        ancestors: list[dict[str, Any]] = []
        current, seen = parent, 0
        while current and seen < _MAX_DEPTH:
            found = genai.get(current)
            if found is not None:
                ancestors.append(found)
            current = parents.get(current, b"")
            seen += 1
        values: dict[str, str] = {}
        for key in self._attribution_keys:
            for source in (*ancestors, resource):
                text = _text(source.get(key))
                if text is not None:
                    values[key] = text
                    break
        agents: list[str] = []
        for attributes in ancestors:
            if _text(attributes.get(_OPERATION)) not in _AGENT_OPERATIONS:
                continue
            name = _text(attributes.get(_AGENT_NAME)) or _text(attributes.get(_AGENT_ID))
            if name is not None and name not in agents:
                agents.append(name)
        service = _text(resource.get(_SERVICE_NAME))
        return _Inherited(values, agents, service)

    @staticmethod
    def _first(keys: tuple[str, ...], own: Mapping[str, Any], inherited: _Inherited) -> str | None:
        for key in keys:
            value = own.get(key)
            text = (_text(value) if value is not None else None) or inherited.values.get(key)
            if text is not None:
                return text
        return None

    def _attribute(
        self, fields: dict[str, Any], own: Mapping[str, Any], inherited: _Inherited, trace: str
    ) -> None:
        a = self.attribution
        task = self._first(self._task_keys, own, inherited)
        if task is None and a.task_from_trace:
            task = trace
        workflow = self._first(self._workflow_keys, own, inherited)
        team = self._first(self._team_keys, own, inherited)
        if team is None and inherited.service is not None:
            team = a.service_teams.get(inherited.service)
        if team is None and workflow is not None:
            team = self._owner_team(workflow)
        fields["task_id"], fields["workflow"], fields["team"] = task, workflow, team
        # the agent: the span's own agent attributes, else the nearest agent span above it;
        # the parent agent: the next agent above that one (the one that handed off to it)
        agent = fields.pop("agent", None)
        parent_agent = None
        for name in inherited.agents:
            if agent is None:
                agent = name
            elif name != agent:
                parent_agent = name
                break
        if agent is not None:
            fields["agent"] = agent
        fields["parent_agent"] = parent_agent

    # -- the request ------------------------------------------------------------------

    def convert(self, request: ExportTraceServiceRequest) -> Conversion:
        out = Conversion()
        parents: dict[bytes, bytes] = {}
        genai: dict[bytes, dict[str, Any]] = {}
        tools: dict[bytes, list[str | None]] = {}
        calls: list[_GenAiSpan] = []
        spans = ignored = 0
        span_keys = self._span_keys
        for resource_spans in request.resource_spans:
            resource_kvs = resource_spans.resource.attributes
            resource: dict[str, Any] | None = None
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans += 1
                    span_id, parent = span.span_id, span.parent_span_id
                    if parent:
                        parents[span_id] = parent
                    # one pass over the attributes: only the names tokengov reads are
                    # taken, so a span of another kind yields (almost) nothing
                    attributes = _attributes(span.attributes, span_keys)
                    if _GENAI_MARKERS.isdisjoint(attributes):
                        ignored += 1
                        continue
                    if resource is None:
                        resource = _attributes(resource_kvs, self._resource_keys)
                    genai[span_id] = attributes
                    if attributes.get(_OPERATION) == "execute_tool" and parent:
                        tools.setdefault(parent, []).append(_text(attributes.get(_TOOL_NAME)))
                    calls.append(_GenAiSpan(span, attributes, resource, resource_kvs))
        out.spans, out.ignored = spans, ignored
        inherited: dict[tuple[bytes, int], _Inherited] = {}
        traces: dict[bytes, str] = {}
        pending: dict[str, list[tuple[dict[str, Any], _GenAiSpan]]] = {}
        for g in calls:
            parent = g.span.parent_span_id
            key = (parent, id(g.resource))
            context = inherited.get(key)
            if context is None:
                context = inherited[key] = self._inherited(parent, g.resource, parents, genai)
            self._one(g, out, context, tools, traces, pending)
        self._seal(out, pending)
        return out

    def _seal(
        self, out: Conversion, pending: dict[str, list[tuple[dict[str, Any], _GenAiSpan]]]
    ) -> None:
        """Envelopes per task, each checked by the one decoder (the rules every consumer of
        ``tokengov.events`` applies): an event it refuses is its span's rejection."""
        for task, items in pending.items():
            for first in range(0, len(items), ENVELOPE_MAX_EVENTS):
                chunk = items[first : first + ENVELOPE_MAX_EVENTS]
                docs = [doc for doc, _ in chunk]
                value = _encode(docs)
                decoded = decode_events(value)
                if decoded.failures:
                    whole = next((f.reason for f, _ in decoded.failures if f.index is None), None)
                    if len(chunk) == 1 or whole is not None:
                        bad = dict.fromkeys(range(len(chunk)), whole or "")
                        for failure, _ in decoded.failures:
                            bad[failure.index or 0] = failure.reason
                    else:
                        bad = {
                            f.index: f.reason for f, _ in decoded.failures if f.index is not None
                        }
                    kept = []
                    for index, (doc, g) in enumerate(chunk):
                        if index in bad:
                            self._reject(out, g, bad[index])
                        else:
                            kept.append(doc)
                    if not kept:
                        continue
                    docs, value = kept, _encode(kept)
                out.envelopes.append((task, value))
                out.by_task.setdefault(task, []).extend(docs)

    def _reject(self, out: Conversion, g: _GenAiSpan, reason: str) -> None:
        out.rejected.append(
            Rejected(
                reason=reason,
                document=span_document(g.span, g.resource_kvs),
                trace_id=g.span.trace_id.hex(),
                span_id=g.span.span_id.hex(),
            )
        )

    def _one(
        self,
        g: _GenAiSpan,
        out: Conversion,
        inherited: _Inherited,
        tools: Mapping[bytes, list[str | None]],
        traces: dict[bytes, str],
        pending: dict[str, list[tuple[dict[str, Any], _GenAiSpan]]],
    ) -> None:
        try:
            fields = from_otel_span(g.attributes).call_fields()
        except ContractError as exc:
            self._reject(out, g, str(exc))
            return
        if fields is None:  # not a model call: its model calls are spans of their own
            out.aggregate += 1
            return
        span = g.span
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if not end:
            self._reject(out, g, "end_time_unix_nano: not set (the span has not ended)")
            return
        if end < start:
            self._reject(
                out,
                g,
                f"end_time_unix_nano ({end}) is before start_time_unix_nano ({start})",
            )
            return
        trace_id = span.trace_id
        trace = traces.get(trace_id)
        if trace is None:
            trace = traces[trace_id] = trace_id.hex()
        self._attribute(fields, g.attributes, inherited, trace)
        span_id = span.span_id
        children = tools.get(span_id)
        if children:
            fields["tool_calls"] = len(children)
            named = [name for name in children if name]
            if named and "tool_name" not in fields:
                fields["tool_name"] = named[-1]
        else:
            reasons = g.attributes.get(_FINISH_REASONS)
            if isinstance(reasons, list) and not _TOOL_FINISH.isdisjoint(reasons):
                fields["tool_calls"] = 1  # at least one; how many is only in the content
        if fields["status"] == "ok" and span.status.code == _STATUS_ERROR:
            fields["status"] = "error"
        fields["latency_ms"] = (end - start) // 1_000_000
        try:
            ts = _iso_time(end)
        except (OverflowError, OSError, ValueError) as exc:
            self._reject(out, g, f"end_time_unix_nano ({end}): not a time ({exc})")
            return
        event_id = f"otel-{trace}-{span_id.hex()}"
        tokens = fields.pop("tokens")
        doc = {
            "kind": "call",
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id,
            "ts": ts,
            **fields,
            "team": fields["team"] or UNATTRIBUTED,
            "workflow": fields["workflow"] or UNATTRIBUTED,
            "tokens": {
                "input": tokens.input,
                "output": tokens.output,
                "cached_input": tokens.cached_input,
                "cache_write": tokens.cache_write,
                "cache_write_1h": tokens.cache_write_1h,
                "reasoning": tokens.reasoning,
            },
        }
        task = fields["task_id"]
        if task is None:
            del doc["task_id"]  # the event is its own task
            task = event_id
        pending.setdefault(task, []).append((doc, g))
