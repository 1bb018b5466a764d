from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer

from tokengov.app.cli.query import parse_when

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_ages_dates_and_times():
    assert parse_when("7d", NOW) == NOW - timedelta(days=7)
    assert parse_when("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_when("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_when("2026-11-01T05:00:00Z", NOW) == datetime(2026, 11, 1, 5, tzinfo=UTC)
    offset = parse_when("2026-11-01T05:00:00+02:00", NOW)
    assert offset.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)


def test_nonsense_is_refused_with_a_hint():
    with pytest.raises(typer.BadParameter, match="7d"):
        parse_when("last tuesday", NOW)
