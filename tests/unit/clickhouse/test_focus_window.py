"""The FOCUS export's window, format choice and CSV fields (no store needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.sinks.clickhouse.focus import FileFormat, FocusWindow, Granularity, _text


def test_covering_rounds_both_ends_down_to_whole_periods() -> None:
    since = datetime(2026, 10, 30, 5, 42, 7, 123000, tzinfo=UTC)
    until = datetime(2026, 11, 2, 3, 0, 0, 1, tzinfo=UTC)
    hourly = FocusWindow.covering(since, until, Granularity.hour)
    assert (hourly.since, hourly.until) == (
        datetime(2026, 10, 30, 5, tzinfo=UTC),
        datetime(2026, 11, 2, 3, tzinfo=UTC),
    )
    daily = FocusWindow.covering(since, until, Granularity.day)
    assert (daily.since, daily.until) == (
        datetime(2026, 10, 30, tzinfo=UTC),
        datetime(2026, 11, 2, tzinfo=UTC),
    )
    assert daily.parameters() == {"since": "2026-10-30 00:00:00", "until": "2026-11-02 00:00:00"}


def test_periods_are_utc_whatever_the_offset_given() -> None:
    # 01:30 at UTC+02:00 is 23:30 UTC the day before
    local = datetime(2026, 10, 30, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    window = FocusWindow.covering(local, local + timedelta(days=2), Granularity.day)
    assert window.since == datetime(2026, 10, 29, tzinfo=UTC)


def test_window_refuses_naive_unaligned_and_reversed_ends() -> None:
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        FocusWindow(datetime(2026, 10, 30), datetime(2026, 10, 31, tzinfo=UTC))
    with pytest.raises(
        ValueError, match=r"until \(2026-10-31T00:30:00\+00:00\) must start an hour"
    ):
        FocusWindow(datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 10, 31, 0, 30, tzinfo=UTC))
    with pytest.raises(ValueError, match="must not be after until"):
        FocusWindow(datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 10, 30, tzinfo=UTC))


def test_format_from_the_option_else_the_suffix() -> None:
    assert FileFormat.of(Path("a.CSV"), None) is FileFormat.csv
    assert FileFormat.of(Path("a.parquet"), None) is FileFormat.parquet
    assert FileFormat.of(Path("a.pq"), None) is FileFormat.parquet
    assert FileFormat.of(Path("a.csv"), FileFormat.parquet) is FileFormat.parquet
    with pytest.raises(ValueError, match=r"--out a\.txt: cannot tell the format"):
        FileFormat.of(Path("a.txt"), None)


def test_csv_fields_are_exact_text() -> None:
    assert _text(Decimal("0E-12"), "decimal") == "0.000000000000"
    assert _text(Decimal("123456789.000000000001"), "decimal") == "123456789.000000000001"
    assert _text(Decimal("1.5"), "decimal") == "1.500000000000"
    assert _text(3750, "quantity") == "3750.0"
    assert _text(datetime(2026, 10, 30, 10, tzinfo=UTC), "datetime") == "2026-10-30T10:00:00Z"
    assert _text({"b": "é", "a": "x"}, "json") == '{"a":"x","b":"é"}'
    assert _text(None, "string") == ""


def test_cli_refuses_a_start_after_the_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["export", "focus", "--data-dir", str(tmp_path), "--out", str(tmp_path / "f.csv"),
         "--since", "2026-11-02", "--until", "2026-11-01"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "must not be after until" in " ".join(result.output.split())
    assert not (tmp_path / "f.csv").exists()


def test_chunks_cut_hours_at_days_and_days_at_months() -> None:
    hourly = FocusWindow(
        datetime(2026, 10, 30, 22, tzinfo=UTC), datetime(2026, 11, 1, 3, tzinfo=UTC)
    )
    assert [(c.since.isoformat(), c.until.isoformat()) for c in hourly.chunks()] == [
        ("2026-10-30T22:00:00+00:00", "2026-10-31T00:00:00+00:00"),
        ("2026-10-31T00:00:00+00:00", "2026-11-01T00:00:00+00:00"),
        ("2026-11-01T00:00:00+00:00", "2026-11-01T03:00:00+00:00"),
    ]
    daily = FocusWindow(
        datetime(2026, 11, 29, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC), Granularity.day
    )
    assert [(c.since.date().isoformat(), c.until.date().isoformat()) for c in daily.chunks()] == [
        ("2026-11-29", "2026-12-01"),
        ("2026-12-01", "2027-01-01"),
        ("2027-01-01", "2027-01-02"),
    ]
    empty = FocusWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert empty.chunks() == []
