"""``tokengov deadletter list|show|replay`` on the real broker: the records of the three
writers (streams, ClickHouse writer, alert router) and the shapes written before the one
record are listed and shown; replay puts the original bytes back on their source topic."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.core.kafka import CheckedProducer, read_to_end
from tokengov.core.topics import Topics
from tokengov.sinks.clickhouse.deadletter import DeadLetter, DeadLetterProducer
from tokengov.sinks.router.kafka import KafkaDeadLetters
from tokengov.streams.deadletter import dead_letter

pytestmark = pytest.mark.integration

BAD_EVENT = b'{"kind": "call", "tokens": {"input": -1}}'
ALERT = b'{"kind": "runaway", "summary": "no fingerprint"}'
BIG = b'{"pad": "' + b"x" * 70_000 + b'"}'


def cli(bootstrap: str, prefix: str, *args: str) -> Any:
    result = CliRunner().invoke(
        app,
        ["deadletter", *args, "--bootstrap", bootstrap, "--topic-prefix", prefix],
        terminal_width=200,
    )
    return result


def listed(bootstrap: str, prefix: str, *args: str) -> list[dict[str, Any]]:
    result = cli(bootstrap, prefix, "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def write_with_the_three_writers(bootstrap: str, topics: Topics) -> None:
    """One record from each writer, as each writes it."""
    producer = Producer({"bootstrap.servers": bootstrap})
    # the streams' stage 1 publishes dead_letter(...) with the message's key
    producer.produce(
        topics.deadletter,
        key=b"t-bad",
        value=dead_letter(
            reason="tokens.input: Input should be greater than or equal to 0",
            stage="decode",
            topic=topics.events,
            partition=1,
            offset=5,
            key=b"t-bad",
            raw=BAD_EVENT,
        ),
    )
    assert producer.flush(10) == 0
    sink = DeadLetterProducer(bootstrap, topics.deadletter)
    sink.send_all(
        [
            DeadLetter("VIOLATED_CONSTRAINT", b'{"event_id": "e-sink"}', topics.events, 2, 9),
            DeadLetter("too big", BIG, topics.events, 0, 3, "e-big", "token_events"),
        ]
    )
    sink.close()
    publisher = CheckedProducer(bootstrap)
    router = KafkaDeadLetters(publisher, topics.deadletter)
    router.publish(
        ALERT,
        reason="invalid alert: fingerprint: required",
        where={"topic": topics.alerts, "partition": "0", "offset": "4"},
        key=b"search",
    )
    router.publish(
        b'{"alerts": []}',
        reason="undeliverable: receiver 'hook': HTTP 500",
        details={"receiver": "hook", "notification_id": "n-1", "attempts": "3"},
    )
    assert publisher.flush() == 0 and publisher.failed == 0


def write_the_old_shapes(bootstrap: str, topics: Topics) -> None:
    """Records as the three writers wrote them before the one record (issue 12's shapes)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        topics.deadletter,
        key=b"t-old",
        value=orjson.dumps(
            {
                "reason": "not valid JSON",
                "stage": "decode",
                "topic": topics.events,
                "partition": 3,
                "offset": 11,
                "index": None,
                "event_id": None,
                "raw_is": "message",
                "raw_b64": base64.b64encode(b"{not json").decode(),
                "key_b64": base64.b64encode(b"t-old").decode(),
                "dead_lettered_at": "2026-11-29T05:00:01.234Z",
            }
        ),
    )
    producer.produce(
        topics.deadletter,
        value=b'{"event_id": "e-old-sink"}',
        headers=[
            ("reason", b"old sink reason"),
            ("stage", b"sink"),
            ("source_topic", topics.events.encode()),
            ("source_partition", b"2"),
            ("source_offset", b"8"),
            ("event_id", b"e-old-sink"),
        ],
    )
    producer.produce(
        topics.deadletter,
        value=b'{"alerts": ["old"]}',
        headers=[("source", "router"), ("reason", "old router reason"), ("receiver", "hook")],
    )
    assert producer.flush(10) == 0


