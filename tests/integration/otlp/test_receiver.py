"""The OTLP/HTTP receiver against the real clients: the official ``openai`` client
instrumented with ``opentelemetry-instrumentation-openai-v2`` and exported with the SDK's
OTLP/HTTP exporter; OTLP/JSON and gzip bodies; the OTLP specification's answers
(https://opentelemetry.io/docs/specs/otlp/#otlphttp-response). Events land on the real
(Tansu) broker."""

from __future__ import annotations

import base64
import gzip
import logging
from pathlib import Path

import httpx
import orjson
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.kafka_helpers import DeadPort
from tests.otlp_spans import chat_span, otlp_protobuf, sdk_spans
from tokengov.app.local.broker import free_port
from tokengov.core.policy import Policy
from tokengov.core.topics import Topics

from .agent import COMPLETION, PROMPT, run_agent
from .conftest import (
    FakeOpenAI,
    RunningReceiver,
    read_dead_letters,
    read_events,
    start_receiver,
)

pytestmark = pytest.mark.integration

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def test_an_instrumented_openai_agent_becomes_call_events(
    receiver: RunningReceiver,
    fake_openai: FakeOpenAI,
    bootstrap: str,
    topic_names: Topics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokengov")
    trace_id = run_agent(fake_openai.base_url, receiver.url, calls=3)
    assert fake_openai.requests == 3
    events = read_events(bootstrap, topic_names.events)
    assert len(events) == 3  # the two invoke_agent spans and the plain span are not counted
    for event in events:
        assert event["_key"] == trace_id == event["task_id"]  # keyed by task: the trace
        assert event["event_id"].startswith(f"otel-{trace_id}-")
        assert (event["team"], event["workflow"]) == ("search", "support-agent")
        assert (event["agent"], event["parent_agent"]) == ("researcher", "supervisor")
        assert (event["provider"], event["model"], event["status"]) == (
            "openai",
            "gpt-4.1-mini",
            "ok",
        )
        # what the instrumentation reports of the official client's usage object
        assert (event["tokens"]["input"], event["tokens"]["output"]) == (1200, 300)
        assert event["latency_ms"] >= 0
    assert len({e["event_id"] for e in events}) == 3
    stats = receiver.receiver.stats
    assert (stats.spans_received, stats.spans_ignored, stats.spans_aggregate) == (6, 1, 2)
    # the spans carried the prompt and the completion; nothing of them went anywhere
    raw = b"".join(r.value or b"" for r in _records(bootstrap, topic_names))
    for secret in (PROMPT, COMPLETION, "SECRET"):
        assert secret.encode() not in raw
        assert secret not in caplog.text


def _records(bootstrap: str, topics: Topics) -> list:  # type: ignore[type-arg]
    from tokengov.core.kafka import read_to_end

    return [*read_to_end(bootstrap, topics.events), *read_to_end(bootstrap, topics.deadletter)]


def test_an_export_sent_twice_counts_once(
    receiver: RunningReceiver, bootstrap: str, topic_names: Topics
) -> None:
    body = otlp_protobuf(sdk_spans(chat_span))
    for _ in range(2):
        assert httpx.post(receiver.url, content=body, headers=PROTOBUF).status_code == 200
    events = read_events(bootstrap, topic_names.events)
    assert len(events) == 2 and len({e["event_id"] for e in events}) == 1


# OTLP/JSON as the specification spells it (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
# lowerCamelCase keys, hex trace/span ids (upper case allowed), 64-bit integers as strings,
# enums as integers; the shape of opentelemetry-proto's examples/trace.json, with a GenAI
# span next to its plain server span.
TRACE_ID = "5B8EFFF798038103D269B633813FC60C"
OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "spans": [
                        {
                            "traceId": TRACE_ID,
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "EEE19B7EC3C1B173",
                            "name": "I'm a server span",
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "kind": 2,
                            "attributes": [
                                {"key": "my.span.attr", "value": {"stringValue": "some value"}}
                            ],
                        },
                        {
                            "traceId": TRACE_ID,
                            "spanId": "EEE19B7EC3C1B175",
                            "parentSpanId": "EEE19B7EC3C1B174",
                            "name": "chat claude-sonnet-4",
                            "startTimeUnixNano": "1767000000000000000",
                            "endTimeUnixNano": "1767000000850000000",
                            "kind": 3,
                            "status": {"code": 2, "message": "upstream 529"},
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4"}},
                                {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-42"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "5000"}},
                                {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "4000"}},
                                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "120"}},
                                {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "tool_use"}]}}},
                                {"key": "gen_ai.input.messages", "value": {"stringValue": "SECRET-PROMPT-TEXT"}},
                            ],
                        },
                    ],
                }
            ],
        }
    ]
}  # fmt: skip


