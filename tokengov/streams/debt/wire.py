"""The debt stages' records, as JSON (:mod:`tokengov.streams.core.codec`).

- a **share** (:class:`~tokengov.streams.debt.engine.WorkflowTallies`): stage 1 → stage 2 on
  ``<prefix>tokengov.streams.debt-tallies``, key ``<workflow>|p<events partition>``, in the
  partition of the workflow (:func:`judge_partition`); a tombstone when the share is gone;
- a **handover**: the whole stage-1 state of one events partition (open tasks with their calls,
  closed buckets, the event ids seen in the horizon), key ``\\x00handover|p<partition>`` in
  the same topic's partition ``<partition> % N``, written when a worker gives the partition
  up and read by its next owner.

Times are integer microseconds since the epoch (exact); money is decimal text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from aiokafka.partitioner import murmur2

from tokengov.core.calls import Call
from tokengov.streams.core import codec
from tokengov.streams.debt.tally import Buckets, Tally, WorkflowTallies

__all__ = [
    "HANDOVER_PREFIX",
    "decode_buckets",
    "decode_call",
    "decode_share",
    "encode_buckets",
    "encode_call",
    "encode_share",
    "from_micros",
    "handover_key",
    "judge_partition",
    "micros",
    "share_key",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
HANDOVER_PREFIX: Final = b"\x00handover|"
_CALL_FIELDS: Final = tuple(s for s in Call.__slots__ if s not in ("ts", "ts_ms"))


def micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _US


def judge_partition(workflow: str, partitions: int) -> int:
    """The partition of the tallies topic whose owner judges ``workflow`` (murmur2, as Kafka's
    default partitioner would place the key ``workflow``)."""
    return int(murmur2(workflow.encode()) & 0x7FFFFFFF) % partitions


def share_key(workflow: str, partition: int) -> bytes:
    return f"{workflow}|p{partition}".encode()


def handover_key(partition: int) -> bytes:
    return HANDOVER_PREFIX + f"p{partition}".encode()


def _tally(t: Tally) -> list[Any]:
    return [t.counts, t.waste_tokens, str(t.waste_usd), sorted(t.names)]


def _untally(doc: list[Any]) -> Tally:
    counts, tokens, usd, names = doc
    return Tally(dict(counts), codec.big(tokens), Decimal(usd), set(names))


def encode_buckets(buckets: Buckets) -> list[Any]:
    return [
        [team, workflow, agent, detector, [[micros(s), _tally(t)] for s, t in held.items()]]
        for (team, workflow, agent, detector), held in buckets.items()
    ]


def decode_buckets(doc: list[Any]) -> Buckets:
    return {
        (team, workflow, agent, detector): {from_micros(s): _untally(t) for s, t in held}
        for team, workflow, agent, detector, held in doc
    }


def encode_share(partition: int, share: WorkflowTallies) -> bytes | None:
    """The share's record value; None (a tombstone) when nothing of it is left."""
    if not share.buckets:
        return None
    return codec.dumps(
        {
            "workflow": share.workflow,
            "partition": partition,
            "watermark_us": micros(share.watermark),
            "first_seen_us": micros(share.first_seen),
            "calls": share.calls,
            "buckets": encode_buckets(share.buckets),
        }
    )


def decode_share(doc: dict[str, Any]) -> tuple[int, WorkflowTallies]:
    return int(doc["partition"]), WorkflowTallies(
        doc["workflow"],
        from_micros(doc["watermark_us"]),
        from_micros(doc["first_seen_us"]),
        int(doc["calls"]),
        decode_buckets(doc["buckets"]),
    )


def encode_call(call: Call) -> list[Any]:
    return [micros(call.ts), *(getattr(call, name) for name in _CALL_FIELDS)]


def decode_call(doc: list[Any]) -> Call:
    fields = dict(zip(_CALL_FIELDS, doc[1:], strict=True))
    fields["components"] = tuple(fields["components"])
    if fields["cost_femto"] is not None:
        fields["cost_femto"] = codec.big(fields["cost_femto"])
    return Call(ts=from_micros(doc[0]), **fields)
