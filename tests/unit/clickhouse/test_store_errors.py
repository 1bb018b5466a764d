from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from tokengov.sinks.clickhouse.store import ClickHouseStore, _classify, clickhouse_message

MESSAGE = (
    "HTTPDriver for http://h:8123 received ClickHouse error code 469\n"
    " Code: 469. DB::Exception: Constraint `ts_sane` is violated. (VIOLATED_CONSTRAINT)"
)


def test_clickhouse_message_is_the_servers_own():
    assert clickhouse_message(Exception(MESSAGE)).startswith("Code: 469. DB::Exception")


def test_classification():
    assert not _classify(DatabaseError(MESSAGE, code=469), "insert").retryable
    assert _classify(OperationalError("connection refused"), "insert").retryable
    assert _classify(DatabaseError("Code: 60. table gone", code=60), "insert").retryable
    assert _classify(DatabaseError("Code: 241. memory", code=241), "insert").retryable
    serialization = _classify(DataError("Unable to create native array for column `x`"), "i")
    assert not serialization.retryable and serialization.code is None
    assert _classify(DatabaseError(MESSAGE, code=469), "insert").code == 469


def test_dsn_is_redacted():
    store = ClickHouseStore("https://analyst:s3cret@ch.example.com:8443/db")
    assert "s3cret" not in repr(store) and store.redacted_dsn.startswith("https://analyst:***@")
    assert not store.embedded and ClickHouseStore("chdb:///tmp/x").embedded


def test_the_statement_the_analyzer_quotes_is_left_out():
    """Messages as chdb 25.x gives them (ClickHouse's analyzer quotes the whole statement)."""
    unknown = (
        "Code: 60. DB::Exception: Unknown table expression identifier 'nothere'. "
        "In scope SELECT a, b FROM nothere WHERE 1. (UNKNOWN_TABLE)"
    )
    assert clickhouse_message(Exception(unknown)) == (
        "Code: 60. DB::Exception: Unknown table expression identifier 'nothere'. (UNKNOWN_TABLE)"
    )
    parse = (
        "Code: 38. DB::Exception: Cannot parse date: expected a date in the YYYY-MM-DD or "
        "YYYYMMDD format: Cannot parse Date from String: In scope SELECT toDate('x'). "
        "(CANNOT_PARSE_DATE)"
    )
    assert clickhouse_message(Exception(parse)).endswith(
        "Cannot parse Date from String. (CANNOT_PARSE_DATE)"
    )
    assert clickhouse_message(Exception("Code: 1. In scope SELECT 1")) == "Code: 1"
