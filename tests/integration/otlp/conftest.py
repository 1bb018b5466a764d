"""Fixtures of the OTLP receiver tests: the receiver on a loopback port (its own event loop
in a thread, producing to the session's Tansu broker), a loopback server answering like
OpenAI's API (the one stand-in: there is no network), and readers of the topics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.kafka import read_to_end
from tokengov.core.policy import Policy, parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.ingest.otlp.runtime import build_receiver
from tokengov.ingest.otlp.server import OtlpReceiver

POLICY = """
version: 1
teams:
  search: {owner: search@example.com}
otlp:
  service_teams: {support-agent: search}
"""


class RunningReceiver:
    """An :class:`OtlpReceiver` serving on its own event loop in a thread."""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        host, port = asyncio.run_coroutine_threadsafe(
            receiver.start("127.0.0.1", 0), self.loop
        ).result(10)
        self.url = f"http://{host}:{port}/v1/traces"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def start_receiver(
    bootstrap: str, topics: Topics, policy: Policy, tmp: Path, **settings: Any
) -> RunningReceiver:
    config = Settings(kafka_bootstrap=bootstrap, data_dir=tmp, **settings)
    return RunningReceiver(build_receiver(config, policy, topics))


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY)


@pytest.fixture
def receiver(
    bootstrap: str, topic_names: Topics, policy: Policy, tmp_path: Path
) -> Iterator[RunningReceiver]:
    running = start_receiver(bootstrap, topic_names, policy, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def read_events(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every event on ``topic``, envelopes opened, each with its message key."""
    out: list[dict[str, Any]] = []
    for record in read_to_end(bootstrap, topic):
        doc = orjson.loads(record.value or b"null")
        for event in doc if isinstance(doc, list) else [doc]:
            out.append({**event, "_key": (record.key or b"").decode()})
    return out


def read_dead_letters(bootstrap: str, topic: str) -> list[DeadLetterRecord]:
    return [
        DeadLetterRecord.model_validate_json(record.value or b"")
        for record in read_to_end(bootstrap, topic)
    ]


def chat_completion(
    model: str, *, prompt: int, cached: int, completion: int, reasoning: int
) -> bytes:
    """A chat completion as OpenAI's API answers it, built with the official client's types."""
    return (
        ChatCompletion.model_validate(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 1_767_000_000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "SECRET-COMPLETION-TEXT"},
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": cached},
                    "completion_tokens_details": {"reasoning_tokens": reasoning},
                },
            }
        )
        .model_dump_json()
        .encode()
    )


class FakeOpenAI:
    """A loopback HTTP server answering ``POST /v1/chat/completions`` like OpenAI's API."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.answer)))
                self.end_headers()
                self.wfile.write(outer.answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(
        chat_completion("gpt-4.1-mini", prompt=1200, cached=800, completion=300, reasoning=100)
    )
    try:
        yield server
    finally:
        server.close()
