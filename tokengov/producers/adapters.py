"""Provider usage payloads → :class:`TokenCounts`, normalised as DESIGN.md says.

tokengov's ``input`` counts every input token, cached or not; ``cached_input``
(read from the prompt cache) and ``cache_write`` (written to it, with its 1-hour
part ``cache_write_1h``) are parts of it; ``reasoning`` is part of ``output``.
Providers report these differently (docs/sdk.md has the field-by-field table):

==============================  ==========================================================
OpenAI chat completions         ``prompt_tokens`` *includes* ``prompt_tokens_details.cached_tokens``
                                and ``.cache_write_tokens``; ``completion_tokens`` includes
                                ``completion_tokens_details.reasoning_tokens``
OpenAI responses API            ``input_tokens`` includes ``input_tokens_details.cached_tokens``
                                and ``.cache_write_tokens``; ``output_tokens`` includes
                                ``output_tokens_details.reasoning_tokens``
Anthropic messages              ``input_tokens`` *excludes* ``cache_read_input_tokens`` and
                                ``cache_creation_input_tokens``: input = the three summed;
                                ``cache_creation.ephemeral_1h_input_tokens`` is the 1-hour part;
                                ``output_tokens_details.thinking_tokens`` is part of ``output_tokens``
OpenTelemetry GenAI spans       ``gen_ai.usage.input_tokens`` SHOULD include
                                ``gen_ai.usage.cache_read.input_tokens`` and
                                ``gen_ai.usage.cache_creation.input_tokens``
==============================  ==========================================================

:func:`read_usage` takes a whole response (an SDK object such as ``ChatCompletion``,
``Response`` or ``Message``, or its JSON), its ``usage`` alone, OpenTelemetry span
attributes, or ``None``, and returns a :class:`Usage`: the token counts, the service
tier the response reports, and whether the usage was missing (``None``, a response
whose ``usage`` is null — a chat stream without ``include_usage`` — or a span without
usage attributes). A missing usage is never a free call: the event says
``usage_missing`` and is counted and alerted as such. :func:`from_otel_span` reads a
whole GenAI span: its attribution, operation and status too.

The payloads are plain mappings or attribute-style objects (the SDKs' pydantic models);
the provider SDKs need not be installed. ``genai_prices.extract_usage`` is not used here:
it reads only plain dicts of whole responses (not the SDK objects nor a bare ``usage``),
needs the API flavour spelt out, says nothing of the service tier, OpenTelemetry spans or a
missing usage; the tests compare these adapters with it on the providers' SDK types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from tokengov.core.contracts import TokenCounts
from tokengov.core.errors import ContractError

__all__ = [
    "OTEL_ATTRIBUTES",
    "OTEL_SKIPPED_OPERATIONS",
    "SpanCall",
    "Usage",
    "from_anthropic",
    "from_openai_chat",
    "from_openai_responses",
    "from_otel_attributes",
    "from_otel_span",
    "normalize_usage",
    "read_usage",
    "read_usage_counts",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """What a response says about its usage: the token counts, the service tier it ran in
    (None: not reported) and ``missing`` (no usage at all: the counts are 0 and unknown)."""

    tokens: TokenCounts = field(default_factory=TokenCounts)
    service_tier: str | None = None
    missing: bool = False


def _as_mapping(usage: Any) -> Mapping[str, Any]:
    if usage is None:
        return {}
    if type(usage) is dict or isinstance(usage, Mapping):
        return usage
    dump = getattr(usage, "model_dump", None)
    if callable(dump):
        result = dump()
        if isinstance(result, Mapping):
            return result
    if hasattr(usage, "__dict__"):
        return {k: v for k, v in vars(usage).items() if not k.startswith("_")}
    raise ContractError(f"usage must be a mapping, got {type(usage).__name__}", field="usage")


def _count(mapping: Mapping[str, Any] | None, key: str, *, where: str, text: bool = False) -> int:
    """A token count: a whole number ≥ 0 (with ``text``, also its decimal text, as OTLP/JSON
    sends 64-bit integers)."""
    if not mapping:
        return 0
    value = mapping.get(key)
    if value is None:
        return 0
    if type(value) is int and value >= 0:  # the usual case, first
        return value
    if text and isinstance(value, str) and value.strip().isdigit() and value.isascii():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ContractError(
                f"expected a whole number of tokens, got {value!r}", field=f"{where}{key}"
            )
    if value < 0:
        raise ContractError(f"token count is negative ({value})", field=f"{where}{key}")
    return value


def _details(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return _NOTHING if value is None else _as_mapping(value)


#: Builds the token counts a reader found: :func:`_checked` (a :class:`TokenCounts`, the
#: public readers) or :func:`_unchecked` (the counts as they are, for the emitter's sender).
_Make = Callable[..., Any]


def _unchecked(
    where: str,
    *,
    input: int = 0,
    output: int = 0,
    cached_input: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    reasoning: int = 0,
) -> dict[str, int]:
    """The six counts as read (0 where not reported), each a whole number ≥ 0 but not checked
    against each other: for a caller that validates the whole event itself
    (:func:`read_usage_counts`)."""
    return {
        "input": input,
        "output": output,
        "cached_input": cached_input,
        "cache_write": cache_write,
        "cache_write_1h": cache_write_1h,
        "reasoning": reasoning,
    }


def _checked(where: str, **counts: int) -> TokenCounts:
    """TokenCounts, or a ContractError that names the payload (parts beyond their totals)."""
    try:
        return TokenCounts(**counts)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        errors = getattr(exc, "errors", None)
        reason = str(exc)
        if callable(errors):
            reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in errors())
        raise ContractError(f"inconsistent counts: {reason}", field=where) from None


def _openai_names(input_key: str, output_key: str) -> tuple[str, str, str, str, str, str]:
    """(input, output, their details, where in the usage each details count is)."""
    in_details, out_details = f"{input_key}_details", f"{output_key}_details"
    return (
        input_key,
        output_key,
        in_details,
        out_details,
        f"usage.{in_details}.",
        f"usage.{out_details}.",
    )


#: OpenAI's two spellings of the same usage shape: chat completions and responses.
_CHAT: Final = _openai_names("prompt_tokens", "completion_tokens")
_RESPONSES: Final = _openai_names("input_tokens", "output_tokens")
_NOTHING: Final[Mapping[str, Any]] = {}


def _openai(usage: Any, names: tuple[str, str, str, str, str, str], make: _Make = _checked) -> Any:
    """OpenAI's usage shape, in either API's names: ``<input_key>`` includes the cached and
    cache-write tokens of ``<input_key>_details``, ``<output_key>`` the reasoning tokens of
    ``<output_key>_details``. LiteLLM reports every provider in this shape and puts the
    1-hour part of the cache writes (Anthropic's) in
    ``<input_key>_details.cache_creation_token_details.ephemeral_1h_input_tokens``."""
    input_key, output_key, input_details, output_details, in_where, out_where = names
    u = _as_mapping(usage)
    inp = _details(u, input_details)
    out = _details(u, output_details)
    return make(
        "usage",
        input=_count(u, input_key, where="usage."),
        output=_count(u, output_key, where="usage."),
        cached_input=_count(inp, "cached_tokens", where=in_where),
        cache_write=_count(inp, "cache_write_tokens", where=in_where),
        cache_write_1h=_count(
            _details(inp, "cache_creation_token_details"),
            "ephemeral_1h_input_tokens",
            where=f"{in_where}cache_creation_token_details.",
        ),
        reasoning=_count(out, "reasoning_tokens", where=out_where),
    )


def from_openai_chat(usage: Any) -> TokenCounts:
    """OpenAI chat completions ``usage``: prompt tokens include cached and cache-write ones."""
    return cast(TokenCounts, _openai(usage, _CHAT))


def from_openai_responses(usage: Any) -> TokenCounts:
    """OpenAI responses API ``usage``: input tokens include cached and cache-write ones."""
    return cast(TokenCounts, _openai(usage, _RESPONSES))


def from_anthropic(usage: Any) -> TokenCounts:
    """Anthropic messages ``usage``: ``input_tokens`` excludes cache reads and writes.

    ``cache_creation.ephemeral_1h_input_tokens`` is the 1-hour part of the cache writes
    (``cache_creation_input_tokens`` is all of them; when only the breakdown is reported,
    its sum). Extended-thinking tokens are billed inside ``output_tokens``; where the usage
    reports them (``output_tokens_details.thinking_tokens``) they are ``reasoning``.
    """
    return cast(TokenCounts, _anthropic(usage, _checked))


def _anthropic(usage: Any, make: _Make) -> Any:
    u = _as_mapping(usage)
    uncached = _count(u, "input_tokens", where="usage.")
    read = _count(u, "cache_read_input_tokens", where="usage.")
    write = _count(u, "cache_creation_input_tokens", where="usage.")
    creation = _details(u, "cache_creation")
    write_5m = _count(creation, "ephemeral_5m_input_tokens", where="usage.cache_creation.")
    write_1h = _count(creation, "ephemeral_1h_input_tokens", where="usage.cache_creation.")
    if u.get("cache_creation_input_tokens") is None:
        write = write_5m + write_1h
    thinking = _count(
        _details(u, "output_tokens_details"),
        "thinking_tokens",
        where="usage.output_tokens_details.",
    )
    return make(
        "usage",
        input=uncached + read + write,
        output=_count(u, "output_tokens", where="usage."),
        cached_input=read,
        cache_write=write,
        cache_write_1h=write_1h,
        reasoning=thinking,
    )


# -- OpenTelemetry GenAI spans ----------------------------------------------------------

#: The OpenTelemetry attribute names read here, by the constant of the
#: ``opentelemetry-semantic-conventions`` package that defines each (module
#: ``opentelemetry.semconv._incubating.attributes.gen_ai_attributes``; ``ERROR_TYPE`` from
#: ``opentelemetry.semconv.attributes.error_attributes``). The package is a test dependency
#: only, so the SDK keeps this table; tests/unit/producers/test_adapters.py checks every
#: entry against the installed package.
OTEL_ATTRIBUTES: Final = {
    "GEN_AI_OPERATION_NAME": "gen_ai.operation.name",
    "GEN_AI_PROVIDER_NAME": "gen_ai.provider.name",
    "GEN_AI_SYSTEM": "gen_ai.system",
    "GEN_AI_REQUEST_MODEL": "gen_ai.request.model",
    "GEN_AI_RESPONSE_MODEL": "gen_ai.response.model",
    "GEN_AI_CONVERSATION_ID": "gen_ai.conversation.id",
    "GEN_AI_AGENT_NAME": "gen_ai.agent.name",
    "GEN_AI_AGENT_ID": "gen_ai.agent.id",
    "GEN_AI_TOOL_NAME": "gen_ai.tool.name",
    "GEN_AI_WORKFLOW_NAME": "gen_ai.workflow.name",
    "GEN_AI_OPENAI_RESPONSE_SERVICE_TIER": "gen_ai.openai.response.service_tier",
    "GEN_AI_USAGE_INPUT_TOKENS": "gen_ai.usage.input_tokens",
    "GEN_AI_USAGE_OUTPUT_TOKENS": "gen_ai.usage.output_tokens",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS": "gen_ai.usage.cache_read.input_tokens",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS": "gen_ai.usage.cache_creation.input_tokens",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS": "gen_ai.usage.reasoning.output_tokens",
    "GEN_AI_USAGE_PROMPT_TOKENS": "gen_ai.usage.prompt_tokens",  # deprecated spelling
    "GEN_AI_USAGE_COMPLETION_TOKENS": "gen_ai.usage.completion_tokens",  # deprecated spelling
    "ERROR_TYPE": "error.type",
}
_A: Final = OTEL_ATTRIBUTES
#: Spellings of instrumentations that predate the conventions' cache and reasoning names
#: (OpenLLMetry and others); read after the conventions' own.
_OLDER_CACHE_READ: Final = (
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
)
_OLDER_CACHE_WRITE: Final = (
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.input_tokens.cache_write",
)
_OLDER_REASONING: Final = ("gen_ai.usage.output_tokens.reasoning",)
_OTEL_USAGE: Final = "gen_ai.usage."
#: Operations (``gen_ai.operation.name``) whose spans are not model calls: an agent or
#: workflow invocation aggregates the model-call spans under it (counting it too would
#: count their tokens twice), creating an agent and running a tool call no model.
OTEL_SKIPPED_OPERATIONS: Final = frozenset(
    ("invoke_agent", "invoke_workflow", "create_agent", "execute_tool")
)


def _otlp_value(value: Any) -> Any:
    """An OTLP/JSON ``AnyValue`` (``{"intValue": "42"}``) as a plain value."""
    if isinstance(value, Mapping) and len(value) == 1:
        (kind, inner), *_ = value.items()
        if kind in ("stringValue", "intValue", "doubleValue", "boolValue"):
            return inner
    return value


def _otel_mapping(attributes: Any) -> Mapping[str, Any]:
    """Span attributes: a mapping, a span object (``.attributes``), or OTLP/JSON's list of
    ``{"key": …, "value": {…}}``."""
    if type(attributes) is dict:  # the common case, without the ABC checks below
        return attributes
    if isinstance(attributes, Sequence) and not isinstance(attributes, str | bytes):
        flat: dict[str, Any] = {}
        for item in attributes:
            if not (isinstance(item, Mapping) and "key" in item):
                raise ContractError(
                    "OTLP attributes must be objects with a key and a value", field="attributes"
                )
            flat[str(item["key"])] = _otlp_value(item.get("value"))
        return flat
    if not isinstance(attributes, Mapping) and hasattr(attributes, "attributes"):
        attributes = attributes.attributes
    return _as_mapping(attributes)


_INPUT_KEYS: Final = (_A["GEN_AI_USAGE_INPUT_TOKENS"], _A["GEN_AI_USAGE_PROMPT_TOKENS"])
_OUTPUT_KEYS: Final = (_A["GEN_AI_USAGE_OUTPUT_TOKENS"], _A["GEN_AI_USAGE_COMPLETION_TOKENS"])
_CACHE_READ_KEYS: Final = (_A["GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS"], *_OLDER_CACHE_READ)
_CACHE_WRITE_KEYS: Final = (_A["GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS"], *_OLDER_CACHE_WRITE)
_REASONING_KEYS: Final = (_A["GEN_AI_USAGE_REASONING_OUTPUT_TOKENS"], *_OLDER_REASONING)
_NO_TOKENS: Final = TokenCounts()


_USAGE_KEYS: Final = (
    _INPUT_KEYS,
    _OUTPUT_KEYS,
    _CACHE_READ_KEYS,
    _CACHE_WRITE_KEYS,
    _REASONING_KEYS,
)


def _otel_usage(a: Mapping[str, Any]) -> Usage:
    # the first of each spelling that is set (the OTLP receiver's hot path: one loop)
    counts = [0, 0, 0, 0, 0]
    found = False
    get = a.get
    for index, keys in enumerate(_USAGE_KEYS):
        for key in keys:
            value = get(key)
            if value is not None:
                found = True
                if value.__class__ is int and value >= 0:
                    counts[index] = value
                else:
                    counts[index] = _count(a, key, where="", text=True)
                break
    inp, out, read, write, reasoning = counts
    if read + write > inp:
        inp += read + write
    tier = _otel_text(a, _A["GEN_AI_OPENAI_RESPONSE_SERVICE_TIER"])
    if not found and not any(str(k).startswith(_OTEL_USAGE) for k in a):
        return Usage(_NO_TOKENS, tier, missing=True)
    tokens = _checked(
        "attributes",
        input=inp,
        output=out,
        cached_input=read,
        cache_write=write,
        reasoning=reasoning,
    )
    return Usage(tokens, tier)


def from_otel_attributes(attributes: Any) -> TokenCounts:
    """OpenTelemetry GenAI span attributes (semantic conventions, with older spellings);
    integers may be sent as decimal text (OTLP/JSON).

    The conventions say cache reads and writes SHOULD be included in
    ``gen_ai.usage.input_tokens``; an instrumentation that reports them apart (as
    Anthropic does) is recognised when they exceed the input count, and summed.
    """
    return _otel_usage(_otel_mapping(attributes)).tokens


def _otel_text(a: Mapping[str, Any], key: str) -> str | None:
    value = a.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContractError(f"expected text, got {value!r}", field=key)
    return value.strip() or None


@dataclass(frozen=True, slots=True)
class SpanCall:
    """What tokengov reads from one OpenTelemetry GenAI span.

    ``counted`` is False for a span that is not a model call (its operation is one of
    :data:`OTEL_SKIPPED_OPERATIONS`: an ``invoke_agent``/``invoke_workflow`` span
    aggregates the model-call spans under it); then :meth:`call_fields` is None and
    ``skip_reason`` says why. ``model`` is the response model, else the request model."""

    operation: str | None
    provider: str
    model: str | None
    request_model: str | None
    response_model: str | None
    conversation_id: str | None
    agent_name: str | None
    agent_id: str | None
    tool_name: str | None
    workflow: str | None
    error_type: str | None
    usage: Usage

    @property
    def counted(self) -> bool:
        return self.operation not in OTEL_SKIPPED_OPERATIONS

    @property
    def skip_reason(self) -> str | None:
        if self.counted:
            return None
        return (
            f"gen_ai.operation.name is {self.operation!r}: not a model call (its model "
            "calls are spans of their own)"
        )

    @property
    def status(self) -> str:
        """``error.type`` set: ``timeout`` when it names a timeout, else ``error``."""
        if self.error_type is None:
            return "ok"
        return "timeout" if "timeout" in self.error_type.lower() else "error"

    def call_fields(self) -> dict[str, Any] | None:
        """Keyword arguments for ``TokenEmitter.emit_call`` (None: not a model call). The
        conversation id is the task id, the agent name (else its id) the agent."""
        if not self.counted:
            return None
        if self.model is None:
            raise ContractError(
                "a model-call span without gen_ai.request.model or gen_ai.response.model",
                field=_A["GEN_AI_REQUEST_MODEL"],
            )
        fields: dict[str, Any] = {
            "model": self.model,
            "provider": self.provider,
            "tokens": self.usage.tokens,
            "status": self.status,
        }
        if self.usage.missing:
            fields["usage_missing"] = True
        if self.usage.service_tier is not None:
            fields["service_tier"] = self.usage.service_tier
        if self.conversation_id is not None:
            fields["task_id"] = self.conversation_id
        if (agent := self.agent_name or self.agent_id) is not None:
            fields["agent"] = agent
        if self.tool_name is not None:
            fields["tool_name"] = self.tool_name
        if self.workflow is not None:
            fields["workflow"] = self.workflow
        return fields


def from_otel_span(span: Any) -> SpanCall:
    """Read a GenAI span (its attribute mapping, an OpenTelemetry SDK ``ReadableSpan``, or
    OTLP/JSON's attribute list) whatever the provider: attribution, operation, status and
    usage."""
    a = _otel_mapping(span)
    request, response, provider = _otel_texts(a, _MODEL_TEXTS)
    if provider is None:
        provider = _otel_text(a, _A["GEN_AI_SYSTEM"])
    operation, conversation, agent_name, agent_id, tool, workflow, error = _otel_texts(
        a, _SPAN_TEXTS
    )
    return SpanCall(
        operation=operation,
        provider=provider or "unknown",
        model=response or request,
        request_model=request,
        response_model=response,
        conversation_id=conversation,
        agent_name=agent_name,
        agent_id=agent_id,
        tool_name=tool,
        workflow=workflow,
        error_type=error,
        usage=_otel_usage(a),
    )


#: The text attributes :func:`from_otel_span` reads, in the order it checks them (the
#: model's and provider's, then ``gen_ai.system`` when there is no provider, then the rest).
_MODEL_TEXTS: Final = (
    _A["GEN_AI_REQUEST_MODEL"],
    _A["GEN_AI_RESPONSE_MODEL"],
    _A["GEN_AI_PROVIDER_NAME"],
)
_SPAN_TEXTS: Final = tuple(
    _A[name]
    for name in (
        "GEN_AI_OPERATION_NAME",
        "GEN_AI_CONVERSATION_ID",
        "GEN_AI_AGENT_NAME",
        "GEN_AI_AGENT_ID",
        "GEN_AI_TOOL_NAME",
        "GEN_AI_WORKFLOW_NAME",
        "ERROR_TYPE",
    )
)


def _otel_texts(a: Mapping[str, Any], keys: tuple[str, ...]) -> list[str | None]:
    """:func:`_otel_text` of each of ``keys``, in one loop (the hot path of the OTLP
    receiver: most of them are absent)."""
    out: list[str | None] = []
    get = a.get
    for key in keys:
        value = get(key)
        if value is not None:
            # a str subclass or not text: _otel_text decides (the error names the key)
            value = value.strip() or None if value.__class__ is str else _otel_text(a, key)
        out.append(value)
    return out


# -- choosing the adapter -------------------------------------------------------------

_ANTHROPIC: Final = frozenset(("anthropic", "bedrock-anthropic", "vertex-anthropic", "claude"))


def _is_otel(u: Mapping[str, Any]) -> bool:
    # a loop rather than any(<generator>): it runs for every recorded call, and building the
    # generator was most of its cost
    for k in u:  # noqa: SIM110
        if (k if type(k) is str else str(k)).startswith("gen_ai."):
            return True
    return False


def _tokens(
    provider: str, u: Mapping[str, Any], make: _Make = _checked, *, otel: bool | None = None
) -> Any:
    """The counts of a usage mapping, chosen by its shape (``otel``: whether it holds span
    attributes, when the caller has looked already)."""
    name = provider.lower()
    if _is_otel(u) if otel is None else otel:
        return _otel_usage(u).tokens
    if name in _ANTHROPIC:
        return _anthropic(u, make)
    if "prompt_tokens" in u or "completion_tokens" in u:
        return _openai(u, _CHAT, make)
    if "input_tokens" in u or "output_tokens" in u:
        if name in {"openai", "azure-openai", "azure"} or "input_tokens_details" in u:
            return _openai(u, _RESPONSES, make)
        if (
            "cache_read_input_tokens" in u
            or "cache_creation_input_tokens" in u
            or "cache_creation" in u
        ):
            return _anthropic(u, make)
        return _openai(u, _RESPONSES, make)
    # Already in tokengov's own shape: {"input": …, "output": …, "cached_input": …}
    if {"input", "output"} & set(u):
        return TokenCounts.model_validate(u)
    raise ContractError(
        f"cannot tell the shape of this {provider!r} usage payload (keys: {sorted(u)}); "
        "pass TokenCounts or use from_openai_chat / from_openai_responses / from_anthropic / "
        "from_otel_attributes",
        field="usage",
    )


def _tier(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def read_usage(provider: str, payload: Any) -> Usage:
    """The usage of one call from whatever the caller has: a whole response (SDK object or
    its JSON: ``usage`` and ``service_tier`` are read from it), its ``usage`` alone, span
    attributes, :class:`TokenCounts`, or None (no usage: ``missing``)."""
    if isinstance(payload, Usage):
        return payload
    tokens, tier, missing = _read(provider, payload, _checked)
    return Usage(tokens, tier, missing)


def read_usage_counts(
    provider: str, payload: Any
) -> tuple[TokenCounts | Mapping[str, int], str | None, bool]:
    """:func:`read_usage` for a caller that validates the whole event itself (the emitter's
    sender, with the contract's fast path): (token counts, service tier, missing). For the
    providers' usage shapes the counts come as a plain dict of the six, not checked against
    each other (cached within input, …) and, for an OpenAI usage as a plain dict, as given
    (a float or a negative count included): should they break the contract,
    :func:`read_usage` says how."""
    if type(payload) is dict:
        plain = _plain_openai(provider, payload)
        if plain is not None:
            return plain
    if isinstance(payload, Usage):
        return payload.tokens, payload.service_tier, payload.missing
    return _read(provider, payload, _unchecked)


#: The keys of OpenAI's usage as JSON, in each API's names (with a tier some gateways add).
_CHAT_KEYS: Final = frozenset(
    ("prompt_tokens", "completion_tokens", "total_tokens", "service_tier", *_CHAT[2:4])
)
_RESPONSES_KEYS: Final = frozenset(
    ("input_tokens", "output_tokens", "total_tokens", "service_tier", *_RESPONSES[2:4])
)


def _plain_openai(
    provider: str, u: dict[str, Any]
) -> tuple[dict[str, int], str | None, bool] | None:
    """The sender's usual case, read in one go: an OpenAI usage as a plain dict (no other
    keys, details as dicts), for a provider whose usage is not Anthropic's, so that
    :func:`_read` would take it to :func:`_openai`. The counts are as given (None is 0): the
    caller checks the event, and hands what breaks the contract to :func:`read_usage`, which
    says how. None: :func:`_read` decides."""
    if "prompt_tokens" in u or "completion_tokens" in u:
        if not u.keys() <= _CHAT_KEYS:
            return None
        input_key, output_key, in_details, out_details = _CHAT[:4]
    elif ("input_tokens" in u or "output_tokens" in u) and u.keys() <= _RESPONSES_KEYS:
        input_key, output_key, in_details, out_details = _RESPONSES[:4]
    else:
        return None
    if provider.lower() in _ANTHROPIC:
        return None
    cached = write = write_1h = reasoning = None
    details = u.get(in_details)
    if details is not None:
        if type(details) is not dict:
            return None
        cached, write = details.get("cached_tokens"), details.get("cache_write_tokens")
        creation = details.get("cache_creation_token_details")
        if creation is not None:
            if type(creation) is not dict:
                return None
            write_1h = creation.get("ephemeral_1h_input_tokens")
    details = u.get(out_details)
    if details is not None:
        if type(details) is not dict:
            return None
        reasoning = details.get("reasoning_tokens")
    inp, out, tier = u.get(input_key), u.get(output_key), u.get("service_tier")
    counts = {
        "input": 0 if inp is None else inp,
        "output": 0 if out is None else out,
        "cached_input": 0 if cached is None else cached,
        "cache_write": 0 if write is None else write,
        "cache_write_1h": 0 if write_1h is None else write_1h,
        "reasoning": 0 if reasoning is None else reasoning,
    }
    return counts, (tier if isinstance(tier, str) and tier.strip() else None), False


def _read(provider: str, payload: Any, make: _Make) -> tuple[Any, str | None, bool]:
    if type(payload) is not dict and isinstance(payload, TokenCounts):
        return payload, None, False
    if payload is None:
        return _NO_TOKENS, None, True
    if type(payload) is dict or isinstance(payload, Mapping):
        if _is_otel(payload):
            otel = _otel_usage(payload)
            return otel.tokens, otel.service_tier, otel.missing
        if "usage" not in payload and "response" not in payload:  # a usage alone (the usual)
            return (
                _tokens(provider, payload, make, otel=False),
                _tier(payload.get("service_tier")),
                False,
            )
        if "usage" in payload:  # a whole response as JSON
            return _from_response(provider, payload.get("usage"), payload.get("service_tier"), make)
        inner = payload.get("response")
        if isinstance(inner, Mapping) and "usage" in inner:  # a Responses stream's last event
            return _read(provider, inner, make)
    elif hasattr(payload, "response") and hasattr(payload.response, "usage"):
        # the OpenAI Responses stream's response.completed event carries the whole response
        return _read(provider, payload.response, make)
    elif hasattr(payload, "usage") and not hasattr(payload, "input_tokens"):
        # a whole response object (ChatCompletion, Response, Message, a stream's chunk)
        return _from_response(provider, payload.usage, getattr(payload, "service_tier", None), make)
    u = _as_mapping(payload)
    return _tokens(provider, u, make), _tier(u.get("service_tier")), False


def _from_response(
    provider: str, usage: Any, tier: Any, make: _Make
) -> tuple[Any, str | None, bool]:
    if usage is None:
        return _NO_TOKENS, _tier(tier), True
    u = _as_mapping(usage)
    # Anthropic reports the tier inside usage; OpenAI on the response
    return _tokens(provider, u, make), _tier(tier) or _tier(u.get("service_tier")), False


def normalize_usage(provider: str, usage: Any) -> TokenCounts:
    """The token counts of ``usage`` (see :func:`read_usage`), chosen by provider and by the
    payload's shape. A payload without usage is an error here (it is not zero tokens):
    record it through ``TaskContext.record``, which marks the event ``usage_missing``."""
    result = read_usage(provider, usage)
    if result.missing:
        raise ContractError(
            "the payload carries no usage (not zero tokens); record it as usage_missing",
            field="usage",
        )
    return result.tokens
