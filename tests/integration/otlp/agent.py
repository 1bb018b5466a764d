"""An agent-like script: the official ``openai`` client, instrumented with
``opentelemetry-instrumentation-openai-v2``, exporting with the OpenTelemetry SDK's OTLP/HTTP
exporter. Message content capture is on, so the spans carry the prompt and the completion
(``gen_ai.input.messages`` / ``gen_ai.output.messages``): tokengov must never read them."""

from __future__ import annotations

import os
from typing import Final

from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

PROMPT: Final = "SECRET-PROMPT-TEXT: summarise the customer's complaint"
COMPLETION: Final = "SECRET-COMPLETION-TEXT"
CONTENT_ENV: Final = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
}


def run_agent(
    openai_base_url: str,
    otlp_endpoint: str,
    *,
    calls: int,
    service: str = "support-agent",
    conversation: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """A supervisor agent hands off to a researcher agent, which makes ``calls`` chat
    completions. Returns the trace id (hex). Spans are exported when it returns."""
    previous = {key: os.environ.get(key) for key in CONTENT_ENV}
    os.environ.update(CONTENT_ENV)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, headers=headers))
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        tracer = provider.get_tracer("support-agent")
        client = OpenAI(base_url=openai_base_url, api_key="sk-test", max_retries=0)
        extra = {"gen_ai.conversation.id": conversation} if conversation else {}
        with tracer.start_as_current_span(
            "invoke_agent supervisor",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "supervisor"},
        ) as root:
            with (
                tracer.start_as_current_span("plan"),  # a span of no GenAI kind between
                tracer.start_as_current_span(
                    "invoke_agent researcher",
                    attributes={
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": "researcher",
                        **extra,
                    },
                ),
            ):
                for _ in range(calls):
                    client.chat.completions.create(
                        model="gpt-4.1-mini", messages=[{"role": "user", "content": PROMPT}]
                    )
            trace_id = format(root.get_span_context().trace_id, "032x")
        assert provider.force_flush(30_000)
        return trace_id
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
