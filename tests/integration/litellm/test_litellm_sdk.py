"""The LiteLLM SDK with tokengov's callback, on the session's Tansu broker: calls answered by
LiteLLM's own mock (``mock_response``) become events with LiteLLM's usage, the model and the
attribution from LiteLLM's metadata; tokengov's decisions are obeyed before ``acompletion``
(pause refused, fallback swapped, throttle waited or refused) and by ``check`` for
``completion``. No prompt or completion text reaches an event or a log line."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Usage as AnthropicUsage

from tests.kafka_helpers import DeadPort
from tokengov.app.local.broker import free_port
from tokengov.core.contracts import Decision, TokenCounts, utcnow
from tokengov.core.kafka import read_to_end
from tokengov.integrations.litellm import (
    AGENT,
    STEP,
    TASK_ID,
    TEAM,
    WORKFLOW,
    TaskPaused,
)
from tokengov.producers.adapters import from_anthropic, from_openai_chat
from tokengov.producers.emitter import TokenEmitter

from .conftest import publish, unregister

pytestmark = [
    pytest.mark.integration,
    # LiteLLM's own TypedDicts, typed by pydantic when LiteLLM first loads them
    pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning"),
]

PROVIDERS = Path(__file__).resolve().parents[2] / "fixtures" / "providers"
PROMPT = "PROMPT-7f3a the customer's card number is 4242"
ANSWER = "ANSWER-91bc here is what I found"
TOOL_ARGUMENTS = '{"order": "ARGS-55e0"}'
SECRETS = ("PROMPT-7f3a", "ANSWER-91bc", "ARGS-55e0", "4242")


def events_on(bootstrap: str, topic: str) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Every event on ``topic`` (envelopes unpacked) and the raw message values."""
    raw = [r.value for r in read_to_end(bootstrap, topic, timeout_s=30) if r.value]
    events: list[dict[str, Any]] = []
    for value in raw:
        doc = orjson.loads(value)
        events.extend(doc if isinstance(doc, list) else [doc])
    return events, raw


def decision(scope: str, key: str, action: str, **extra: Any) -> Decision:
    return Decision(
        scope=scope,  # type: ignore[arg-type]
        key=key,
        action=action,  # type: ignore[arg-type]
        reason=f"test: {action} {scope} {key}",
        expires_at=utcnow() + timedelta(hours=1),
        **extra,
    )


def test_a_completion_is_one_event_with_its_usage_model_and_attribution(
    litellm, make_callback, bootstrap, topic_names, caplog
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokengov")
    callback = make_callback()
    response = litellm.completion(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": PROMPT}],
        mock_response=ANSWER,
        mock_tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": TOOL_ARGUMENTS},
            }
        ],
        metadata={
            TASK_ID: "t-lite-1",
            TEAM: "search",
            WORKFLOW: "support-triage",
            AGENT: "planner",
            STEP: 3,
        },
        user="end-user-7",
    )
    callback.close()

    events, raw = events_on(bootstrap, topic_names.events)
    assert len(events) == 1, events  # one event per call, however LiteLLM logs it
    (event,) = events
    usage = response.usage  # LiteLLM's own mock usage
    assert event["tokens"]["input"] == usage.prompt_tokens > 0
    assert event["tokens"]["output"] == usage.completion_tokens > 0
    assert {k: event[k] for k in ("task_id", "team", "workflow", "agent", "step", "attempt")} == {
        "task_id": "t-lite-1",
        "team": "search",
        "workflow": "support-triage",
        "agent": "planner",
        "step": 3,
        "attempt": 1,
    }
    assert (event["model"], event["provider"], event["status"]) == ("gpt-4.1-mini", "openai", "ok")
    assert (event["tool_calls"], event["tool_name"]) == (1, "lookup_order")
    assert event["usage_missing"] is False
    assert event["context_window"] == litellm.get_model_info("gpt-4.1-mini")["max_input_tokens"]
    assert isinstance(event["latency_ms"], int)
    assert callback.stats.recorded == 1 and callback.stats.errors == 0

    # never the prompt, the completion or the tool arguments: not on the wire, not in logs
    for secret in SECRETS:
        assert all(secret.encode() not in value for value in raw), secret
        assert secret not in caplog.text, secret


def test_unattributed_calls_fall_back_to_litellm_metadata_then_to_the_unattributed_bucket(
    litellm, make_callback, bootstrap, topic_names
) -> None:
    callback = make_callback()
    messages = [{"role": "user", "content": "hello"}]
    litellm.completion(
        model="gpt-4.1-mini",
        messages=messages,
        mock_response="hi",
        metadata={"tags": ["env:prod", "workflow:billing-bot"]},
        litellm_session_id="session-42",
        user="end-user-9",
    )
    litellm.completion(model="gpt-4.1-mini", messages=messages, mock_response="hi")
    callback.close()

    events, _ = events_on(bootstrap, topic_names.events)
    tagged, bare = sorted(events, key=lambda e: e["workflow"] == "unattributed")
    assert (tagged["workflow"], tagged["task_id"], tagged["agent"], tagged["team"]) == (
        "billing-bot",
        "session-42",
        "end-user-9",
        "unattributed",
    )
    assert (bare["team"], bare["workflow"], bare["agent"]) == ("unattributed",) * 2 + ("agent",)
    assert bare["task_id"] == bare["event_id"]  # no task: the call is its own task


