"""Spans → call events without I/O: spans made by the OpenTelemetry SDK, encoded by its OTLP
encoder, converted under attribution policies."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.otlp_spans import chat_span, otlp_request, sdk_spans
from tokengov.core.errors import PolicyError
from tokengov.core.policy import OtlpAttribution, parse_policy
from tokengov.ingest.otlp.spans import SpanConverter, _iso_time, is_content

OWNERS = {"triage": "support"}


def convert(build: Any, attribution: OtlpAttribution | None = None, **resource: Any) -> Any:
    converter = SpanConverter(attribution or OtlpAttribution(), OWNERS.get)
    return converter.convert(otlp_request(sdk_spans(build, **resource)))


def only_event(conversion: Any) -> Any:
    (events,) = conversion.by_task.values()
    (event,) = events
    return event


def conversion_keys(conversion: Any) -> list[str]:
    return [task for task, _ in conversion.envelopes]


def test_defaults_task_from_the_conversation_else_the_trace_and_workflow_from_the_service() -> None:
    def build(tracer: Any) -> None:
        chat_span(tracer)
        chat_span(tracer, **{"gen_ai.conversation.id": "conv-1"})

    conversion = convert(build)
    assert sorted(len(v) for v in conversion.by_task.values()) == [1, 1]
    tasks = set(conversion.by_task)
    assert "conv-1" in tasks
    (trace_task,) = tasks - {"conv-1"}
    (event,) = conversion.by_task[trace_task]
    assert re.fullmatch(f"otel-{trace_task}-[0-9a-f]{{16}}", event["event_id"])
    assert re.fullmatch("[0-9a-f]{32}", trace_task)
    assert (event["workflow"], event["team"]) == ("support-agent", "unattributed")


def test_attribution_precedence_span_then_agent_spans_then_resource() -> None:
    policy = OtlpAttribution(
        task_id=["app.session"], workflow=["app.flow"], team=["app.team"], task_from_trace=False
    )

    def build(tracer: Any) -> None:
        with tracer.start_as_current_span(
            "invoke_agent a",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "a",
                "app.session": "from-agent",
                "app.team": "team-agent",
            },
        ):
            chat_span(tracer, **{"app.team": "team-span"})

    event = only_event(convert(build, policy, **{"app.flow": "flow-resource"}))
    assert (event["task_id"], event["team"], event["workflow"]) == (
        "from-agent",
        "team-span",
        "flow-resource",
    )


def test_no_task_and_no_trace_fallback_makes_the_call_its_own_task() -> None:
    conversion = convert(chat_span, OtlpAttribution(task_from_trace=False))
    event = only_event(conversion)
    assert "task_id" not in event  # no task: the event is its own (keyed by its id)
    assert conversion_keys(conversion) == [event["event_id"]]


def test_team_from_service_teams_then_the_workflows_cost_profile() -> None:
    by_service = OtlpAttribution(service_teams={"support-agent": "search"})
    assert only_event(convert(chat_span, by_service))["team"] == "search"
    event = only_event(convert(chat_span, service="triage"))
    assert (event["workflow"], event["team"]) == ("triage", "support")


def test_agent_and_parent_agent_through_spans_of_any_kind() -> None:
    def build(tracer: Any) -> None:
        agent = {"gen_ai.operation.name": "invoke_agent"}
        with (
            tracer.start_as_current_span("s", attributes={**agent, "gen_ai.agent.name": "sup"}),
            tracer.start_as_current_span("http"),
            tracer.start_as_current_span("r", attributes={**agent, "gen_ai.agent.id": "res-7"}),
        ):
            chat_span(tracer)

    conversion = convert(build)
    event = only_event(conversion)
    assert (event["agent"], event["parent_agent"]) == ("res-7", "sup")
    assert (conversion.spans, conversion.ignored, conversion.aggregate) == (4, 1, 2)


def test_tool_calls_from_execute_tool_children_else_the_finish_reason() -> None:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span(
            "chat",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m",
                "gen_ai.usage.input_tokens": 10,
            },
        ):
            for name in ("search_docs", "fetch"):
                with tracer.start_as_current_span(
                    "execute_tool",
                    attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name},
                ):
                    pass

    event = only_event(convert(build))
    assert (event["tool_calls"], event["tool_name"]) == (2, "fetch")
    finish = only_event(
        convert(lambda t: chat_span(t, **{"gen_ai.response.finish_reasons": ["tool_calls"]}))
    )
    assert finish["tool_calls"] == 1


def test_status_latency_and_time_from_the_span() -> None:
    from opentelemetry.trace import Status, StatusCode

    def build(tracer: Any) -> None:
        span = tracer.start_span(
            "chat",
            start_time=1_767_000_000_000_000_000,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
        )
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=1_767_000_001_250_000_000)

    event = only_event(convert(build))
    assert (event["status"], event["latency_ms"], event["usage_missing"]) == ("error", 1250, True)
    assert event["ts"] == "2025-12-29T09:20:01.250000Z"
    timeout = only_event(convert(lambda t: chat_span(t, **{"error.type": "ReadTimeout"})))
    assert timeout["status"] == "timeout"


def test_content_attributes_are_never_read_even_when_the_policy_names_them() -> None:
    policy = OtlpAttribution(task_id=["gen_ai.input.messages", "gen_ai.prompt"])
    conversion = convert(chat_span, policy)
    event = only_event(conversion)
    assert b"SECRET" not in b"".join(value for _, value in conversion.envelopes)
    assert re.fullmatch("[0-9a-f]{32}", event["task_id"])  # the trace id, not the prompt


@pytest.mark.parametrize(
    ("key", "content"),
    [
        ("gen_ai.input.messages", True),
        ("gen_ai.output.messages", True),
        ("gen_ai.system_instructions", True),
        ("gen_ai.prompt.0.content", True),
        ("gen_ai.completion.0.content", True),
        ("llm.prompts", True),
        ("traceloop.entity.input", True),
        ("gen_ai.tool.call.arguments", True),
        ("gen_ai.usage.prompt_tokens", False),
        ("gen_ai.usage.input_tokens", False),
        ("gen_ai.request.model", False),
        ("service.name", False),
    ],
)
def test_is_content(key: str, content: bool) -> None:
    assert is_content(key) is content


def test_the_policy_section_is_checked_with_paths() -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy("version: 1\notlp:\n  service_teams: {checkout: nobody}\n")
    assert 'otlp.service_teams.checkout: undefined team "nobody"' in str(raised.value)
    with pytest.raises(PolicyError) as raised:
        parse_policy("version: 1\notlp:\n  tasks: [x]\n")
    assert "otlp.tasks" in str(raised.value)
    policy = parse_policy(
        "version: 1\nteams: {search: {owner: a@b.c}}\n"
        "otlp: {task_id: [app.session], service_teams: {checkout: search}}\n"
    )
    assert policy.otlp.task_id == ["app.session"]
    assert policy.otlp.workflow == ["tokengov.workflow", "gen_ai.workflow.name", "service.name"]


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=1, max_value=2**64 - 1),  # fixed64 end_time_unix_nano
        # near half-microseconds, where rounding decides
        st.integers(min_value=1_600_000_000_000, max_value=2_000_000_000_000).map(
            lambda micros: micros * 1000 + 500
        ),
    )
)
def test_event_times_are_what_datetime_makes_of_the_span_end(unix_nano: int) -> None:
    """The event's ``ts`` is exactly what ``datetime.fromtimestamp`` makes of the span's end
    (the reference: CPython's own conversion and ISO formatting)."""
    expected = datetime.fromtimestamp(unix_nano / 1e9, UTC).isoformat(timespec="microseconds")
    assert _iso_time(unix_nano) == expected.replace("+00:00", "Z")
