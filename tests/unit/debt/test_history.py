"""The debt role handed its horizon's history from the store (``WorkerContext.debt_history``):
the engine starts with it, and the same events read again from the topic change nothing."""

from __future__ import annotations

import faust

from tokengov.core.calls import from_model
from tokengov.core.policy import Policy
from tokengov.core.settings import Settings
from tokengov.core.worker_context import PolicyHolder, WorkerContext
from tokengov.streams.debt.role import register


def test_history_is_replayed_once_and_the_topic_replay_changes_nothing(
    kit, policy: Policy, tmp_path
) -> None:
    events = [
        kit.call(kit.T0, task="t1", system=100),
        kit.call(kit.T0, task="t1", step=1, system=100),
        kit.outcome(kit.T0, "t1"),
        kit.call(kit.T0, task="t2", system=100),
    ]
    ctx = WorkerContext(
        settings=Settings(data_dir=tmp_path),
        policy=PolicyHolder(policy),
        debt_history=tuple(events),
    )
    # nothing connects: register() only declares the agent, the topics and the timer
    app = faust.App("debt-history-test", broker="kafka://127.0.0.1:9", autodiscover=False)
    role = register(app, ctx)
    stats = role.engine.stats
    assert (stats.observed_calls, stats.outcomes, stats.duplicates) == (3, 1, 0)
    findings_before = role.engine.flush(kit.T0).findings

    for event in events:  # the same events again, from the topic after the restart
        assert not role.engine.observe(from_model(event))
    assert (stats.observed_calls, stats.outcomes, stats.duplicates) == (3, 1, 4)
    assert role.engine.flush(kit.T0).findings == findings_before