@pytest.mark.parametrize("gzipped", [False, True], ids=["json", "json+gzip"])
def test_otlp_json_gzip_or_not(
    receiver: RunningReceiver, bootstrap: str, topic_names: Topics, gzipped: bool
) -> None:
    body = orjson.dumps(OTLP_JSON)
    headers = dict(JSON)
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    answer = httpx.post(receiver.url, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert orjson.loads(answer.content) == {}  # no partialSuccess: everything accepted
    (event,) = read_events(bootstrap, topic_names.events)
    assert event["event_id"] == f"otel-{TRACE_ID.lower()}-eee19b7ec3c1b175"
    assert (event["task_id"], event["_key"], event["workflow"]) == (
        "conv-42",
        "conv-42",
        "my.service",
    )
    assert event["team"] == "unattributed"  # no team attribute, no team for my.service
    assert event["tokens"]["input"] == 5000 and event["tokens"]["cached_input"] == 4000
    assert (event["status"], event["latency_ms"], event["tool_calls"]) == ("error", 850, 1)
    assert event["ts"] == "2025-12-29T09:20:00.850000Z"
    assert b"SECRET" not in orjson.dumps(event)


def test_protobuf_gzip(receiver: RunningReceiver, bootstrap: str, topic_names: Topics) -> None:
    body = gzip.compress(otlp_protobuf(sdk_spans(chat_span)))
    answer = httpx.post(
        receiver.url, content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert not response.HasField("partial_success")
    assert len(read_events(bootstrap, topic_names.events)) == 1


def _broken_spans(tracer: object) -> None:
    chat_span(tracer)  # fine
    chat_span(tracer, **{"gen_ai.request.model": ""})  # a model call without a model
    chat_span(tracer, **{"gen_ai.usage.output_tokens": -5})  # a negative count


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_unusable_spans_answer_partial_success_and_are_dead_lettered(
    receiver: RunningReceiver, bootstrap: str, topic_names: Topics, encoding: str
) -> None:
    spans = sdk_spans(_broken_spans)
    if encoding == "protobuf":
        answer = httpx.post(receiver.url, content=otlp_protobuf(spans), headers=PROTOBUF)
        assert answer.status_code == 200
        partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
        rejected, message = partial.rejected_spans, partial.error_message
    else:
        doc = json_format.MessageToDict(encode_spans(spans))
        for rs in doc["resourceSpans"]:  # the JSON encoding's ids are hex
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
        answer = httpx.post(receiver.url, content=orjson.dumps(doc), headers=JSON)
        assert answer.status_code == 200
        partial_doc = orjson.loads(answer.content)["partialSuccess"]
        rejected, message = int(partial_doc["rejectedSpans"]), partial_doc["errorMessage"]
    assert rejected == 2
    assert "dead-lettered" in message and "gen_ai.request.model" in message
    assert len(read_events(bootstrap, topic_names.events)) == 1
    letters = read_dead_letters(bootstrap, topic_names.deadletter)
    assert len(letters) == 2
    reasons = sorted(letter.reason for letter in letters)
    assert "gen_ai.request.model" in reasons[0] or "gen_ai.request.model" in reasons[1]
    assert any("-5" in reason for reason in reasons)
    for letter in letters:
        assert (letter.stage, letter.raw_is) == ("ingest", "span")
        doc = orjson.loads(letter.raw())
        assert doc["trace_id"] == letter.details["trace_id"]
        assert doc["span_id"] == letter.details["span_id"]
        assert doc["attributes"]["gen_ai.operation.name"] == "chat"
        assert "gen_ai.usage.input_tokens" in doc["attributes"]
        assert "gen_ai.input.messages" not in doc["attributes"]
        assert b"SECRET" not in letter.raw()
        assert doc["resource"]["service.name"] == "support-agent"


@pytest.fixture
def guarded(bootstrap: str, topic_names: Topics, policy: Policy, tmp_path: Path) -> RunningReceiver:
    running = start_receiver(
        bootstrap,
        topic_names,
        policy,
        tmp_path,
        otlp_max_body_bytes=16_384,
        otlp_token="s3cret-token",
    )
    yield running  # type: ignore[misc]
    running.stop()


def _status(answer: httpx.Response) -> Status:
    if answer.headers["Content-Type"].startswith("application/json"):
        doc = orjson.loads(answer.content)
        return Status(code=doc.get("code", 0), message=doc.get("message", ""))
    return Status.FromString(answer.content)


def test_the_edges_of_the_specification(
    guarded: RunningReceiver, bootstrap: str, topic_names: Topics
) -> None:
    auth = {"Authorization": "Bearer s3cret-token"}
    good = otlp_protobuf(sdk_spans(chat_span))

    def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(guarded.url, content=body, headers=headers)

    cases = [
        # (what, body, headers, status, words of the message)
        ("no token", good, PROTOBUF, 401, "bearer token"),
        ("wrong token", good, {**PROTOBUF, "Authorization": "Bearer nope"}, 401, "bearer token"),
        ("not protobuf", b"\xff\xff\xff\xff", {**PROTOBUF, **auth}, 400, "protobuf"),
        ("not JSON", b"{", {**JSON, **auth}, 400, "not JSON"),
        (
            "hex id",
            orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}),
            {**JSON, **auth},
            400,
            "traceId",
        ),
        ("not gzip", b"plain", {**PROTOBUF, **auth, "Content-Encoding": "gzip"}, 400, "gzip"),
        ("content type", good, {"Content-Type": "text/plain", **auth}, 415, "Content-Type"),
        ("encoding", good, {**PROTOBUF, **auth, "Content-Encoding": "br"}, 415, "br"),
        ("too large", b"\0" * 20_000, {**PROTOBUF, **auth}, 413, "16384"),
        (
            "inflates too large",
            gzip.compress(b"\0" * 100_000),
            {**PROTOBUF, **auth, "Content-Encoding": "gzip"},
            413,
            "16384",
        ),
    ]
    for what, body, headers, status, words in cases:
        answer = post(body, headers)
        assert answer.status_code == status, (what, answer.text)
        assert words in _status(answer).message, (what, _status(answer).message)
    # none of that stopped the receiver, nor produced anything
    assert read_events(bootstrap, topic_names.events) == []
    assert post(good, {**PROTOBUF, **auth}).status_code == 200
    assert len(read_events(bootstrap, topic_names.events)) == 1
    counted = guarded.receiver.stats.requests_by_status
    assert counted == {401: 2, 400: 4, 415: 2, 413: 2, 200: 1}


