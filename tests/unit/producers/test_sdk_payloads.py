"""Usage read from the providers' own SDK types and from OpenTelemetry SDK spans.

Payloads are built with the official ``openai`` and ``anthropic`` packages in the shapes
their API references document (the numbers are ours, chosen so that every part differs);
spans with the OpenTelemetry SDK, their attribute names from
``opentelemetry-semantic-conventions``. The token counts are checked exactly, and against a
second implementation: ``genai_prices.extract_usage``.
"""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message
from genai_prices import extract_usage
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseCompletedEvent
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes

from tokengov.core.contracts import TokenCounts
from tokengov.core.errors import ContractError
from tokengov.producers.adapters import (
    OTEL_ATTRIBUTES,
    Usage,
    from_otel_attributes,
    from_otel_span,
    normalize_usage,
    read_usage,
)

# https://platform.openai.com/docs/api-reference/chat/object (the chat completion object;
# prompt_tokens_details.cache_write_tokens as the openai package types it)
CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4.1-mini-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "…", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {
            "cached_tokens": 512,
            "cache_write_tokens": 256,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 20,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "flex",
    "system_fingerprint": "fp_fc9f1d7035",
}
# https://platform.openai.com/docs/api-reference/chat-streaming/streaming (a chunk: usage is
# null unless stream_options.include_usage is set, and then only on the last chunk)
CHUNK = {
    "id": "chatcmpl-123",
    "object": "chat.completion.chunk",
    "created": 1694268190,
    "model": "gpt-4.1-mini-2025-04-14",
    "system_fingerprint": "fp_44709d6fcb",
    "service_tier": "default",
    "choices": [
        {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}
    ],
}
# https://platform.openai.com/docs/api-reference/responses/object (the response object)
RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "service_tier": "priority",
    "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 128, "cache_write_tokens": 100},
        "output_tokens": 52,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 380,
    },
}
# https://docs.anthropic.com/en/api/messages (the Message object) and
# https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching (usage with
# cache_creation.ephemeral_5m_input_tokens / ephemeral_1h_input_tokens)
MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "…"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 1500,
        "cache_read_input_tokens": 2000,
        "output_tokens": 393,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 500},
        "output_tokens_details": {"thinking_tokens": 300},
        "service_tier": "priority",
    },
}


def test_openai_chat_completion() -> None:
    usage = read_usage("openai", ChatCompletion.model_validate(CHAT))
    assert usage == Usage(
        TokenCounts(input=1117, output=46, cached_input=512, cache_write=256, reasoning=20),
        service_tier="flex",
    )


def test_openai_responses() -> None:
    usage = read_usage("openai", Response.model_validate(RESPONSE))
    assert usage == Usage(
        TokenCounts(input=328, output=52, cached_input=128, cache_write=100, reasoning=12),
        service_tier="priority",
    )


def test_openai_responses_stream_completed_event() -> None:
    """https://platform.openai.com/docs/api-reference/responses-streaming/response/completed"""
    event = ResponseCompletedEvent.model_validate(
        {"type": "response.completed", "sequence_number": 9, "response": RESPONSE}
    )
    expected = read_usage("openai", Response.model_validate(RESPONSE))
    assert read_usage("openai", event) == expected
    assert read_usage("openai", event.model_dump(mode="json")) == expected


def test_anthropic_message_with_1h_writes_and_thinking() -> None:
    message = Message.model_validate(MESSAGE)
    usage = read_usage("anthropic", message)
    # input_tokens (21) excludes the cache reads and writes: tokengov's input includes them
    assert usage == Usage(
        TokenCounts(
            input=21 + 2000 + 1500,
            output=393,
            cached_input=2000,
            cache_write=1500,
            cache_write_1h=500,
            reasoning=300,
        ),
        service_tier="priority",
    )
    # the usage object alone says the same (the tier is part of Anthropic's usage)
    assert read_usage("anthropic", message.usage) == usage
    assert normalize_usage("anthropic", message.usage.model_dump()) == usage.tokens


