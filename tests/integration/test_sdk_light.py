"""The SDK without the server dependencies (``pip install tokengov``, no ``[server]``).

Each check runs in a fresh interpreter whose import system refuses the server extra's
packages (as if they were not installed): the SDK imports, emits real events to the
session's Tansu broker, reads them back, and its guard obeys a pause; the console script
says to install ``tokengov[server]`` in one line instead of a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tokengov.app.console import SERVER_MODULES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

#: Installed as the first finder: importing any of these raises ModuleNotFoundError.
REFUSE_SERVER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    SERVER = {sorted(SERVER_MODULES)!r}

    class RefuseServer(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in SERVER:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, RefuseServer())
    for name in list(sys.modules):
        if name.partition(".")[0] in SERVER:
            del sys.modules[name]
    """
)

SDK_SESSION = textwrap.dedent(
    """
    import json, sys, tempfile
    from datetime import timedelta

    try:
        import faust  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the refusal does not work: faust imported")

    from tokengov import Guard, TaskPaused, TokenEmitter
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from tokengov.core.contracts import Decision, utcnow
    from tokengov.core.topics import Topics

    bootstrap, prefix = sys.argv[1:3]
    topics = Topics.with_prefix(prefix)
    with TokenEmitter(bootstrap, topic=topics.events, spool_dir=tempfile.mkdtemp()) as emitter:
        with emitter.task(team="search", workflow="triage", task_id="t-light") as task:
            task.record({"prompt_tokens": 120, "completion_tokens": 7}, model="gpt-4.1-mini",
                        provider="openai")
            task.record({"input": 30, "output": 2}, model="gpt-4.1-mini")

    # read the bytes back as any Kafka client would: one event or a batch envelope each
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sdk-light",
                         "enable.partition.eof": True})
    partitions = consumer.list_topics(topics.events, timeout=10).topics[topics.events].partitions
    consumer.assign([TopicPartition(topics.events, p, 0) for p in partitions])
    events, at_end = [], set()
    while len(at_end) < len(partitions):
        message = consumer.poll(10)
        assert message is not None, "no end of partition within 10 s"
        if message.error():
            assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
            at_end.add(message.partition())
            continue
        value = json.loads(message.value())
        events.extend(value if isinstance(value, list) else [value])
    consumer.close()

    try:  # the collector is optional: a clear error naming the extra, not a traceback
        emitter.prometheus_collector()
        collector = "built"
    except ModuleNotFoundError as exc:
        collector = str(exc)

    pause = Decision(scope="task", key="t-light", action="pause", reason="runaway",
                     expires_at=utcnow() + timedelta(hours=1))
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topics.decisions, key=pause.topic_key.encode(),
                     value=pause.model_dump_json().encode())
    assert producer.flush(10) == 0
    with Guard(bootstrap, topics) as guard:
        caught_up = guard.wait_caught_up(20)
        try:
            guard.before_call("t-light")
            verdict = "proceed"
        except TaskPaused as exc:
            verdict = f"paused: {exc.decision.reason}"
        other = guard.before_call("t-other").action

    server_loaded = sorted(
        {name.partition(".")[0] for name in sys.modules} & set(SERVER)
    )
    print(json.dumps({
        "calls": [[e["task_id"], e["tokens"]["input"], e["tokens"]["output"]]
                  for e in events if e["kind"] == "call"],
        "outcomes": [e["status"] for e in events if e["kind"] == "outcome"],
        "invalid": emitter.stats.invalid,
        "caught_up": caught_up,
        "verdict": verdict,
        "other": other,
        "server_loaded": server_loaded,
        "collector": collector,
    }))
    """
)


def run_without_server(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", REFUSE_SERVER + code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_sdk_emits_reads_back_and_obeys_the_guard_without_server_packages(
    bootstrap, topics, topic_prefix
) -> None:
    result = run_without_server(SDK_SESSION, bootstrap, topic_prefix)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "calls": [["t-light", 120, 7], ["t-light", 30, 2]],
        "outcomes": ["success"],
        "invalid": 0,
        "caught_up": True,
        "verdict": "paused: runaway",
        "other": "proceed",
        "server_loaded": [],
        "collector": "the emitter's Prometheus collector needs prometheus-client "
        "(prometheus_client is not installed): pip install 'tokengov[metrics]'",
    }


def test_the_console_script_asks_for_the_server_extra() -> None:
    result = run_without_server(
        "from tokengov.app.console import main\nimport sys\nsys.argv = ['tokengov', 'up']\nmain()"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "tokengov: the command line needs the server dependencies (typer is not installed): "
        "pip install 'tokengov[server]'"
    ]
    assert "Traceback" not in result.stderr
