"""Decoding the query endpoint's JSON by ClickHouse type, and its tagged parameters."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from tokengov.sinks.clickhouse.endpoint import jsonable
from tokengov.sinks.clickhouse.endpoint_values import (
    decode_parameters,
    decoder,
    encode_parameters,
    split_type,
)


def test_split_type_respects_nesting_and_quotes():
    assert split_type("String") == ("String", [])
    assert split_type("Map(String, Array(Tuple(Int64, String)))") == (
        "Map",
        ["String", "Array(Tuple(Int64, String))"],
    )
    assert split_type("DateTime64(3, 'Europe/Paris')") == ("DateTime64", ["3", "'Europe/Paris'"])
    assert split_type("Enum8('a,b' = 1, 'c' = 2)") == ("Enum8", ["'a,b' = 1", "'c' = 2"])


@pytest.mark.parametrize(
    ("type_name", "sent", "expected"),
    [
        ("Decimal(38, 12)", "0.000560000000", Decimal("0.000560000000")),
        ("Nullable(Decimal(18, 4))", None, None),
        ("LowCardinality(Nullable(String))", "x", "x"),
        (
            "DateTime64(3, 'UTC')",
            "2026-10-30T12:00:00.123000+00:00",
            datetime(2026, 10, 30, 12, 0, 0, 123000, tzinfo=UTC),
        ),
        (
            "DateTime('Europe/Paris')",
            "2026-10-30T13:00:00+01:00",
            datetime(2026, 10, 30, 12, tzinfo=UTC),
        ),
        ("DateTime", "2026-10-30T12:00:00", datetime(2026, 10, 30, 12, tzinfo=UTC)),
        ("Date32", "1969-07-20", date(1969, 7, 20)),
        ("UInt64", str(2**64 - 1), 2**64 - 1),
        ("Int64", 7, 7),
        ("Int256", str(-(2**255)), -(2**255)),
        ("Float64", 0.5, 0.5),
        ("Array(Nullable(Decimal(9, 2)))", ["1.10", None], [Decimal("1.10"), None]),
        ("Map(UInt32, Date)", {"1": "2026-11-01"}, {1: date(2026, 11, 1)}),
        ("Tuple(Int128, String)", [str(2**100), "x"], (2**100, "x")),
        (
            "Tuple(`a b` Int64, c DateTime('UTC'))",
            {"a b": "9", "c": "2026-01-01T00:00:00+00:00"},
            {"a b": 9, "c": datetime(2026, 1, 1, tzinfo=UTC)},
        ),
        ("UUID", str(UUID(int=5)), UUID(int=5)),
        ("SimpleAggregateFunction(sum, Decimal(38, 12))", "1.5", Decimal("1.5")),
        ("Enum8('a' = 1)", "a", "a"),
    ],
)
def test_decoder(type_name, sent, expected):
    got = decoder(type_name)(sent)
    assert got == expected and type(got) is type(expected)
    if isinstance(got, datetime):
        assert got.utcoffset() == timedelta(0)


def test_jsonable_then_decoder_round_trips():
    value = datetime(2026, 10, 30, 13, tzinfo=timezone(timedelta(hours=1)))
    assert decoder("DateTime64(3)")(jsonable(value)) == value
    assert decoder("Decimal(38, 12)")(jsonable(Decimal("0E-12"))) == Decimal(0)


def test_parameters_round_trip_with_their_types():
    params = {
        "since": datetime(2026, 10, 30, 12, 0, 0, 250000, tzinfo=UTC),
        "day": date(2026, 10, 30),
        "money": Decimal("0.000000000001"),
        "ids": ["a", "b"],
        "amounts": [Decimal("1.10"), Decimal("2")],
        "pair": (1, "x"),
        "id": UUID(int=9),
        "n": 2**63,
        "m": {"k": Decimal("1")},
        "none": None,
    }
    import json

    sent = json.loads(json.dumps(encode_parameters(params)))
    got = decode_parameters(sent)
    assert got == params
    assert [type(v) for v in got.values()] == [type(v) for v in params.values()]


def test_bad_tagged_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="parameter since"):
        decode_parameters({"since": {"$datetime": "yesterday"}})
    with pytest.raises(ValueError, match="parameter m"):
        decode_parameters({"m": {"$decimal": "lots"}})
    with pytest.raises(ValueError, match="JSON object"):
        decode_parameters(["x"])