def _genai_prices(provider: str, flavor: str | None, payload: dict[str, Any]) -> dict[str, int]:
    kwargs = {"api_flavor": flavor} if flavor else {}
    u = extract_usage(payload, provider_id=provider, **kwargs).usage
    fields = {
        "input": u.input_tokens,
        "output": u.output_tokens,
        "cached_input": u.cache_read_tokens,
        "cache_write": u.cache_write_tokens,
        "cache_write_1h": getattr(u, "cache_write_1h_tokens", None),
        "reasoning": getattr(u, "output_reasoning_tokens", None),
    }
    return {k: v for k, v in fields.items() if v is not None}


@pytest.mark.parametrize(
    ("provider", "flavor", "model", "payload"),
    [
        ("openai", "chat", ChatCompletion, CHAT),
        ("openai", "responses", Response, RESPONSE),
        ("anthropic", None, Message, MESSAGE),
    ],
)
def test_the_counts_agree_with_genai_prices(provider, flavor, model, payload) -> None:
    """A second implementation: every count genai-prices extracts is the same here."""
    sdk_object = model.model_validate(payload)
    theirs = _genai_prices(provider, flavor, sdk_object.model_dump(mode="json"))
    ours = read_usage(provider, sdk_object).tokens.model_dump()
    assert len(theirs) >= 4
    assert {k: ours[k] for k in theirs} == theirs


def test_a_response_without_usage_is_missing_not_free() -> None:
    chunk = ChatCompletionChunk.model_validate(CHUNK)  # a stream without include_usage
    assert read_usage("openai", chunk) == Usage(service_tier="default", missing=True)
    bare = ChatCompletion.model_validate({**CHAT, "usage": None})
    assert read_usage("openai", bare) == Usage(service_tier="flex", missing=True)
    assert read_usage("openai", {**RESPONSE, "usage": None}).missing
    assert read_usage("anthropic", None) == Usage(missing=True)
    with pytest.raises(ContractError, match="no usage"):
        normalize_usage("openai", chunk)
    # the last chunk of a stream with include_usage carries it
    last = ChatCompletionChunk.model_validate(
        {**CHUNK, "choices": [], "usage": {**CHAT["usage"]}}  # type: ignore[dict-item]
    )
    assert read_usage("openai", last).tokens.cache_write == 256


def test_inconsistent_counts_name_the_payload() -> None:
    with pytest.raises(ContractError, match="usage: inconsistent counts"):
        read_usage("openai", {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}})


# -- OpenTelemetry -------------------------------------------------------------------------


def test_the_attribute_table_is_the_semantic_conventions() -> None:
    """The SDK keeps the names in a table (the package is a test dependency); each is the
    package's own constant."""
    for constant, name in OTEL_ATTRIBUTES.items():
        module = error_attributes if constant == "ERROR_TYPE" else gen_ai
        assert getattr(module, constant) == name, constant


