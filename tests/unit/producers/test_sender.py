"""The emitter's sender writes what the contract's models would write, and only that.

The sender builds each event's JSON itself and validates the bytes with the contract's fast
path (``tokengov.core.decoding.fast_message``). The reference here is the models: every
message the sender makes must validate with them and be exactly their JSON of it; what the
fast path cannot decide goes through the models, whose message names the field. No broker:
the sender's drain (``_messages``) runs on a queue filled at the call site.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from tests.unit.producers.test_sdk_payloads import CHAT, MESSAGE
from tokengov.core.contracts import (
    CallEvent,
    Outcome,
    TokenCounts,
    describe_validation_error,
    event_adapter,
)
from tokengov.core.errors import ContractError
from tokengov.producers.adapters import Usage, read_usage
from tokengov.producers.emitter import TokenEmitter, _event_id_batch, _timestamps


def _sent(emitter: TokenEmitter) -> list[tuple[bytes, list[dict[str, Any]]]]:
    out = []
    for key, value, count in emitter._messages():
        doc = orjson.loads(value)
        docs = doc if isinstance(doc, list) else [doc]
        assert len(docs) == count
        out.append((key, docs))
    return out


@pytest.fixture
def emitter(tmp_path: Path) -> TokenEmitter:
    return TokenEmitter("127.0.0.1:9", spool_dir=tmp_path / "spool", start=False)


def test_event_ids_are_random_uuids_as_new_event_id_makes_them() -> None:
    ids = _event_id_batch(4096)
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)  # the standard library's reading of RFC 9562
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
            st.integers(0, 4_102_444_800).map(lambda t: t + 0.5e-6),  # halfway: rounded even
            st.integers(0, 4_102_444_800 * 10**6).map(lambda us: us / 10**6),
        ),
        max_size=20,
    )
)
def test_the_senders_timestamps_are_fromtimestamps(times: list[float]) -> None:
    """The sender reads the call times of a drain in one go: each is
    datetime.fromtimestamp(t, UTC), to the microsecond, but for a time exactly halfway between
    two microseconds (one float in about 15,000 near today's), rounded up rather than to
    the even one."""
    for t, ts in zip(times, _timestamps(times), strict=True):
        expected = datetime.fromtimestamp(t, UTC)
        assert ts.tzinfo is UTC
        if math.modf(t)[0] * 1e6 % 1 == 0.5:  # a tie as fromtimestamp computes it
            assert ts - expected in (timedelta(0), timedelta(microseconds=1)), t
        else:
            assert ts == expected, t


def test_every_message_is_the_models_json_of_it(emitter: TokenEmitter) -> None:
    with emitter.task(team=None, workflow="  ", task_id="t-1", agent="planner") as task:
        task.record(ChatCompletion.model_validate(CHAT), model="gpt-4.1-mini", provider="openai")
        task.record(Message.model_validate(MESSAGE), model="claude-sonnet-4", provider="anthropic")
        task.record(None, model="gpt-4.1-mini", service_tier="batch")
        task.record(TokenCounts(input=10, output=2), model="m", components={"system": 4})
        task.record({"input": 10, "output": 1}, model="m", retry=True, status="error")
        task.record(
            {"prompt_tokens": 100, "completion_tokens": 10, "prompt_tokens_details": None},
            model="m",
            provider="openai",
            latency_ms=12,
            context_window=128_000,
            tool_calls=2,
            tool_name="search",
        )
        task.handoff("researcher").record({"input": 5, "output": 1}, model="m")
    emitter.emit_call(model="m", tokens={"input": 3, "output": 1}, team="ops")  # its own task
    sent = _sent(emitter)
    assert emitter.stats.invalid == 0
    assert [(key, len(docs)) for key, docs in sent] == [(b"t-1", 8), (sent[1][0], 1)]
    for _key, docs in sent:
        for doc in docs:
            model = event_adapter.validate_python(doc)
            assert model.model_dump(mode="json") == doc
    calls = [CallEvent.model_validate(d) for d in sent[0][1][:7]]
    assert {c.team for c in calls} == {"unattributed"} == {c.workflow for c in calls}
    assert [c.usage_missing for c in calls] == [False, False, True, False, False, False, False]
    assert [(c.step, c.attempt, c.agent) for c in calls][-3:] == [
        (4, 2, "planner"),
        (5, 1, "planner"),
        (6, 1, "researcher"),
    ]
    assert isinstance(event_adapter.validate_python(sent[0][1][-1]), Outcome)


def test_what_the_fast_path_cannot_decide_goes_to_the_models(
    emitter: TokenEmitter, caplog: pytest.LogCaptureFixture
) -> None:
    """A reported cost (Decimal), a float count, NaN where JSON would write null: the models
    decide each, exactly as they would have for the values given."""
    with emitter.task(team="search", workflow="wf", task_id="t-2") as task:
        task.record({"input": 10, "output": 1}, model="m", cost_usd=Decimal("0.0012"))
        task.record({"input": 10, "output": 1}, model="m", latency_ms=5.0)  # type: ignore[arg-type]
        task.record({"input": 10, "output": 1}, model="m", latency_ms=float("nan"))  # type: ignore[arg-type]
        task.record({"input": 10, "output": 1}, model="m")
    with caplog.at_level(logging.WARNING, logger="tokengov.producers.emitter"):
        sent = _sent(emitter)
    assert emitter.stats.invalid == 1
    assert "latency_ms" in caplog.text
    docs = sent[0][1]
    assert [d["step"] for d in docs if d["kind"] == "call"] == [1, 2, 4]
    assert docs[0]["cost_usd"] == "0.0012" and docs[1]["latency_ms"] == 5


def test_recorded_calls_alone_with_a_float_json_would_write_as_null(
    emitter: TokenEmitter,
) -> None:
    """An envelope of recorded calls only, checked on its values: a NaN (JSON would write
    null, which the contract takes) and a float where the contract wants an integer or text
    go to the models, which decide as they would for the values given."""
    task = emitter.task(team="search", workflow="wf", task_id="t-4")
    task.record({"input": 10, "output": 1}, model="m", context_window=float("nan"))  # type: ignore[arg-type]
    task.record({"input": 10, "output": 1}, model="m", tool_name=float("nan"))  # type: ignore[arg-type]
    task.record({"input": 10, "output": 1}, model="m", latency_ms=5.0)  # type: ignore[arg-type]
    task.record({"input": 10, "output": 1}, model="m")
    sent = _sent(emitter)
    assert emitter.stats.invalid == 2
    docs = sent[0][1]
    assert [d["step"] for d in docs] == [3, 4] and docs[0]["latency_ms"] == 5
    for doc in docs:
        assert CallEvent.model_validate(doc).model_dump(mode="json") == doc


def test_text_json_cannot_hold_goes_to_the_models(
    emitter: TokenEmitter, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone surrogate (no UTF-8 for it): the envelope cannot be written, so the models
    decide each event; the others are sent, that one is refused naming the field."""
    task = emitter.task(team="search", workflow="wf", task_id="t-5")
    task.record({"input": 10, "output": 1}, model="m\udc80")
    task.record({"input": 10, "output": 1}, model="m")
    with caplog.at_level(logging.WARNING, logger="tokengov.producers.emitter"):
        sent = _sent(emitter)
    assert emitter.stats.invalid == 1 and "model:" in caplog.text
    assert [d["step"] for d in sent[0][1]] == [2]


def test_an_invalid_event_gets_the_models_message_naming_the_field(
    emitter: TokenEmitter, caplog: pytest.LogCaptureFixture
) -> None:
    with emitter.task(team="search", workflow="wf", task_id="t-3") as task:
        task.record({"input": 10, "output": 1}, model="m")
        task.record({"input": 10, "output": 1}, model="m", components={"system": 50})
        task.record({"input": 10, "output": 1}, model="m", step=-1)
        task.record({"input": 10, "output": 1}, model="m", step=3)
    with caplog.at_level(logging.WARNING, logger="tokengov.producers.emitter"):
        sent = _sent(emitter)
    assert emitter.stats.invalid == 2
    base = {"event_id": "e", "ts": "2026-12-06T00:00:00Z", "model": "m", "task_id": "t-3"}
    tokens = {"input": 10, "output": 1}
    expected = []
    for values in ({"components": {"system": 50}, "step": 2}, {"step": -1}):
        with pytest.raises(ValueError) as refused:  # the models' own message for these values
            CallEvent.model_validate({**base, "tokens": tokens, **values})
        expected.append(describe_validation_error(refused.value))  # type: ignore[arg-type]
    assert expected[0].startswith("components: sum to 50") and expected[1].startswith("step: ")
    reasons = [
        r.getMessage().split("it breaks the contract: ", 1)[1]
        for r in caplog.records
        if "breaks the contract" in r.getMessage()
    ]
    assert reasons == expected
    assert [d.get("step") for d in sent[0][1]] == [1, 3, None]  # the good calls, the outcome


def test_an_openai_usage_dict_read_in_one_go_ends_as_read_usage_reads_it(
    emitter: TokenEmitter, caplog: pytest.LogCaptureFixture
) -> None:
    """The sender reads an OpenAI usage dict without checking its counts (the envelope's check
    does): what the check refuses goes to read_usage and the models, with their message."""
    usages: list[dict[str, Any]] = [
        {"prompt_tokens": 10.0, "completion_tokens": 1},  # a whole float: read_usage takes it
        {"prompt_tokens": None, "completion_tokens": 1, "prompt_tokens_details": None},
        {"prompt_tokens": -1, "completion_tokens": 1},
        {"prompt_tokens": 10, "completion_tokens": True},
        {"input_tokens": 10, "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 5}},
        {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "prompt_tokens_details": {
                "cached_tokens": 4,
                "cache_write_tokens": 3,
                "cache_creation_token_details": {"ephemeral_1h_input_tokens": 1},
            },
            "completion_tokens_details": {"reasoning_tokens": 2},
            "service_tier": "flex",
        },
    ]
    expected: list[Any] = []
    for usage in usages:
        try:
            expected.append(read_usage("openai", usage))
        except ContractError as exc:
            expected.append(f"ContractError: {exc}")
    with emitter.task(team="search", workflow="wf", task_id="t-4", provider="openai") as task:
        for usage in usages:
            task.record(usage, model="m")
    with caplog.at_level(logging.WARNING, logger="tokengov.producers.emitter"):
        sent = _sent(emitter)
    calls = [CallEvent.model_validate(d) for d in sent[0][1] if d["kind"] == "call"]
    taken = [e for e in expected if isinstance(e, Usage)]
    assert [(c.tokens, c.service_tier) for c in calls] == [
        (u.tokens, u.service_tier) for u in taken
    ]
    assert len(taken) == 3 and calls[0].tokens.input == 10 and calls[2].tokens.cache_write_1h == 1
    reasons = [
        r.getMessage().split("it breaks the contract: ", 1)[1]
        for r in caplog.records
        if "breaks the contract" in r.getMessage()
    ]
    assert reasons == [e for e in expected if isinstance(e, str)] and len(reasons) == 3
