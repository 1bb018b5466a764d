"""Two routers (``tokengov worker --role router`` processes) on the real broker, one webhook
server counting POSTs per group key and notification id: nobody is paged twice while both
run, and when one is SIGKILLed the other takes its partitions over — its pending
notifications are delivered, nothing already sent is sent again, and its groups go on."""

from __future__ import annotations

import asyncio
import re
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.integration.router.conftest import Capture, eventually
from tests.integration.streams.conftest import WorkerProcess
from tokengov.app.local.broker import free_port
from tokengov.core.contracts import Alert
from tokengov.core.kafka import CheckedProducer, read_to_end
from tokengov.core.topics import ALERT_PARTITIONS, Topics
from tokengov.sinks.router.ownership import partition_of

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POLICY = """
version: 1
receivers:
  hook: {{type: webhook, url: "{url}/hook"}}
routes:
  receiver: hook
  group_by: [team]
  group_wait: 200ms
  group_interval: 500ms
  repeat_interval: 1h
"""

#: Teams whose keys cover every alerts partition (checked below).
TEAMS = [f"team-{i}" for i in range(8)]
TAKEN = re.compile(r"alerts partition (\d+) taken over")
GIVEN_UP = re.compile(r"alerts partition (\d+) given up")


def owned(worker: WorkerProcess) -> set[int]:
    """The alerts partitions a router owns, by its log (in order: taken over, given up)."""
    held: set[int] = set()
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if m := TAKEN.search(line):
            held.add(int(m.group(1)))
        elif m := GIVEN_UP.search(line):
            held.discard(int(m.group(1)))
    return held


def alert(team: str, batch: int) -> Alert:
    return Alert(
        alert_id=f"{team}-{batch}",
        fingerprint=f"runaway|{team}|{batch}",
        kind="runaway",
        severity="critical",
        team=team,
        summary=f"batch {batch} of {team}",
        starts_at=datetime.now(UTC),
    )


class Pages:
    """What the webhook received: the notifications of each group, by id, in order."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    def docs(self) -> list[dict[str, object]]:
        return [orjson.loads(r.body) for r in self.capture.on("/hook")]

    def ids(self, team: str) -> list[str]:
        """Distinct notification ids of ``team``'s group, first POST first."""
        seen: dict[str, None] = {}
        for doc in self.docs():
            if doc["group_labels"] == {"team": team}:
                seen.setdefault(str(doc["notification_id"]), None)
        return list(seen)

    def posts(self, notification_id: str) -> int:
        return sum(1 for d in self.docs() if d["notification_id"] == notification_id)

    def by_id(self, notification_id: str) -> dict[str, object]:
        return next(d for d in self.docs() if d["notification_id"] == notification_id)

    def fingerprints(self, notification_id: str) -> set[str]:
        alerts = self.by_id(notification_id)["alerts"]
        assert isinstance(alerts, list)
        return {a["fingerprint"] for a in alerts}


def start_router(
    tmp_path: Path, name: str, bootstrap: str, prefix: str, policy: Path
) -> WorkerProcess:
    cmd = [
        sys.executable,
        "-m",
        "tokengov.app.cli.main",
        "worker",
        "--role",
        "router",
        "--policy",
        str(policy),
        "--data-dir",
        str(tmp_path / name),
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        prefix,
        "--no-create-topics",
    ]
    return WorkerProcess(cmd, tmp_path / f"{name}.log")


