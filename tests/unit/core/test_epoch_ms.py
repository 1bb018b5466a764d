"""``epoch_ms`` (every call's ``ts_ms``, the sink's DateTime64(3) value): the float shortcut
gives exactly the floored milliseconds of exact integer arithmetic, at any instant and offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from tokengov.core.calls import epoch_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=12, seconds=1))]
)


@given(
    st.one_of(
        st.datetimes(timezones=offsets),
        st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 2)).map(
            lambda d: d.replace(tzinfo=UTC)
        ),
    )
)
def test_epoch_ms_is_the_exact_floor(ts: datetime) -> None:
    assert epoch_ms(ts) == (ts - EPOCH) // timedelta(milliseconds=1)


def test_edges_of_the_shortcut() -> None:
    for ts in (
        EPOCH,
        EPOCH - timedelta(microseconds=1),
        datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
        datetime(2026, 9, 1, 0, 0, 0, 1000, tzinfo=UTC),  # where float arithmetic rounds down
    ):
        assert epoch_ms(ts) == (ts - EPOCH) // timedelta(milliseconds=1)
