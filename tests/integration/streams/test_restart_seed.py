"""State intact → nothing seeded: a worker restarted on intact state topics counts each dollar
once even though the store holds the same spend (production: replicated Kafka).

The store is filled (in its own process: chdb allows one per directory) with exactly what a
ClickHouse writer would have stored of the first run — the spend and its 50 % alert. Were
the seed applied on top of the intact state, the budget would hold the stored $0.60 twice and
the next $0.30 would cross 100 %. The seeded case (state gone) is
tests/integration/demo/test_restart_stack.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_EVENT_PARTITIONS
from tests.integration.streams.events import POLICY, call, now
from tests.integration.streams.test_topics_owned import topics_with
from tests.waiting import wait_for
from tokengov.core.topics import topic_specs
from tokengov.streams.topics import StreamsTopics

pytestmark = pytest.mark.integration

FILL_STORE = """
import sys
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.migrate import migrate
dsn, day, fingerprint = sys.argv[1:4]
with ClickHouseStore(dsn) as store:
    migrate(store)
    store.command(
        "INSERT INTO token_events (event_id, ts, team, workflow, task_id, agent, provider, model,"
        " input_tokens, status, cost_usd, schema_version) VALUES ('stored-1', now64(3), "
        "'research', 'unattributed', 'k-spend', 'planner', 'openai', 'gpt-4.1-mini', 1500000, "
        "'ok', 0.6, 1)"
    )
    store.command(
        "INSERT INTO alerts (alert_id, fingerprint, kind, severity, status, team, summary, "
        f"evidence, starts_at) VALUES ('a-1', '{fingerprint}', 'budget_threshold', 'warning', "
        "'firing', 'research', '50 %', '{}', now64(3))"
    )
    assert store.fetch("SELECT toString(sum(cost_usd)) FROM spend_daily").scalar() == "0.6"
"""


def test_restart_on_intact_state_seeds_nothing_and_counts_once(
    cluster_factory, topic_prefix: str
) -> None:
    c = cluster_factory(POLICY)
    day = now().date().isoformat()
    half = f"budget_threshold|research|team:research:day|{day}|usd|0.5"
    full = f"budget_threshold|research|team:research:day|{day}|usd|1.0"

    first = c.start_worker()
    c.send(call("k-spend", team="research", tokens={"input": 1_500_000, "output": 0}))  # $0.60
    wait_for(lambda: half in c.fingerprints(), 40, "the 50 % alert", c.tail)
    c.wait_processed(40)
    first.stop()

    dsn = f"chdb://{(c.data_dir / 'clickhouse').resolve()}"
    filled = subprocess.run(
        [sys.executable, "-c", FILL_STORE, dsn, day, half],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert filled.returncode == 0, filled.stderr

    second = c.start_worker()
    c.send(call("k-more", team="research", tokens={"input": 750_000, "output": 0}))  # $0.90
    c.wait_processed(60)
    assert c.fingerprints() == [half], c.tail()  # 100 % would need the $0.60 counted twice
    log = second.log_path.read_text(errors="replace")
    assert "state topics hold state; nothing is seeded" in log, c.tail()

    c.send(call("k-last", team="research", tokens={"input": 250_000, "output": 0}))  # $1.00
    wait_for(lambda: full in c.fingerprints(), 40, "the 100 % alert", c.tail)
    assert sorted(c.fingerprints()) == sorted([half, full]), c.tail()

    # two worker runs (Faust, aiokafka and librdkafka inside) created no topic of their own:
    # no auto-created topic, no Faust leader or changelog topic
    expected = {
        s.name: s.partitions
        for s in (
            *topic_specs(prefix=topic_prefix, event_partitions=TEST_EVENT_PARTITIONS),
            *StreamsTopics.for_topics(c.topics).specs(TEST_EVENT_PARTITIONS),
        )
    }
    assert topics_with(c.bootstrap, topic_prefix) == expected