def test_kafka_unavailable_answers_503_with_retry_after(
    topic_names: Topics, policy: Policy, tmp_path: Path
) -> None:
    port = free_port()
    dead = DeadPort(port)
    try:
        running = start_receiver(
            f"127.0.0.1:{port}", topic_names, policy, tmp_path, otlp_delivery_timeout_s=1
        )
        try:
            answer = httpx.post(
                running.url,
                content=otlp_protobuf(sdk_spans(chat_span)),
                headers=PROTOBUF,
                timeout=30,
            )
            assert answer.status_code == 503
            assert answer.headers["Retry-After"] == "5"
            assert "Kafka did not acknowledge" in Status.FromString(answer.content).message
            assert running.receiver.stats.events_delivered == 0
        finally:
            running.stop()
    finally:
        dead.close()


def test_a_full_producer_queue_answers_503_at_once(
    topic_names: Topics, policy: Policy, tmp_path: Path
) -> None:
    """Kafka down and the producer's queue full (one message here): the request is answered
    503 with Retry-After as soon as a message finds no room, instead of blocking the event
    loop while the queue drains (the delivery timeout is long, so only the full queue can
    answer before the client gives up)."""
    port = free_port()
    dead = DeadPort(port)
    try:
        running = start_receiver(
            f"127.0.0.1:{port}",
            topic_names,
            policy,
            tmp_path,
            otlp_delivery_timeout_s=60,
            otlp_queue_max_messages=1,
        )

        def three_tasks(tracer: object) -> None:
            for task in ("t-1", "t-2", "t-3"):  # three envelopes, one per task
                chat_span(tracer, **{"gen_ai.conversation.id": task})

        try:
            answer = httpx.post(
                running.url,
                content=otlp_protobuf(sdk_spans(three_tasks)),
                headers=PROTOBUF,
                timeout=20,
            )
            assert answer.status_code == 503
            assert answer.headers["Retry-After"] == "5"
            message = Status.FromString(answer.content).message
            assert "queue is full" in message, message
            assert running.receiver.stats.events_delivered == 0
            assert running.receiver.stats.requests_by_status == {503: 1}
        finally:
            running.receiver.tracker.timeout_s = 0.5  # shutdown: do not wait for the dead broker
            running.stop()
    finally:
        dead.close()
