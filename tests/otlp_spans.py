"""GenAI spans made by the OpenTelemetry SDK and encoded by its OTLP encoder (the official
artefacts the OTLP receiver's tests feed it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def sdk_spans(
    build: Callable[[Any], None], *, service: str = "support-agent", **resource: Any
) -> list[ReadableSpan]:
    """The spans ``build(tracer)`` makes with the OpenTelemetry SDK."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("test"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def otlp_request(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    """The request the SDK's OTLP exporters send for ``spans``."""
    request: ExportTraceServiceRequest = encode_spans(spans)
    return request


def otlp_protobuf(spans: list[ReadableSpan]) -> bytes:
    """An OTLP/HTTP protobuf body, encoded as the SDK's OTLP exporters encode it."""
    return bytes(otlp_request(spans).SerializeToString())


def chat_span(tracer: Any, **attributes: Any) -> None:
    """One chat span as GenAI instrumentations record it (content attributes included)."""
    with tracer.start_as_current_span(
        "chat gpt-4.1-mini",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4.1-mini",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.input.messages": '[{"role":"user","parts":[{"content":"SECRET-PROMPT-TEXT"}]}]',
            **attributes,
        },
    ):
        pass
