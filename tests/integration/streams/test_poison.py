"""The real worker on the real broker against the poison corpus (tests/integration/streams/
poison.py), and against a message that killed its predecessors: it stays up, every good event
is governed, every bad part is dead-lettered with its reason, and a crash-loop ends."""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.integration.streams.conftest import Cluster
from tests.integration.streams.events import POLICY
from tests.integration.streams.poison import Poison, corpus, good_call, mutations
from tests.waiting import wait_for
from tokengov.app.cli.main import app

pytestmark = pytest.mark.integration


def produce_all(c: Cluster, cases: list[Poison]) -> list[tuple[Poison, int, int]]:
    """Each case after a good call, keys spread over the partitions; returns where each
    case landed (partition, offset). A producer that takes messages over 1 MiB."""
    producer = Producer(
        {"bootstrap.servers": c.bootstrap, "message.max.bytes": 4_000_000, "linger.ms": 5}
    )
    landed: list[tuple[Poison, int, int]] = []

    def on_delivery(case: Poison) -> Any:
        def done(error: Any, message: Any) -> None:
            assert error is None, error
            landed.append((case, message.partition(), message.offset()))

        return done

    for i, case in enumerate(cases):
        key = f"k{i % 16}".encode()
        producer.produce(c.topics.events, key=key, value=orjson.dumps(good_call()))
        producer.produce(c.topics.events, key=key, value=case.value, on_delivery=on_delivery(case))
    assert producer.flush(30) == 0
    assert len(landed) == len(cases)
    return landed


def governed_calls(c: Cluster) -> int:
    """Calls of team ``poison`` in the 1-minute usage windows (each window's last revision)."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for m in c.metrics():
        if m["metric"] != "usage" or m["window"] != "1m" or m["team"] != "poison":
            continue
        key = (m["window_start"], m["workflow"], m["agent"], m["model"])
        if key not in latest or m["revision"] > latest[key]["revision"]:
            latest[key] = m
    return sum(m["calls"] for m in latest.values())


def check_corpus(c: Cluster, cases: list[Poison]) -> None:
    worker = c.start_worker()
    landed = produce_all(c, cases)
    c.wait_processed(90)
    assert worker.alive(), c.tail()

    # every bad part of every case is dead-lettered, with its reason, and nothing else is
    letters: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for letter in c.dead_letters():
        letters[(letter["source_partition"], letter["source_offset"])].append(letter)
    where = {(p, o) for _, p, o in landed}
    assert set(letters) <= where, "a good separator event was dead-lettered"
    for case, p, o in landed:
        got = letters.get((p, o), [])
        assert len(got) == case.dead, (case.name, [g["reason"] for g in got])
        for letter in got:
            assert case.reason in letter["reason"], (case.name, letter["reason"])
            assert len(orjson.dumps(letter)) < 100_000  # bounded, whatever came in
            raw = base64.b64decode(letter["raw_b64"])
            if letter["raw_truncated"]:
                assert len(raw) == 65_536 and letter["raw_bytes"] > 65_536
                assert letter["raw_is"] == "message"
                full = case.value or b""
                assert letter["raw_sha256"] == hashlib.sha256(full).hexdigest()
                assert raw == full[:65_536]
            elif letter["raw_is"] == "message":
                assert raw == (case.value or b"")

    # every good call is governed: the separators and the good parts of every case
    expected = len(cases) + sum(case.governed for case in cases)
    wait_for(
        lambda: governed_calls(c) >= expected,
        60,
        f"{expected} governed calls",
        lambda: f"{governed_calls(c)} so far\n{c.tail()}",
    )
    assert governed_calls(c) == expected
    assert worker.alive()


def test_poison_corpus_never_stops_the_worker(cluster_factory) -> None:
    c = cluster_factory(POLICY)
    cases = corpus()
    check_corpus(c, cases)
    day = datetime.now(UTC).date().isoformat()
    fingerprints = c.fingerprints()
    for agent in ("clock-2099", "clock-tomorrow", "clock-2000"):
        assert fingerprints.count(f"clock_skew|poison|{agent}|{day}") == 1, fingerprints
    skew = next(a for a in c.alerts() if a["labels"].get("agent") == "clock-2099")
    assert skew["kind"] == "clock_skew" and skew["severity"] == "warning"
    assert skew["team"] == "poison" and skew["workflow"] == "poison-flow"
    assert skew["evidence"]["direction"] == "ahead" and skew["evidence"]["skew_seconds"] > 2e9
    behind = next(a for a in c.alerts() if a["labels"].get("agent") == "clock-2000")
    assert behind["evidence"]["direction"] == "behind"


@settings(
    max_examples=1,
    phases=[Phase.generate],
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(mutations(), min_size=60, max_size=60))
def test_hypothesis_poison_never_stops_the_worker(cluster_factory, cases: list[Poison]) -> None:
    check_corpus(cluster_factory(POLICY), cases)


def test_a_message_that_killed_its_worker_three_times_is_skipped(cluster_factory) -> None:
    """What a worker that died three times handling offset 1 of partition 0 leaves on disk
    (the attempt record it writes before handling a message): the next one skips it —
    dead-lettered whole, with an ERROR naming topic, partition and offset — and goes on."""
    c = cluster_factory(POLICY)
    producer = Producer({"bootstrap.servers": c.bootstrap})
    first, deadly, after = good_call(), good_call(), good_call()
    for doc in (first, deadly, after):
        producer.produce(c.topics.events, value=orjson.dumps(doc), partition=0)
    assert producer.flush(10) == 0
    attempts = c.data_dir / "worker" / "attempts"
    attempts.mkdir(parents=True)
    record = b'{"suspects":{"1":3},"handling":1}'
    (attempts / f"{c.topics.events}-0").write_bytes(record.ljust(511) + b"\n")

    worker = c.start_worker()
    c.wait_processed(60)
    assert worker.alive(), c.tail()
    (letter,) = c.dead_letters()
    assert letter["stage"] == "skip"
    assert (letter["source_partition"], letter["source_offset"]) == (0, 1)
    assert "skipped after 3 failed attempts" in letter["reason"]
    assert orjson.loads(base64.b64decode(letter["raw_b64"]))["event_id"] == deadly["event_id"]
    log = worker.tail(50_000)
    assert "ERROR" in log and "SKIPPING a message that failed 3 times" in log
    assert f"{c.topics.events} partition 0 offset 1" in log
    wait_for(lambda: governed_calls(c) == 2, 30, "the two other calls governed", c.tail)

    # the message was fine (what killed the workers is fixed): replay it, and it is governed
    runner = CliRunner()
    where = ["--bootstrap", c.bootstrap, "--topic-prefix", c.prefix]
    listed = runner.invoke(app, ["deadletter", "list", "--json", "--stage", "skip", *where])
    assert listed.exit_code == 0, listed.output
    (record,) = [orjson.loads(line) for line in listed.stdout.splitlines()]
    replayed = runner.invoke(app, ["deadletter", "replay", record["id"], "--yes", *where])
    assert replayed.exit_code == 0, replayed.output
    wait_for(lambda: governed_calls(c) == 3, 60, "the replayed call governed", c.tail)
    assert len(c.dead_letters()) == 1