def test_every_writer_and_every_old_shape_is_listed_and_shown(bootstrap, topic_names, topic_prefix):
    assert listed(bootstrap, topic_prefix) == []
    write_with_the_three_writers(bootstrap, topic_names)
    write_the_old_shapes(bootstrap, topic_names)

    records = listed(bootstrap, topic_prefix)
    assert len(records) == 8
    by_reason = {r["reason"]: r for r in records}
    streams = by_reason["tokens.input: Input should be greater than or equal to 0"]
    assert streams["shape"] == "v1" and streams["stage"] == "decode"
    assert streams["source_topic"] == topic_names.events and streams["source_offset"] == 5
    assert base64.b64decode(streams["raw_b64"]) == BAD_EVENT
    sink = by_reason["VIOLATED_CONSTRAINT"]
    assert sink["stage"] == "sink" and sink["source_partition"] == 2
    router = by_reason["invalid alert: fingerprint: required"]
    assert router["stage"] == "router" and router["source_topic"] == topic_names.alerts
    assert base64.b64decode(router["key_b64"]) == b"search"
    shapes = {r["reason"]: r["shape"] for r in records}
    assert shapes["not valid JSON"] == "streams-v0"
    assert shapes["old sink reason"] == "sink-v0"
    assert shapes["old router reason"] == "router-v0"
    assert by_reason["old sink reason"]["source_offset"] == 8
    assert by_reason["old router reason"]["details"] == {"receiver": "hook"}

    # filters
    assert {r["reason"] for r in listed(bootstrap, topic_prefix, "--stage", "sink")} == {
        "VIOLATED_CONSTRAINT",
        "too big",
        "old sink reason",
    }
    assert len(listed(bootstrap, topic_prefix, "--limit", "3")) == 3
    wrong = cli(bootstrap, topic_prefix, "list", "--stage", "elsewhere")
    assert wrong.exit_code != 0 and "not a stage" in wrong.output
    assert listed(bootstrap, topic_prefix, "--since", "2999-01-01T00:00:00Z") == []
    assert len(listed(bootstrap, topic_prefix, "--since", "1h")) == 7  # the old streams one is
    # dated by its own dead_lettered_at (2026-11-29)

    table = cli(bootstrap, topic_prefix, "list")
    assert table.exit_code == 0, table.output
    rows = [line.split("│")[1:4] for line in table.stdout.splitlines() if ":" in line]
    shown_ids = {cells[0].strip(): cells[2].strip() for cells in rows if len(cells) == 3}
    assert {i: shown_ids.get(i) for i in (streams["id"], sink["id"], router["id"])} == {
        streams["id"]: "decode",
        sink["id"]: "sink",
        router["id"]: "router",
    }

    shown = cli(bootstrap, topic_prefix, "show", streams["id"])
    assert shown.exit_code == 0, shown.output
    assert "tokens.input" in shown.stdout and f"{topic_names.events}[1]@5" in shown.stdout
    assert BAD_EVENT.decode() in shown.stdout and "t-bad" in shown.stdout
    raw = cli(bootstrap, topic_prefix, "show", by_reason["old sink reason"]["id"], "--raw")
    assert raw.exit_code == 0 and raw.stdout_bytes == b'{"event_id": "e-old-sink"}'
    big = cli(bootstrap, topic_prefix, "show", by_reason["too big"]["id"])
    assert big.exit_code == 0 and "cut at the first 64 KiB" in big.stdout
    for absent in ("0:999", "77:0"):
        missing = cli(bootstrap, topic_prefix, "show", absent)
        assert missing.exit_code != 0 and f"no dead letter {absent}" in missing.output
    malformed = cli(bootstrap, topic_prefix, "show", "zero")
    assert malformed.exit_code != 0 and "partition:offset" in malformed.output


def test_replay_sends_the_original_bytes_back_and_refuses_what_it_cannot(
    bootstrap, topic_names, topic_prefix
):
    write_with_the_three_writers(bootstrap, topic_names)
    by_reason = {r["reason"]: r for r in listed(bootstrap, topic_prefix)}
    streams = by_reason["tokens.input: Input should be greater than or equal to 0"]
    sink = by_reason["VIOLATED_CONSTRAINT"]
    router = by_reason["invalid alert: fingerprint: required"]

    cut = cli(bootstrap, topic_prefix, "replay", streams["id"], by_reason["too big"]["id"], "--yes")
    assert cut.exit_code != 0 and "not whole" in cut.output and "nothing was sent" in cut.output
    note = by_reason["undeliverable: receiver 'hook': HTTP 500"]
    nowhere = cli(bootstrap, topic_prefix, "replay", note["id"], "--yes")
    assert nowhere.exit_code != 0 and "no source topic" in nowhere.output
    assert list(read_to_end(bootstrap, topic_names.events)) == []  # nothing was sent

    asked = cli(bootstrap, topic_prefix, "replay", streams["id"])  # no --yes, no answer
    assert asked.exit_code != 0 and list(read_to_end(bootstrap, topic_names.events)) == []

    done = cli(bootstrap, topic_prefix, "replay", streams["id"], sink["id"], router["id"], "--yes")
    assert done.exit_code == 0, done.output
    events = {r.value: r for r in read_to_end(bootstrap, topic_names.events)}
    assert set(events) == {BAD_EVENT, b'{"event_id": "e-sink"}'}
    assert events[BAD_EVENT].key == b"t-bad"  # the original key
    assert events[b'{"event_id": "e-sink"}'].partition == 2  # no key: the source partition
    [alert] = read_to_end(bootstrap, topic_names.alerts)
    assert alert.value == ALERT and alert.key == b"search"
