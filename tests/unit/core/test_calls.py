"""``Call`` and ``Done``, the decoded events every consumer works with, are msgspec structs:
built as the slotted classes they replace were, with the same ``ts_ms``, equality and
``__slots__`` (the debt role's handover writes a call's fields in that order)."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.unit.streams.builders import call, outcome
from tokengov.core.calls import CALL_ARGS, Call, Done, call_args, epoch_ms, from_model

T = datetime(2026, 11, 29, 5, 0, 0, 123_456, tzinfo=UTC)
PLUS_5 = timezone(timedelta(hours=5))


def test_ts_ms_is_worked_out_from_ts_however_a_call_is_built() -> None:
    c = from_model(call(cache_write=50, cache_write_1h=20))
    assert type(c) is Call and c.ts_ms == epoch_ms(c.ts)
    args = call_args(c)
    assert Call(*args) == c and Call(**dict(zip(CALL_ARGS, args, strict=True))) == c
    assert Call(*args, 0).ts_ms == c.ts_ms  # (a value passed for it is not taken)
    later = c.at(T)
    assert (later.ts, later.ts_ms) == (T, 1_795_928_400_123) and later.event_id == c.event_id
    assert c.ts_ms == epoch_ms(c.ts)  # (at() makes a copy)
    # before the epoch: floored, as a DateTime64(3) column keeps it
    assert c.at(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)).ts_ms == -1
    done = from_model(outcome(quality=0.5))
    assert type(done) is Done and done.ts_ms == epoch_ms(done.ts)
    assert done.at(T).ts_ms == 1_795_928_400_123 and done.at(T).quality == 0.5


def test_equality_hash_copies_and_slots_as_before() -> None:
    c = from_model(call())
    # equal fields and the same UTC offset; the same instant at another offset is not equal
    assert c == Call(*call_args(c)) and c != c.at(c.ts.astimezone(PLUS_5))
    assert c.at(c.ts.astimezone(PLUS_5)).ts_ms == c.ts_ms
    assert c != Call(*call_args(c)[:-1], True) and c != call_args(c)
    with pytest.raises(TypeError):
        hash(c)
    for same in (pickle.loads(pickle.dumps(c)), copy.copy(c), copy.deepcopy(c)):
        assert same == c and same.ts_ms == c.ts_ms
    done = from_model(outcome())
    assert pickle.loads(pickle.dumps(done)) == done and done != done.at(T)
    assert Call.__slots__ == tuple(sorted((*CALL_ARGS, "ts_ms")))
    assert (c.kind, done.kind, Call.kind) == ("call", "outcome", "call")
    assert c.history == c.components[3] and c.tokens_total == c.input + c.output
