"""The debt stages' records read back to what was written: calls (a cost beyond 64 bits
included), shares, and a partition's whole state (handover → restore)."""

from __future__ import annotations

from datetime import timedelta

import orjson

from tokengov.core.calls import Call, from_model
from tokengov.streams.core import codec
from tokengov.streams.debt import wire
from tokengov.streams.debt.engine import DebtJudge, DebtTallies


def test_a_call_reads_back_equal_even_with_a_cost_beyond_64_bits(kit) -> None:
    call = from_model(kit.call(kit.T0 + timedelta(microseconds=7), task="t", system=10))
    assert isinstance(call, Call)
    call.cost_femto = 2**70
    doc = orjson.loads(codec.dumps(wire.encode_call(call)))
    assert wire.decode_call(doc) == call


def test_shares_and_a_handover_read_back_to_the_same_judgement(policy, kit) -> None:
    events = [
        e
        for i in range(25)
        for e in (
            kit.call(kit.T0 + timedelta(seconds=i), task=f"m{i}", step=0, memory=6000),
            kit.call(
                kit.T0 + timedelta(seconds=i, milliseconds=5), task=f"m{i}", step=1, memory=6000
            ),
        )
    ]
    first = DebtTallies(policy)
    for event in events[:30]:
        first.observe(from_model(event))
    handover = first.handover(next_offset=30)

    second = DebtTallies(policy)
    second.restore(orjson.loads(handover))
    assert second.open_tasks == first.open_tasks
    for event in events:  # the first 30 again: duplicates
        second.observe(from_model(event))
    assert second.stats.duplicates == 30

    whole = DebtTallies(policy)
    for event in events:
        whole.observe(from_model(event))
    at = kit.T0 + timedelta(hours=1)
    judged = []
    for tallies in (second, whole):
        judge = DebtJudge(policy)
        for share in tallies.take():
            value = wire.encode_share(0, share)
            assert value is not None
            judge.apply(*wire.decode_share(orjson.loads(value)))
        judged.append(judge.flush(at).findings)
    assert judged[0] == judged[1] and judged[0]
