"""OTLP spans → call events: the GenAI model-call spans of one request, attributed.

One pass over a request (:meth:`SpanConverter.convert`):

- every span's parent link is kept (two ids), so that a model-call span finds its agent and
  the agent that handed off to it up the span tree, through spans of any kind;
- a span is a GenAI span when it carries ``gen_ai.operation.name``, ``gen_ai.provider.name``
  or ``gen_ai.system``; any other span is ignored there, its attributes not read further;
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
- the event id is ``otel-<trace id>-<span id>``: an export sent twice counts once.

A span that cannot become a valid event is rejected with the reason (the receiver answers
``partial_success`` and dead-letters it as :func:`span_document` shows it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from tokengov.core.contracts import CallEvent, describe_validation_error
from tokengov.core.errors import ContractError
from tokengov.core.policy import OtlpAttribution
from tokengov.producers.adapters import OTEL_ATTRIBUTES, from_otel_span

__all__ = [
    "CONTENT_ATTRIBUTES",
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


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [_value(item) for item in v.array_value.values]
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
    """What one request became: events by task (in span order), rejected spans, and how
    many spans were not counted (``ignored``: not GenAI; ``aggregate``: agent/workflow/tool
    spans whose model calls are spans of their own)."""

    by_task: dict[str, list[CallEvent]] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    spans: int = 0
    ignored: int = 0
    aggregate: int = 0

    @property
    def events(self) -> int:
        return sum(len(events) for events in self.by_task.values())


def _attributes(kvs: Iterable[KeyValue], wanted: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        key = kv.key
        if key in wanted or key.startswith(READ_PREFIX):
            out[key] = _value(kv.value)
    return out


def _is_genai(kvs: Iterable[KeyValue]) -> bool:
    return any(kv.key in _GENAI_MARKERS for kv in kvs)


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

    # -- attribution ------------------------------------------------------------------

    def _first(self, keys: Iterable[str], *sources: Mapping[str, Any]) -> str | None:
        for key in keys:
            for source in sources:
                text = _text(source.get(key))
                if text is not None:
                    return text
        return None

    def _attribution(
        self, g: _GenAiSpan, ancestors: list[Mapping[str, Any]], trace_hex: str
    ) -> dict[str, Any]:
        """Each name is looked up on the span, then on the GenAI spans above it (nearest
        first: an ``invoke_agent`` span often carries the conversation id), then on the
        resource."""
        a = self.attribution
        sources = (g.attributes, *ancestors, g.resource)
        task = self._first(a.task_id, *sources)
        if task is None and a.task_from_trace:
            task = trace_hex
        workflow = self._first(a.workflow, *sources)
        team = self._first(a.team, *sources)
        if team is None:
            service = _text(g.resource.get(_SERVICE_NAME))
            if service is not None:
                team = a.service_teams.get(service)
        if team is None and workflow is not None:
            team = self._owner_team(workflow)
        return {"task_id": task, "workflow": workflow, "team": team}

    # -- the span tree ----------------------------------------------------------------

    @staticmethod
    def _ancestors(
        span: Span, parents: Mapping[bytes, bytes], genai: Mapping[bytes, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The attributes read of the GenAI spans above ``span`` (nearest first), found
        through spans of any kind."""
        out: list[dict[str, Any]] = []
        current, seen = span.parent_span_id, 0
        while current and seen < _MAX_DEPTH:
            found = genai.get(current)
            if found is not None:
                out.append(found)
            current = parents.get(current, b"")
            seen += 1
        return out

    @staticmethod
    def _agents(
        own: str | None, ancestors: list[dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        """The agent that made the call (its own agent attributes, else the nearest agent
        span above it) and the agent above that one (the one that handed off to it)."""
        agent, parent_agent = own, None
        for attributes in ancestors:
            if _text(attributes.get(_OPERATION)) not in _AGENT_OPERATIONS:
                continue
            name = _text(attributes.get(_AGENT_NAME)) or _text(attributes.get(_AGENT_ID))
            if name is None:
                continue
            if agent is None:
                agent = name
            elif name != agent:
                parent_agent = name
                break
        return agent, parent_agent

    # -- the request ------------------------------------------------------------------

    def convert(self, request: ExportTraceServiceRequest) -> Conversion:
        out = Conversion()
        parents: dict[bytes, bytes] = {}
        genai: dict[bytes, dict[str, Any]] = {}
        tools: dict[bytes, list[str | None]] = {}
        calls: list[_GenAiSpan] = []
        for resource_spans in request.resource_spans:
            resource_kvs = resource_spans.resource.attributes
            resource: dict[str, Any] | None = None
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    out.spans += 1
                    if span.parent_span_id:
                        parents[span.span_id] = span.parent_span_id
                    if not _is_genai(span.attributes):
                        out.ignored += 1
                        continue
                    if resource is None:
                        resource = _attributes(resource_kvs, self._resource_keys)
                    g = _GenAiSpan(
                        span, _attributes(span.attributes, self._span_keys), resource, resource_kvs
                    )
                    genai[span.span_id] = g.attributes
                    operation = _text(g.attributes.get(_OPERATION))
                    if operation == "execute_tool" and span.parent_span_id:
                        tools.setdefault(span.parent_span_id, []).append(
                            _text(g.attributes.get(_TOOL_NAME))
                        )
                    calls.append(g)
        for g in calls:
            self._one(g, out, parents, genai, tools)
        return out

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
        parents: Mapping[bytes, bytes],
        genai: Mapping[bytes, dict[str, Any]],
        tools: Mapping[bytes, list[str | None]],
    ) -> None:
        span = g.span
        try:
            read = from_otel_span(g.attributes)
            if not read.counted:
                out.aggregate += 1
                return
            fields = read.call_fields()
        except ContractError as exc:
            self._reject(out, g, str(exc))
            return
        assert fields is not None
        trace_hex, span_hex = span.trace_id.hex(), span.span_id.hex()
        if not span.end_time_unix_nano:
            self._reject(out, g, "end_time_unix_nano: not set (the span has not ended)")
            return
        if span.end_time_unix_nano < span.start_time_unix_nano:
            self._reject(
                out,
                g,
                f"end_time_unix_nano ({span.end_time_unix_nano}) is before "
                f"start_time_unix_nano ({span.start_time_unix_nano})",
            )
            return
        ancestors = self._ancestors(span, parents, genai)
        fields.update(self._attribution(g, ancestors, trace_hex))
        agent, parent_agent = self._agents(fields.pop("agent", None), ancestors)
        if agent is not None:
            fields["agent"] = agent
        fields["parent_agent"] = parent_agent
        children = tools.get(span.span_id, ())
        if children:
            fields["tool_calls"] = len(children)
            named = [name for name in children if name]
            if named and "tool_name" not in fields:
                fields["tool_name"] = named[-1]
        else:
            reasons = g.attributes.get(_FINISH_REASONS)
            if isinstance(reasons, list) and _TOOL_FINISH & {str(r) for r in reasons}:
                fields["tool_calls"] = 1  # at least one; how many is only in the content
        if span.status.code == Status.STATUS_CODE_ERROR and fields["status"] == "ok":
            fields["status"] = "error"
        fields["latency_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) // 1_000_000
        try:
            event = CallEvent(
                event_id=f"otel-{trace_hex}-{span_hex}",
                ts=datetime.fromtimestamp(span.end_time_unix_nano / 1e9, UTC),
                **fields,
            )
        except ValidationError as exc:
            self._reject(out, g, describe_validation_error(exc))
            return
        out.by_task.setdefault(event.task, []).append(event)
