from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tokengov.core.errors import QueryError
from tokengov.sinks.clickhouse.endpoint import check_read_only, jsonable, parse_address


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  select 1;",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "SHOW TABLES",
        "DESCRIBE token_events",
        "DESC token_events",
        "EXPLAIN SELECT 1",
        "-- a comment\nSELECT 1",
        "/* c */ SELECT ';' AS semicolon",
        "(SELECT 1)",
    ],
)
def test_read_only_statements_pass(sql):
    assert check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("INSERT INTO t VALUES (1)", "read-only"),
        ("DROP TABLE t", "read-only"),
        ("SELECT 1; DROP TABLE t", "one statement"),
        ("", "empty"),
        ("-- only", "empty"),
        ("OPTIMIZE TABLE t", "read-only"),
        ("SYSTEM SHUTDOWN", "read-only"),
    ],
)
def test_others_are_refused(sql, why):
    with pytest.raises(QueryError, match=why):
        check_read_only(sql)


def test_jsonable_keeps_money_exact_and_times_readable():
    assert jsonable(Decimal("0.000100000000")) == "0.000100000000"
    assert jsonable(Decimal("0E-12")) == "0.000000000000"
    assert jsonable(datetime(2026, 11, 29, tzinfo=UTC)) == "2026-11-29T00:00:00+00:00"
    assert jsonable(date(2026, 11, 29)) == "2026-11-29"
    assert jsonable(2**60) == str(2**60) and jsonable(7) == 7
    assert jsonable({"a": (1, Decimal(2))}) == {"a": [1, "2"]}
    assert jsonable(float("nan")) is None


def test_parse_address():
    assert parse_address("127.0.0.1:8124") == ("127.0.0.1", 8124)
    with pytest.raises(ValueError):
        parse_address("8124")