def test_a_streamed_completion_is_one_event_with_the_usage_litellm_counted(
    litellm, make_callback, bootstrap, topic_names
) -> None:
    callback = make_callback()
    messages = [{"role": "user", "content": PROMPT}]
    chunks = list(
        litellm.completion(
            model="gpt-4.1-mini",
            messages=messages,
            mock_response=ANSWER,
            stream=True,
            metadata={TASK_ID: "t-stream"},
        )
    )
    usage = litellm.stream_chunk_builder(chunks, messages=messages).usage
    for _ in range(1000):  # LiteLLM logs a stream once it is consumed, in a thread of its own
        if callback.stats.recorded:
            break
        time.sleep(0.01)
    callback.close()

    events, raw = events_on(bootstrap, topic_names.events)
    assert [(e["task_id"], e["tokens"]["input"], e["tokens"]["output"]) for e in events] == [
        ("t-stream", usage.prompt_tokens, usage.completion_tokens)
    ]
    assert usage.completion_tokens > 0 and events[0]["usage_missing"] is False
    assert all(secret.encode() not in value for value in raw for secret in SECRETS)


def _anthropic_1h_usage() -> dict[str, Any]:
    """An Anthropic usage with 5-minute and 1-hour cache writes, as its official SDK types it."""
    return AnthropicUsage.model_validate(
        {
            "input_tokens": 40,
            "cache_read_input_tokens": 5000,
            "cache_creation_input_tokens": 1500,
            "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000},
            "output_tokens": 250,
        }
    ).model_dump()


@pytest.mark.parametrize(
    ("model", "provider_usage", "reader"),
    [
        pytest.param(
            "gpt-4.1-mini",
            lambda: json.loads((PROVIDERS / "openai_chat.json").read_text())["usage"],
            from_openai_chat,
            id="openai-cached-and-reasoning",
        ),
        pytest.param(
            "anthropic/claude-sonnet-4-20250514",
            lambda: json.loads((PROVIDERS / "anthropic_messages.json").read_text())["usage"],
            from_anthropic,
            id="anthropic-cache-write",
        ),
        pytest.param(
            "anthropic/claude-sonnet-4-20250514",
            lambda: json.loads((PROVIDERS / "anthropic_cache_hit.json").read_text())["usage"],
            from_anthropic,
            id="anthropic-cache-read",
        ),
        pytest.param(
            "anthropic/claude-sonnet-4-20250514",
            _anthropic_1h_usage,
            from_anthropic,
            id="anthropic-1h-cache-write",
        ),
    ],
)
def test_litellm_usage_counts_as_the_providers_own_usage(
    litellm, make_callback, bootstrap, topic_names, model, provider_usage, reader
) -> None:
    """LiteLLM converts each provider's usage into its own (for Anthropic, with LiteLLM's own
    Anthropic transformation); the event must count exactly what the SDK's reader of the
    provider's payload counts: cache reads, cache writes (1-hour part too), reasoning."""
    raw = provider_usage()
    if model.startswith("anthropic/"):
        from litellm.llms.anthropic.chat.transformation import AnthropicConfig

        usage = AnthropicConfig().calculate_usage(usage_object=raw, reasoning_content=None)
    else:
        usage = litellm.Usage(**raw)
    mocked = litellm.ModelResponse(
        model=model.split("/")[-1],
        choices=[{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        usage=usage,
    )
    callback = make_callback()
    litellm.completion(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        mock_response=mocked,
        metadata={TASK_ID: "t-usage"},
    )
    callback.close()

    (event,), _ = events_on(bootstrap, topic_names.events)
    expected = reader(raw)
    assert TokenCounts.model_validate(event["tokens"]) == expected
    assert expected.cached_input or expected.cache_write or expected.reasoning  # a real case


def test_failed_calls_are_events_with_their_status_and_no_usage(
    litellm, make_callback, bootstrap, topic_names
) -> None:
    callback = make_callback()
    metadata = {TASK_ID: "t-fail", WORKFLOW: "support-triage"}
    with pytest.raises(litellm.exceptions.InternalServerError):
        litellm.completion(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": PROMPT}],
            mock_response=Exception("the provider is down"),
            metadata=metadata,
        )
    with pytest.raises(litellm.Timeout):
        litellm.completion(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": PROMPT}],
            mock_timeout=True,
            timeout=0.01,
            metadata=metadata,
        )
    callback.close()

    events, _ = events_on(bootstrap, topic_names.events)
    assert sorted(e["status"] for e in events) == ["error", "timeout"]
    for event in events:
        assert (event["task_id"], event["workflow"]) == ("t-fail", "support-triage")
        assert event["usage_missing"] is True
        assert event["tokens"]["input"] == event["tokens"]["output"] == 0


def test_acompletion_obeys_pause_fallback_and_throttle(
    litellm, make_callback, waits, bootstrap, topic_names
) -> None:
    from tokengov.integrations.litellm import ThrottleRefused  # imports LiteLLM: not at collection

    publish(
        bootstrap,
        topic_names,
        decision("task", "t-paused", "pause"),
        decision("workflow", "wf-cheap", "fallback", fallback_model="gpt-4.1-nano"),
        decision("team", "team-slow", "throttle", throttle_ms=200),
        decision("team", "team-stopped", "throttle", throttle_ms=60_000),
    )
    callback = make_callback(max_throttle_wait_s=5)

    def call(**metadata: Any) -> Any:
        return litellm.acompletion(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "hi"}],
            mock_response="ok",
            metadata=metadata,
        )

    async def scenario() -> tuple[Any, Any, Any]:
        with pytest.raises(TaskPaused) as paused:
            await call(**{TASK_ID: "t-paused"})
        with pytest.raises(ThrottleRefused) as refused:
            await call(**{TASK_ID: "t-4", TEAM: "team-stopped"})
        fallback = await call(**{TASK_ID: "t-2", WORKFLOW: "wf-cheap"})
        await call(**{TASK_ID: "t-3", TEAM: "team-slow"})
        for _ in range(1000):  # LiteLLM logs successes in a task of its own: let it run
            if callback.stats.recorded == 2:
                break
            await asyncio.sleep(0.01)
        return paused, refused, fallback

    paused, refused, fallback = asyncio.run(scenario())
    assert paused.value.decision.reason == "test: pause task t-paused"
    assert "task:t-paused is paused" in str(paused.value)
    assert refused.value.wait_ms == 60_000
    assert fallback.model == "gpt-4.1-nano"
    assert waits.seconds == [0.2]
    assert (callback.stats.refused, callback.stats.fallbacks, callback.stats.throttled) == (2, 1, 1)
    callback.close()

    events, _ = events_on(bootstrap, topic_names.events)
    # the refused calls reached no model: no event; the others one each
    assert sorted((e["task_id"], e["model"]) for e in events) == [
        ("t-2", "gpt-4.1-nano"),
        ("t-3", "gpt-4.1-mini"),
    ]


