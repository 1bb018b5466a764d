"""The ClickHouse lexer and the statement checks, as strings (their behaviour against the
engine is in tests/integration/clickhouse/test_endpoint_escapes.py)."""

from __future__ import annotations

import pytest

from tokengov.core.errors import QueryError
from tokengov.sinks.clickhouse.statement import StatementPolicy, tokenize

policy = StatementPolicy()


def test_comments_and_literals_are_not_sql() -> None:
    sql = "SELECT 'a--b', \"--\", `/*`, $x$ ; $x$ -- c ; \n /* /* ; */ */ # h ;\n FROM t"
    assert [(t.kind, t.text) for t in tokenize(sql)] == [
        ("word", "SELECT"),
        ("string", "a--b"),
        ("punct", ","),
        ("identifier", "--"),
        ("punct", ","),
        ("identifier", "/*"),
        ("punct", ","),
        ("string", " ; "),
        ("word", "FROM"),
        ("word", "t"),
    ]


def test_escapes_and_doubled_quotes() -> None:
    assert [t.text for t in tokenize(r"'it''s' 'a\'b' `x``y`")] == ["it's", "a'b", "x`y"]


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("SELECT 'abc", "string literal starting at line 1, column 8"),
        ("SELECT 1\n/* open", "comment starting at line 2, column 1"),
        ("SELECT `x", "quoted identifier starting at line 1, column 8"),
        ("SELECT $a$ x", "heredoc $a$ starting at line 1, column 8"),
    ],
)
def test_unterminated_tokens_name_their_place(sql: str, where: str) -> None:
    with pytest.raises(QueryError, match=f"unterminated {where}".replace("$", r"\$")):
        tokenize(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM token_events WHERE team = 'a--b'",
        "SELECT '/* x */'",
        'SELECT 1 AS "--"',
        "SELECT 'INTO OUTFILE', 'file(', 'x; DROP TABLE t'",
        "SELECT file_name, url_path FROM t",
        "SELECT `file` FROM t",
        "SELECT * FROM numbers(3)",
        "SELECT format('{}', 1)",
        "EXISTS TABLE t",
        "SELECT 1 INTO_OUTFILE",
    ],
)
def test_valid_sql_passes(sql: str) -> None:
    assert policy.check(sql) == sql


def test_trailing_semicolons_and_comments_are_dropped() -> None:
    assert policy.check("SELECT 1 ; ; -- done\n") == "SELECT 1"


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT 1; SELECT 2", "one statement per query.*line 1, column 9"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("SELECT 1 into\n outfile '/tmp/x'", "INTO OUTFILE"),
        ("SELECT file('/etc/passwd')", r"file\(\)"),
        ("SELECT `file`('/etc/passwd')", r"file\(\)"),
        ("SELECT file -- c\n ('/etc/passwd')", r"file\(\)"),
        ("DESCRIBE TABLE url('http://x/', 'CSV')", r"url\(\)"),
        ("SELECT * FROM Remote('h', system.one)", r"Remote\(\)"),
        ("SELECT * FROM eval('SELECT 1')", r"eval\(\)"),
        ("KILL QUERY WHERE 1", "read-only"),
        ("SET readonly = 0", "read-only"),
        ("", "empty"),
    ],
)
def test_what_is_refused_and_why(sql: str, why: str) -> None:
    with pytest.raises(QueryError, match=why):
        policy.check(sql)


def test_the_engines_table_functions_are_refused_unless_known_safe() -> None:
    engine = StatementPolicy.with_engine_functions(["numbers", "someNewLakeFormat"])
    assert engine.check("SELECT * FROM numbers(1)")
    with pytest.raises(QueryError, match="someNewLakeFormat"):
        engine.check("SELECT * FROM someNewLakeFormat('s3://b/k')")
