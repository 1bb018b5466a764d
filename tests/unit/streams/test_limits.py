"""The limits of the wire, the dead-letter record, sums beyond 64 bits, the attempt record and
clock skew — each at its edge, without a broker."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.streams.builders import POLICY, T0, Pipeline, call, outcome, policy
from tokengov.core.calls import from_model, usd
from tokengov.core.contracts import MAX_MESSAGE_BYTES
from tokengov.core.deadletter import DeadLetterRecord
from tokengov.core.decoding import decode_events, fast_message, parse_event
from tokengov.core.message_items import item_problem, load_items
from tokengov.streams.attempts import AttemptLog
from tokengov.streams.core import PartitionProcessor, codec
from tokengov.streams.deadletter import MAX_RAW_BYTES, dead_letter, encode_item

GOOD = call(task="t-1").model_dump(mode="json")


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=json_values, limit=st.integers(min_value=1, max_value=6))
def test_the_depth_check_agrees_with_the_depth(value: Any, limit: int) -> None:
    problem = item_problem(value, limit)
    assert (problem is not None) == (depth_of(value) > limit), (value, problem)
    event = {**GOOD, "x": value}  # inside an event: one level more
    assert (item_problem(event) is None) == (depth_of(value) + 1 <= 64)
    loaded = load_items(json.dumps([event]).encode())
    assert bool(loaded.failures) == (depth_of(value) + 1 > 64)


def envelope(*items: bytes) -> bytes:
    return b"[" + b",".join(items) + b"]"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def event_with(extra: str) -> bytes:
    return orjson.dumps(GOOD)[:-1] + b',"extra":' + extra.encode() + b"}"


def test_nesting_limit_is_64_levels_per_event_in_every_decoder() -> None:
    at_limit, beyond = event_with(deep(63)), event_with(deep(64))  # the event is level 1
    for raw in (at_limit, envelope(at_limit)):
        assert len(decode_events(raw).events) == 1 and not decode_events(raw).failures
    decoded = decode_events(envelope(orjson.dumps(GOOD), beyond, orjson.dumps(GOOD)))
    assert [i for i, _ in decoded.events] == [0, 2]
    ((failure, _),) = decoded.failures
    assert failure.index == 1 and "nested more than 64 levels" in failure.reason
    assert failure.event_id == GOOD["event_id"]
    # beyond what can be parsed at all: the whole message, still named as nesting
    ((failure, item),) = decode_events(event_with(deep(3000))).failures
    assert failure.index is None and item is None and "nested deeper" in failure.reason


def test_message_size_limit_is_one_mebibyte() -> None:
    pad = MAX_MESSAGE_BYTES - len(orjson.dumps(GOOD)) - len(',"pad":""')
    fits = orjson.dumps({**GOOD, "pad": "x" * pad})
    assert len(fits) == MAX_MESSAGE_BYTES
    assert len(decode_events(fits).events) == 1
    over = orjson.dumps({**GOOD, "pad": "x" * (pad + 1)})
    ((failure, item),) = decode_events(over).failures
    assert "message too large: 1048577 bytes" in failure.reason and item is None
    assert fast_message(over) is None


def test_invalid_utf8_loses_only_its_item() -> None:
    bad = orjson.dumps({**GOOD, "event_id": "bad", "note": "@"}).replace(b'"@"', b'"\xff\xfe"')
    bad_team = orjson.dumps({**GOOD, "event_id": "bad2", "team": "@"}).replace(b'"@"', b'"a\xc3"')
    raw = envelope(orjson.dumps(GOOD), bad, bad_team, orjson.dumps(GOOD))
    decoded = decode_events(raw)
    assert [i for i, _ in decoded.events] == [0, 3]
    assert [(f.index, f.event_id, f.reason) for f, _ in decoded.failures] == [
        (1, "bad", "note: text is not valid UTF-8"),
        (2, "bad2", "team: text is not valid UTF-8"),
    ]
    # the dead letter carries the item's bytes exactly as they came
    _, item = decoded.failures[0]
    assert encode_item(item) == bad
    # invalid UTF-8 and invalid JSON: the whole message
    ((failure, _),) = decode_events(b'[{"a": "\xff"}, {nope').failures
    assert failure.index is None and "not valid JSON" in failure.reason


@pytest.mark.parametrize("field", ["step", "tool_calls", "latency_ms", "context_window"])
def test_integer_fields_hold_64_bits_and_no_more(field: str) -> None:
    largest = 2**63 - 1
    for raw in (orjson.dumps({**GOOD, field: largest}), envelope(orjson.dumps(GOOD))):
        assert len(decode_events(raw).events) == 1 and not decode_events(raw).failures
    for value in (2**63, 2**64 - 1, 2**64, 10**30, -1):
        raw = json.dumps({**GOOD, field: value}).encode()
        ((failure, _),) = decode_events(raw).failures
        assert failure.reason.startswith(f"{field}: "), failure.reason


def test_tokens_hold_64_bits_and_no_more() -> None:
    ok = {**GOOD, "tokens": {"input": 2**63 - 1, "output": 2**63 - 1, "cached_input": 2**62}}
    ((_, event),) = decode_events(orjson.dumps(ok)).events
    assert event.input == 2**63 - 1 and event.cached_input == 2**62
    for value in (2**63, 2**64 - 1, 2**64):
        raw = json.dumps({**GOOD, "tokens": {"input": value}}).encode()
        ((failure, _),) = decode_events(raw).failures
        assert failure.reason.startswith("tokens.input: "), failure.reason


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        ("2000-01-01T00:00:00Z", True),
        ("2000-01-01T05:00:00+05:00", True),
        ("1999-12-31T23:59:59.999999Z", False),
        ("2000-01-01T04:59:59+05:00", False),
        ("2099-12-31T23:59:59.999999Z", True),
        ("2100-01-01T00:00:00Z", False),
        ("2099-12-31T20:00:00-04:00", False),
        ("9999-12-31T23:59:59-05:00", False),
        ("0001-01-01T00:00:00+05:00", False),
        ("2150-06-01T00:00:00Z", False),
    ],
)
def test_event_time_range(ts: str, ok: bool) -> None:
    for doc in ({**GOOD, "ts": ts}, {**outcome(task="t").model_dump(mode="json"), "ts": ts}):
        decoded = decode_events(orjson.dumps(doc))
        assert (len(decoded.events) == 1) is ok, ts
        if not ok:
            ((failure, _),) = decoded.failures
            assert failure.reason.startswith("ts: must be from 2000-01-01T00:00:00Z"), failure


def test_loader_never_raises_on_odd_messages() -> None:
    for raw in (None, b"", b" ", b"\xef\xbb\xbf{}", b"NaN", b"[]", b"[[]]", b"1e400", b"\xff"):
        loaded = load_items(raw)
        assert loaded.items or loaded.failures or raw == b"[]"
    assert item_problem({"a": "\udcff"}) == "a: text is not valid UTF-8"


# -- the dead-letter record ---------------------------------------------------------------


def letter(**kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "reason": "r",
        "stage": "decode",
        "topic": "tokengov.events",
        "partition": 1,
        "offset": 7,
        "key": b"k",
        "raw": b"{}",
        **kwargs,
    }
    encoded = dead_letter(**args)
    DeadLetterRecord.model_validate_json(encoded)  # always the contract's record
    record: dict[str, Any] = orjson.loads(encoded)
    return record


def test_dead_letter_keeps_64_kib_of_a_large_raw_with_its_size_and_hash() -> None:
    raw = b"x" * 1_500_000
    record = letter(raw=raw, reason="y" * 50_000)
    assert base64.b64decode(record["raw_b64"]) == raw[:MAX_RAW_BYTES]
    assert record["raw_bytes"] == 1_500_000 and record["raw_truncated"] is True
    assert record["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(record["reason"]) < 2_100 and record["reason"].endswith("(50000 characters)")
    small = letter(raw=b"{nope")
    assert small["raw_truncated"] is False and small["raw_sha256"] is None
    assert small["raw_bytes"] == 5


def test_dead_letter_of_items_that_orjson_cannot_encode() -> None:
    too_deep: Any = []
    for _ in range(300):
        too_deep = [too_deep]
    for item in (too_deep, {"n": 2**70}, {"t": "caf\udcc3"}):
        record = letter(item=item, index=2, raw=b"[...]")
        assert record["raw_is"] == "item", item
        assert json.loads(base64.b64decode(record["raw_b64"]).decode("utf-8", "replace"))
    # nothing can re-encode 5,000 levels: the message is kept instead
    for _ in range(5_000):
        too_deep = [too_deep]
    record = letter(item=too_deep, index=0, raw=b"[the message]")
    assert record["raw_is"] == "message"
    assert base64.b64decode(record["raw_b64"]) == b"[the message]"


# -- money and sums beyond 64 bits ---------------------------------------------------------


def test_codec_round_trips_integers_of_any_size() -> None:
    doc = {"a": [2**63 - 1, 2**63, -(2**63) - 1, 10**40], "b": {"c": 1}, "d": "150000"}
    back = orjson.loads(codec.dumps(doc))
    assert [codec.big(v) for v in back["a"]] == doc["a"]
    assert back["a"][0] == 2**63 - 1  # a number while it fits
    assert back["d"] == "150000" and back["b"] == {"c": 1}


_EDGES = st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 0])


@given(st.lists(st.integers() | _EDGES | st.integers(-(2**70), 2**70), max_size=20))
def test_wide_ints_is_wide_of_a_list_of_integers(values: list[int]) -> None:
    # the windows' and unit metrics' state records use the fast form; wide is the reference
    assert codec.wide_ints(values) == codec.wide(values)
    assert orjson.dumps(codec.wide_ints(values)) == orjson.dumps(codec.wide(values))


WHALE = POLICY.replace("teams:\n", "teams:\n  whale: {owner: whale@example.com}\n").replace(
    "budgets:\n",
    "budgets:\n  - {scope: team, name: whale, period: month, limit_usd: 2000000000000,"
    " thresholds: [0.5, 1.0], forecast: false}\n",
)


def test_a_trillion_dollars_is_exact_through_state_and_partials() -> None:
    """$10^12 and more at femto-USD precision (10^27 femto-USD, far beyond 64 bits): through
    the state records (written, read back by a new processor) and the partials (JSON)."""
    pipe = Pipeline.of(WHALE)
    # gpt-4.1-mini at $0.40 per million input tokens: 2.5e18 tokens = $1,000,000,000,000
    big_call = call(
        task="w", team="whale", input=2_500_000_000_000_000_000, output=0, workflow="other"
    )
    pipe.feed(big_call)
    pipe.feed(call(task="w", team="whale", input=1, output=0, workflow="other"))  # +$0.0000004
    pipe.flush()
    (half,) = pipe.kinds("budget_threshold")
    assert Decimal(half.evidence["spent"]) == Decimal("1000000000000.0000004")
    proc = pipe.proc()
    records = dict(proc.take_records())
    again = PartitionProcessor.load(
        0, [(k, v) for k, v in records.items() if v is not None], pipe.view.settings, pipe.clock
    )
    assert again.record_errors == 0
    task = again.tasks["w"]
    assert usd(task.cost_femto) == Decimal("1000000000000.0000004")
    assert task.tokens == 2_500_000_000_000_000_001
    ((_, budget),) = again.agg.budgets.items()
    assert usd(budget[1]) == Decimal("1000000000000.0000004")
    # the same again: $2 trillion crosses 100 %
    pipe.feed(
        call(task="w2", team="whale", input=2_500_000_000_000_000_000, output=0, workflow="other")
    )
    pipe.flush()
    full = pipe.kinds("budget_threshold")[-1]
    assert Decimal(full.evidence["spent"]) == Decimal("2000000000000.0000004")


# -- the attempt record ---------------------------------------------------------------------


def test_attempts_carry_over_deaths_and_reset_after_success(tmp_path: Path) -> None:
    first = AttemptLog(tmp_path, "tokengov.events")
    assert first.start(3, 10) == 1
    first.done(3, 10)
    assert first.start(3, 11) == 1  # ... and the process dies handling offset 11
    first.close()
    for attempt in (2, 3):  # each successor replays offset 10 (not committed), dies on 11
        again = AttemptLog(tmp_path, "tokengov.events")
        assert again.start(3, 10) == 1
        again.done(3, 10)
        assert again.start(3, 11) == attempt
        again.close()
    last = AttemptLog(tmp_path, "tokengov.events")
    assert last.start(3, 11) == 4  # beyond 3: the stage skips it
    assert last.failed(3, 11) == 5  # (raising counts too)
    last.done(3, 11)
    assert last.start(3, 11) == 1  # handled: a replay of it starts afresh
    assert last.start(4, 11) == 1  # another partition has its own record
    last.close()
    assert AttemptLog(tmp_path, "tokengov.events").start(4, 11) == 2  # it died there
    record = (tmp_path / "tokengov.events-4").read_bytes()  # the documented record
    assert len(record) == 512 and record.endswith(b"\n")
    assert orjson.loads(record) == {"suspects": {"11": 2}, "handling": 11}


_ON_A_FULL_DISK = """
import sys
from pathlib import Path
from tokengov.streams.attempts import AttemptLog
log = AttemptLog(Path(sys.argv[1]), "tokengov.events")
print(log.start(0, 5), log.failed(0, 5), log.broken)
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None,
    reason="mounts a tmpfs of 8 KiB to fill it (needs root and mount)",
)
def test_a_full_disk_does_not_stop_the_worker(tmp_path: Path) -> None:
    """On a full disk the record cannot be kept: the worker counts in memory and goes on.
    (Written through a memory map instead, a new record file takes its disk block at the
    first store, and on a full disk that store kills the process with SIGBUS: checked when
    the map was tried, issue 18's eleventh pass, docs/streams.md "Performance".)"""
    disk = tmp_path / "full"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8k", "tokengov-test", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace')}")
    try:
        (disk / "filler").write_bytes(bytes(8192))  # the disk is full
        child = subprocess.run(
            [sys.executable, "-c", _ON_A_FULL_DISK, str(disk / "attempts")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
        assert child.stdout.split() == ["1", "2", "True"]  # counted in memory, broken said
        assert "No space left on device" in child.stderr
    finally:
        subprocess.run(["umount", str(disk)], check=True)


_DIES_HANDLING = """
import os, sys
from pathlib import Path
from tokengov.streams.attempts import AttemptLog
log = AttemptLog(Path(sys.argv[1]), "tokengov.events")
log.start(2, 40)
log.done(2, 40)
log.start(2, 41)
os.kill(os.getpid(), 9)  # dies handling offset 41: no close, no flush, no exit handler
"""


def test_a_record_outlives_a_killed_process(tmp_path: Path) -> None:
    """What the record guards against: a process killed while handling a message (SIGKILL,
    as the kernel's OOM killer sends) leaves the record behind, for its successor."""
    died = subprocess.run([sys.executable, "-c", _DIES_HANDLING, str(tmp_path)], check=False)
    assert died.returncode == -signal.SIGKILL
    successor = AttemptLog(tmp_path, "tokengov.events")
    assert successor.start(2, 40) == 1  # handled before the death
    successor.done(2, 40)
    assert successor.start(2, 41) == 2  # the death counted
    successor.close()


# -- clock skew -------------------------------------------------------------------------------


def test_events_ahead_are_governed_at_processing_time_and_alerted_once() -> None:
    pipe = Pipeline.of()
    ahead = [
        call(task=f"a{i}", at=86_400 + i, agent="skewed", input=2_500_000, workflow="other")
        for i in range(3)
    ]
    pipe.feed(*ahead, clock_follows=False)
    pipe.feed(call(task="far", at=10**9, agent="skewed", workflow="other"), clock_follows=False)
    pipe.flush()
    proc = pipe.proc()
    assert proc.agg.clock_ahead_events == 4
    assert proc.agg.watermark_ms == int(T0.timestamp() * 1000)  # the processing time, not +1 day
    (skew,) = pipe.kinds("clock_skew")
    assert skew.fingerprint == "clock_skew|search|skewed|2026-11-29"
    assert skew.evidence["skew_seconds"] == 86_400.0 and skew.evidence["direction"] == "ahead"
    assert skew.labels == {"agent": "skewed", "day": "2026-11-29", "direction": "ahead"}
    # the spend counts today: 3 × $1 of the $10 day budget of search is 30 %, the period today
    (budget,) = pipe.agg().budgets.values()
    assert budget.period == "2026-11-29" and budget.cost_usd > Decimal(3)


def test_events_far_behind_are_late_and_alerted() -> None:
    pipe = Pipeline.of()
    old = call(task="old", at=-2 * 86_400, agent="slow", input=2_500_000, workflow="other")
    pipe.feed(old)
    pipe.flush()
    proc = pipe.proc()
    assert proc.agg.clock_behind_events == 1 and proc.agg.late_events == 1
    assert proc.agg.budgets == {} and proc.tasks["old"].calls == 1
    (skew,) = pipe.kinds("clock_skew")
    assert skew.evidence["direction"] == "behind" and skew.evidence["skew_seconds"] == -172_800.0


def test_clock_settings_are_validated() -> None:
    with pytest.raises(Exception, match="max_clock_ahead"):
        policy(POLICY + "streams: {max_clock_ahead: 0s}\n")
    settings_ = policy(POLICY).streams
    assert settings_.max_clock_ahead == timedelta(minutes=5)
    assert settings_.max_clock_behind == timedelta(days=1)
    assert settings_.max_message_attempts == 3


def test_events_within_the_bounds_keep_their_time() -> None:
    pipe = Pipeline.of()
    pipe.feed(call(task="soon", at=240, workflow="other"), clock_follows=False)  # 4 min ahead
    assert pipe.proc().agg.clock_ahead_events == 0
    assert pipe.proc().agg.watermark_ms == int(T0.timestamp() * 1000) + 240_000
    assert from_model(parse_event(GOOD)).ts.tzinfo is UTC
    assert datetime(2026, 11, 29, 5, tzinfo=UTC) == T0


def test_attempts_without_a_writable_directory_count_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    log = AttemptLog(blocker / "attempts", "tokengov.events")
    assert log.start(0, 5) == 1 and log.failed(0, 5) == 2
    log.done(0, 5)
    assert log.broken and log.start(0, 6) == 1
    log.close()


def test_reasons_stay_short_whatever_the_input() -> None:
    ((failure, _),) = decode_events(orjson.dumps({"kind": "x" * 1_000_000})).failures
    assert failure.reason.startswith("kind: unknown kind 'xxx") and len(failure.reason) < 200
    long_team = orjson.dumps({**GOOD, "team": "t" * 1_000_000, "event_id": "e" * 1_000})
    ((failure, _),) = decode_events(long_team).failures
    assert failure.reason == (
        "event_id: String should have at most 128 characters; "
        "team: String should have at most 256 characters"
    )
    assert failure.event_id is None  # an id too long to name anything