def _spans() -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    agent = {
        gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent",
        gen_ai.GEN_AI_PROVIDER_NAME: "anthropic",
        gen_ai.GEN_AI_AGENT_NAME: "researcher",
        gen_ai.GEN_AI_AGENT_ID: "asst_5j66UpCpwteGg4YSxUnt7lPY",
        gen_ai.GEN_AI_CONVERSATION_ID: "conv_5j66UpCpwteGg4YSxUnt7lPY",
        gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 5000,  # the sum of its model calls
        gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 700,
    }
    with tracer.start_as_current_span("invoke_agent researcher", attributes=agent):
        with tracer.start_as_current_span(
            "chat claude-sonnet-4",
            attributes={
                gen_ai.GEN_AI_OPERATION_NAME: "chat",
                gen_ai.GEN_AI_PROVIDER_NAME: "anthropic",
                gen_ai.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
                gen_ai.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4-20250514",
                gen_ai.GEN_AI_AGENT_NAME: "researcher",
                gen_ai.GEN_AI_CONVERSATION_ID: "conv_5j66UpCpwteGg4YSxUnt7lPY",
                gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 4000,  # includes the cache, as specified
                gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 3000,
                gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 500,
                gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 600,
                gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 250,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "chat gpt-4.1-mini",
            attributes={
                gen_ai.GEN_AI_OPERATION_NAME: "chat",
                gen_ai.GEN_AI_SYSTEM: "openai",  # the older attribute, no provider.name
                gen_ai.GEN_AI_REQUEST_MODEL: "gpt-4.1-mini",
                gen_ai.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: "flex",
                gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
                error_attributes.ERROR_TYPE: "TimeoutError",
            },
        ):
            pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_otel_spans_carry_attribution_and_aggregate_spans_are_skipped() -> None:
    by_name = {span.name: from_otel_span(span) for span in _spans()}
    agent = by_name["invoke_agent researcher"]
    assert not agent.counted and agent.call_fields() is None
    assert "invoke_agent" in (agent.skip_reason or "")
    assert (agent.agent_name, agent.agent_id) == ("researcher", "asst_5j66UpCpwteGg4YSxUnt7lPY")

    claude = by_name["chat claude-sonnet-4"]
    assert claude.counted and claude.status == "ok"
    assert claude.call_fields() == {
        "model": "claude-sonnet-4-20250514",  # the response model before the request model
        "provider": "anthropic",
        "tokens": TokenCounts(
            input=4000, output=600, cached_input=3000, cache_write=500, reasoning=250
        ),
        "status": "ok",
        "task_id": "conv_5j66UpCpwteGg4YSxUnt7lPY",
        "agent": "researcher",
    }
    assert claude.request_model == "claude-sonnet-4"

    mini = by_name["chat gpt-4.1-mini"]
    fields = mini.call_fields()
    assert fields is not None
    assert (fields["provider"], fields["model"], fields["status"]) == (
        "openai",
        "gpt-4.1-mini",
        "timeout",
    )
    assert fields["service_tier"] == "flex" and fields["tokens"] == TokenCounts(
        input=1000, output=100
    )
    # only the model calls count: 4000 + 1000 input tokens, not 5000 more from the agent
    counted = [s.call_fields() for s in by_name.values() if s.counted]
    assert sum(f["tokens"].input for f in counted if f) == 5000


def test_anthropic_span_attributes_are_not_read_as_anthropic_usage() -> None:
    (claude,) = [s for s in _spans() if s.name == "chat claude-sonnet-4"]
    attributes = dict(claude.attributes or {})
    tokens = normalize_usage("anthropic", attributes)
    assert tokens == TokenCounts(
        input=4000, output=600, cached_input=3000, cache_write=500, reasoning=250
    )


def test_otlp_json_attributes_with_integers_as_text() -> None:
    """OTLP/JSON sends 64-bit integers as strings, attributes as key/value objects."""
    attributes = [
        {"key": gen_ai.GEN_AI_OPERATION_NAME, "value": {"stringValue": "chat"}},
        {"key": gen_ai.GEN_AI_PROVIDER_NAME, "value": {"stringValue": "aws.bedrock"}},
        {"key": gen_ai.GEN_AI_REQUEST_MODEL, "value": {"stringValue": "anthropic.claude-v2"}},
        {"key": gen_ai.GEN_AI_USAGE_INPUT_TOKENS, "value": {"intValue": "1200"}},
        {"key": gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, "value": {"intValue": "80"}},
        {"key": gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "value": {"intValue": "200"}},
    ]
    span = from_otel_span(attributes)
    assert span.provider == "aws.bedrock" and span.model == "anthropic.claude-v2"
    assert span.usage.tokens == TokenCounts(input=1200, output=80, cached_input=200)
    assert from_otel_attributes(attributes) == span.usage.tokens
    bad = [{"key": gen_ai.GEN_AI_USAGE_INPUT_TOKENS, "value": {"intValue": "12x"}}]
    with pytest.raises(ContractError, match=r"gen_ai\.usage\.input_tokens"):
        from_otel_span(bad)


def test_a_model_call_span_without_usage_is_missing_usage() -> None:
    span = from_otel_span(
        {gen_ai.GEN_AI_OPERATION_NAME: "chat", gen_ai.GEN_AI_REQUEST_MODEL: "gpt-4.1-mini"}
    )
    fields = span.call_fields()
    assert fields is not None and fields["usage_missing"] is True
    assert fields["tokens"] == TokenCounts()
    with pytest.raises(ContractError, match=r"gen_ai\.request\.model"):
        from_otel_span({gen_ai.GEN_AI_OPERATION_NAME: "chat"}).call_fields()