async def test_two_routers_page_once_and_one_takes_over_from_a_killed_one(
    bootstrap: str,
    topic_prefix: str,
    topic_names: Topics,
    http_capture: Capture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert {partition_of(t.encode(), ALERT_PARTITIONS) for t in TEAMS} == set(
        range(ALERT_PARTITIONS)
    )
    # no ClickHouse here: the notifications log stays in memory (a closed port refuses)
    monkeypatch.setenv("TOKENGOV_CLICKHOUSE_URL", f"http://127.0.0.1:{free_port()}/none")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(url=http_capture.url))
    routers = [start_router(tmp_path, name, bootstrap, topic_prefix, policy) for name in ("a", "b")]
    producer = CheckedProducer(bootstrap)
    pages = Pages(http_capture)

    def tails() -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.tail()}" for w in routers)

    def publish(batch: int) -> None:
        for team in TEAMS:
            a = alert(team, batch)
            producer.publish(topic_names.alerts, a.model_dump_json().encode(), key=team.encode())
        producer.deliver(10)

    try:
        # --- both run, each owns part of the partitions
        def split() -> bool:
            a, b = owned(routers[0]), owned(routers[1])
            return bool(a) and bool(b) and not a & b and a | b == set(range(ALERT_PARTITIONS))

        try:
            await eventually(split, timeout_s=60, what="the routers to share the partitions")
        except AssertionError:
            raise AssertionError(tails()) from None
        publish(1)
        await eventually(
            lambda: all(pages.ids(t) for t in TEAMS), timeout_s=30, what="every group paged"
        )
        publish(2)
        await eventually(
            lambda: all(len(pages.ids(t)) == 2 for t in TEAMS),
            timeout_s=30,
            what="every group paged about batch 2",
        )
        # the producers' partitioner is the one ownership assumes: key = team, murmur2
        for record in read_to_end(bootstrap, topic_names.alerts):
            team = Alert.model_validate_json(record.value or b"").team
            assert record.partition == partition_of(team.encode(), ALERT_PARTITIONS)

        # --- batch 3 is being delivered (the webhook holds every request) when b is killed
        victim = routers[1]
        victim_teams = {
            t for t in TEAMS if partition_of(t.encode(), ALERT_PARTITIONS) in owned(victim)
        }
        http_capture.hold = asyncio.Event()
        publish(3)
        await eventually(
            lambda: any(len(pages.ids(t)) == 3 for t in victim_teams),
            timeout_s=30,
            what="b to send a notification about batch 3",
        )
        victim.kill()  # SIGKILL
        http_capture.hold.set()
        in_flight = [pages.ids(t)[2] for t in victim_teams if len(pages.ids(t)) == 3]
        # the survivor reads b's outbox back and delivers what b had not finished (the one in
        # flight again, with the same id: at least once, and a receiver can deduplicate)
        try:
            await eventually(
                lambda: (
                    all(len(pages.ids(t)) >= 3 for t in TEAMS)
                    and all(pages.posts(n) >= 2 for n in in_flight)
                ),
                timeout_s=45,
                what="the survivor to deliver what b left undelivered",
            )
        except AssertionError:
            raise AssertionError(tails()) from None
        assert owned(routers[0]) == set(range(ALERT_PARTITIONS)), tails()

        # --- and it goes on with b's groups: batch 4 is one notification per group, about new
        # alerts in a group that still holds all four (a forgotten group would start over)
        publish(4)
        await eventually(
            lambda: all(len(pages.ids(t)) >= 4 for t in TEAMS),
            timeout_s=30,
            what="every group paged about batch 4",
        )
        for team in TEAMS:
            ids = pages.ids(team)
            assert len(ids) == 4, (team, ids)  # never a second notification for one change
            last = pages.by_id(ids[3])
            assert last["reason"] == "new alerts in group", (team, last["reason"])
            assert pages.fingerprints(ids[3]) == {f"runaway|{team}|{b}" for b in (1, 2, 3, 4)}
            assert pages.fingerprints(ids[2]) == {f"runaway|{team}|{b}" for b in (1, 2, 3)}
            for earlier in ids[:2]:  # sent before the kill: never sent again
                assert pages.posts(earlier) == 1, (team, earlier)
            if ids[2] not in in_flight:
                assert pages.posts(ids[2]) == 1, team
        delivered = defaultdict(int)
        for worker in routers:
            delivered[worker.log_path.name] = worker.tail(10**7).count("delivered [FIRING")
        assert all(delivered.values()), delivered  # both routers delivered their share
    finally:
        for worker in routers:
            worker.stop()