def test_check_enforces_decisions_for_synchronous_completion(
    litellm, make_callback, waits, bootstrap, topic_names
) -> None:
    publish(
        bootstrap,
        topic_names,
        decision("team", "search", "pause"),
        decision("task", "t-cheap", "fallback", fallback_model="gpt-4.1-nano"),
        decision("workflow", "wf-slow", "throttle", throttle_ms=150),
    )
    callback = make_callback()
    request = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}

    with pytest.raises(TaskPaused, match="team:search is paused"):
        callback.check({**request, "metadata": {TEAM: "search", TASK_ID: "t-1"}})
    swapped = callback.check({**request, "metadata": {TASK_ID: "t-cheap"}})
    assert swapped["model"] == "gpt-4.1-nano" and request["model"] == "gpt-4.1-mini"
    slowed = callback.check({**request, "metadata": {WORKFLOW: "wf-slow"}})
    assert slowed["model"] == "gpt-4.1-mini" and waits.seconds == [0.15]
    response = litellm.completion(**swapped, mock_response="ok")
    assert response.model == "gpt-4.1-nano"


def test_calls_go_on_while_kafka_is_down_and_their_events_wait_in_the_spool(
    litellm, tmp_path
) -> None:
    """No broker answers: the guard has no decision (the calls proceed), the events are
    accepted at once and spooled to disk when the emitter closes; nothing reaches LiteLLM."""
    from tokengov.integrations.litellm import TokengovCallback  # imports LiteLLM

    port = free_port()
    down = DeadPort(port)
    emitter = TokenEmitter(
        f"127.0.0.1:{port}", spool_dir=tmp_path / "spool", delivery_timeout_ms=1000
    )
    callback = TokengovCallback(f"127.0.0.1:{port}", emitter=emitter)
    litellm.callbacks = [callback]
    request = {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "mock_response": "ok",
        "metadata": {TASK_ID: "t-offline"},
    }

    async def acompletion() -> Any:
        answer = await litellm.acompletion(**request)
        for _ in range(1000):  # LiteLLM logs successes in a task of its own: let it run
            if callback.stats.recorded == 2:
                break
            await asyncio.sleep(0.01)
        return answer

    try:
        response = litellm.completion(**request)
        answer = asyncio.run(acompletion())
    finally:
        unregister(litellm, callback)
        callback.close()
        emitter.close(timeout_s=10)
        down.close()
    assert response.choices[0].message.content == answer.choices[0].message.content == "ok"
    assert callback.stats.errors == 0
    assert emitter.stats.accepted == callback.stats.recorded == 2
    assert emitter.stats.spooled == 2  # kept on disk for the next emitter to replay
