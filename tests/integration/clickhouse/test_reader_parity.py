"""The endpoint and the store answer the same query with the same Python values: an
:class:`EndpointReader` (through a real :class:`QueryEndpoint` on loopback) and a
:class:`StoreReader` over one populated chdb store return equal rows of equal types."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from tokengov.app.local.broker import free_port
from tokengov.sinks.clickhouse.endpoint import QueryEndpoint, read_token
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.reader import EndpointReader, StoreReader
from tokengov.sinks.clickhouse.store import ClickHouseStore

pytestmark = pytest.mark.integration

TYPED_DDL = """CREATE TABLE typed (
    k UInt32, money Decimal(38, 12), ts DateTime64(3, 'UTC'), ts0 DateTime('UTC'),
    day Date, day32 Date32, i Int64, u UInt64, i128 Int128, f Float64,
    maybe_money Nullable(Decimal(18, 4)), maybe_ts Nullable(DateTime64(3, 'UTC')),
    lc LowCardinality(Nullable(String)), amounts Array(Decimal(18, 2)),
    times Array(DateTime64(3, 'UTC')), counts Map(String, UInt64), days Map(UInt32, Date),
    pair Tuple(a Int64, b String), id UUID, flag Bool, s String
) ENGINE = MergeTree ORDER BY k"""

TYPED_ROWS = """INSERT INTO typed VALUES
 (1, 0.000560000000, '2026-10-30 12:00:00.123', '2026-10-30 12:00:00', '2026-10-30',
  '1969-07-20', -9007199254740993, 18446744073709551615, -170141183460469231731687303715884105728,
  0.1, 12.3456, '2026-10-31 00:00:00.001', 'search', [1.10, 0.01],
  ['2026-10-30 12:00:00.500', '2026-12-31 23:59:59.999'], {'in': 18446744073709551000, 'out': 7},
  {1: '2026-11-01', 4294967295: '2027-01-01'}, (9007199254740993, 'x'),
  '4f0f1c0e-8a5e-4b8f-9d7a-2f4e0c6b9a11', true, 'héllo ''quoted'''),
 (2, 0, '1970-01-01 00:00:00.000', '2106-02-07 06:28:15', '2149-06-06', '2299-12-31', 0, 0, 0,
  -2.5, NULL, NULL, NULL, [], [], {}, {}, (0, ''),
  '00000000-0000-0000-0000-000000000000', false, '')"""

QUERIES: list[tuple[str, dict[str, Any] | None]] = [
    ("SELECT * FROM typed ORDER BY k", None),
    (
        "SELECT k, money * 3 AS tripled, toDate(ts) AS d, ts + INTERVAL 1 DAY AS later, "
        "arrayMap(x -> x * 2, amounts) AS doubled, mapKeys(counts) AS keys "
        "FROM typed WHERE ts >= {since:DateTime64(3)} ORDER BY k",
        {"since": datetime(1970, 1, 1, tzinfo=UTC)},
    ),
    (
        "SELECT k, has({amounts:Array(Decimal(18, 2))}, amounts[1]) AS a, id = {id:UUID} AS u, "
        "(i, s) = {pair:Tuple(Int64, String)} AS p, money = {m:Decimal(38, 12)} AS m "
        "FROM typed ORDER BY k",
        {
            "amounts": [Decimal("1.10")],
            "id": UUID(int=0),
            "pair": (-9007199254740993, "héllo 'quoted'"),
            "m": Decimal("0.000560000000"),
        },
    ),
    (
        "SELECT team, sum(cost_usd) AS cost_usd, sum(input_tokens) AS input_tokens, "
        "min(ts) AS first_ts, toStartOfDay(max(ts)) AS last_day, groupArray(event_id) AS ids, "
        "any(parent_agent) AS parent FROM token_events WHERE team = {team:String} GROUP BY team",
        {"team": "search"},
    ),
    ("SELECT count() AS n, sum(cost_usd) AS c FROM token_events WHERE team = 'nobody'", None),
]


@pytest.fixture
def readers(data_dir):
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    store = ClickHouseStore(dsn)
    migrate(store)
    store.command(TYPED_DDL)
    store.command(TYPED_ROWS)
    store.command(
        "INSERT INTO token_events (event_id, ts, team, workflow, task_id, agent, step, provider, "
        "model, input_tokens, output_tokens, attempt, tool_calls, status, cost_usd, "
        "cost_source, schema_version) VALUES "
        "('e1', '2026-10-30 12:00:00.250', 'search', 'triage', 't1', 'a', 0, 'p', 'm', "
        "1000, 100, 1, 0, 'ok', 0.000560, 'catalog', 1), "
        "('e2', '2026-10-30 13:00:00', 'search', 'triage', 't2', 'a', 0, 'p', 'm', "
        "18446744073709551, 10, 1, 0, 'error', 123456789.002244000001, 'catalog', 1)"
    )
    endpoint = QueryEndpoint(dsn, f"127.0.0.1:{free_port()}", data_dir)
    endpoint.start()
    through_endpoint = EndpointReader(endpoint.host, endpoint.port, read_token(data_dir))
    direct = StoreReader(dsn)
    try:
        yield through_endpoint, direct
    finally:
        through_endpoint.close()
        direct.close()
        endpoint.stop()
        store.close()


def _shape(value: Any) -> Any:
    """A value with its type and, for times, its UTC offset: equal shapes, equal values."""
    if isinstance(value, dict):
        return ("dict", sorted((_shape(k), _shape(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_shape(v) for v in value])
    if isinstance(value, datetime):
        return ("datetime", value, value.utcoffset())
    return (type(value).__name__, value)


@pytest.mark.parametrize("index", range(len(QUERIES)))
def test_endpoint_and_store_return_the_same_values(readers, index):
    through_endpoint, direct = readers
    sql, parameters = QUERIES[index]
    expected = direct.query(sql, parameters)
    got = through_endpoint.query(sql, parameters)
    assert expected.rows, "the query should return rows"
    if parameters and "amounts" in parameters:
        # each parameter bound as sent: it matches exactly the row it names
        assert [r[1:] for r in expected.rows] == [(1, 0, 1, 1), (0, 1, 0, 0)]
    assert got.columns == expected.columns and got.types == expected.types
    assert got.rows == expected.rows
    assert [[_shape(v) for v in r] for r in got.rows] == [
        [_shape(v) for v in r] for r in expected.rows
    ]


def test_values_are_python_types(readers):
    through_endpoint, _ = readers
    first, second = through_endpoint.query("SELECT * FROM typed ORDER BY k").dicts()
    assert first["money"] == Decimal("0.000560000000") and isinstance(first["money"], Decimal)
    assert first["ts"] == datetime(2026, 10, 30, 12, 0, 0, 123000, tzinfo=UTC)
    assert first["ts"].utcoffset() == timedelta(0)
    assert first["ts0"] == datetime(2026, 10, 30, 12, tzinfo=UTC)
    assert first["day"] == date(2026, 10, 30) and first["day32"] == date(1969, 7, 20)
    assert first["i"] == -9007199254740993 and first["u"] == 2**64 - 1
    assert first["i128"] == -(2**127)
    assert first["maybe_money"] == Decimal("12.3456") and second["maybe_money"] is None
    assert second["maybe_ts"] is None and second["lc"] is None and first["lc"] == "search"
    assert first["amounts"] == [Decimal("1.10"), Decimal("0.01")]
    assert first["times"][1] == datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert first["counts"] == {"in": 18446744073709551000, "out": 7}
    assert first["days"] == {1: date(2026, 11, 1), 2**32 - 1: date(2027, 1, 1)}
    assert first["pair"] == {"a": 9007199254740993, "b": "x"}
    assert first["id"] == UUID("4f0f1c0e-8a5e-4b8f-9d7a-2f4e0c6b9a11")
    assert first["flag"] is True and first["s"] == "héllo 'quoted'"
