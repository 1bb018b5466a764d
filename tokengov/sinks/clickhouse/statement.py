"""Which statements analysts may run: a ClickHouse lexer and the checks made on its tokens.

The engine is the first line (``readonly = 1``, limits: :mod:`tokengov.sinks.clickhouse.limits`);
these checks refuse what the embedded engine (chdb, i.e. ``clickhouse-local``) does *not*
stop under ``readonly = 1`` — measured, see docs/clickhouse.md:

* ``INTO OUTFILE`` — written by the client side of clickhouse-local, whatever ``readonly``;
* ``KILL QUERY`` and a second statement after ``;`` — ``KILL`` is allowed at every
  ``readonly`` level, and chdb runs every statement of a multi-statement text;
* the scalar function ``file(path)`` — clickhouse-local skips its ``user_files_path``
  check, so it reads any file the process can (``/proc/self/environ``: the worker's
  secrets);
* table functions in ``DESCRIBE`` — ``DESCRIBE TABLE url(…)`` / ``file(…)`` infer a
  schema (an outbound request, a file's first line as column names) without the access
  check a ``SELECT`` gets; and ``eval(…)``, which runs a query built from a string
  (experimental and off today, but marked as allowed under ``readonly = 1``).

So: one statement; it starts with ``SELECT``, ``WITH``, ``SHOW``, ``DESCRIBE``/``DESC``,
``EXPLAIN`` or ``EXISTS``; no ``INTO OUTFILE``; no call of ``file`` nor of any table
function but those that only compute or read local tables (:data:`SAFE_TABLE_FUNCTIONS`).
The table functions come from the engine itself (``system.table_functions``), so a new
one is refused until it is added here.

The lexer follows ClickHouse's (``src/Parsers/Lexer.cpp``): ``--`` and ``#`` comments to
the end of the line, nested ``/* */`` comments, ``'strings'`` with backslash escapes and
doubled quotes, ```quoted``` and ``"quoted"`` identifiers, ``$tag$heredocs$tag$``. Text
inside strings, identifiers and comments is never taken for SQL, so ``WHERE team =
'a--b'`` is a query like any other.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from tokengov.core.errors import QueryError

__all__ = [
    "KNOWN_TABLE_FUNCTIONS",
    "READ_ONLY_KEYWORDS",
    "SAFE_TABLE_FUNCTIONS",
    "StatementPolicy",
    "Token",
    "tokenize",
]

READ_ONLY_KEYWORDS: Final = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")

#: Table functions that only compute rows or read this server's own tables.
SAFE_TABLE_FUNCTIONS: Final = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "primes",
        "values",
        "sqlstandardvalues",
        "generaterandom",
        "generateseries",
        "generate_series",
        "null",
        "view",
        "merge",
        "format",
    }
)

#: Used with the engine's own list; enough alone to refuse every table function of the
#: ClickHouse/chdb versions this project runs that reaches files, processes or the network.
KNOWN_TABLE_FUNCTIONS: Final = frozenset(
    {
        "file",
        "filecluster",
        "filesystem",
        "url",
        "urlcluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "sqlite",
        "mongodb",
        "redis",
        "jdbc",
        "odbc",
        "s3",
        "s3cluster",
        "gcs",
        "cosn",
        "oss",
        "hdfs",
        "hdfscluster",
        "azureblobstorage",
        "azureblobstoragecluster",
        "executable",
        "input",
        "dictionary",
        "eval",
        "python",
        "arrowstream",
        "iceberg",
        "deltalake",
        "hudi",
        "paimon",
        "ytsaurus",
        "bigquery",
        "prometheusquery",
        "prometheusqueryrange",
    }
)

#: Scalar functions that reach outside the store.
_FORBIDDEN_SCALARS: Final = frozenset({"file"})

TokenKind = Literal["word", "identifier", "string", "punct"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # a word as written; a quoted identifier or string without its quotes
    offset: int


_WORD = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]+")
_SPACE = " \t\n\r\f\v"
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")


def _where(sql: str, offset: int) -> str:
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _quoted(sql: str, start: int, quote: str) -> tuple[str, int]:
    """The text of the quoted token at ``start`` (backslash escapes, doubled quotes) and
    the offset after it."""
    out: list[str] = []
    i = start + 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "\\" and i + 1 < n:
            out.append(sql[i + 1])
            i += 2
        elif ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    what = "string literal" if quote == "'" else "quoted identifier"
    raise QueryError(f"unterminated {what} starting at {_where(sql, start)}")


def tokenize(sql: str) -> list[Token]:
    """The significant tokens of ``sql`` (comments and whitespace dropped)."""
    tokens: list[Token] = []
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in _SPACE:
            i += 1
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while depth and j < n:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise QueryError(f"unterminated comment starting at {_where(sql, i)}")
            i = j
        elif ch == "'":
            text, end = _quoted(sql, i, "'")
            tokens.append(Token("string", text, i))
            i = end
        elif ch in '`"':
            text, end = _quoted(sql, i, ch)
            tokens.append(Token("identifier", text, i))
            i = end
        elif ch == "$" and (heredoc := _HEREDOC.match(sql, i)):
            tag = heredoc.group(0)
            end = sql.find(tag, heredoc.end())
            if end < 0:
                raise QueryError(f"unterminated heredoc {tag} starting at {_where(sql, i)}")
            tokens.append(Token("string", sql[heredoc.end() : end], i))
            i = end + len(tag)
        elif word := _WORD.match(sql, i):
            tokens.append(Token("word", word.group(0), i))
            i = word.end()
        else:
            tokens.append(Token("punct", ch, i))
            i += 1
    return tokens


def _is_word(token: Token, *words: str) -> bool:
    return token.kind == "word" and token.text.upper() in words


@dataclass(frozen=True)
class StatementPolicy:
    """The checks, with the names of the table functions the engine knows."""

    table_functions: frozenset[str] = KNOWN_TABLE_FUNCTIONS

    @classmethod
    def with_engine_functions(cls, names: Iterable[str]) -> StatementPolicy:
        return cls(KNOWN_TABLE_FUNCTIONS | {name.lower() for name in names})

    @property
    def forbidden_calls(self) -> frozenset[str]:
        return (self.table_functions - SAFE_TABLE_FUNCTIONS) | _FORBIDDEN_SCALARS

    def check(self, sql: str) -> str:
        """``sql`` without trailing semicolons, if it is one read-only statement that the
        engine can be trusted with; else :class:`QueryError` saying why."""
        tokens = tokenize(sql)
        while tokens and tokens[-1].kind == "punct" and tokens[-1].text == ";":
            tokens.pop()
        if not tokens:
            raise QueryError("empty query")
        separators = [t for t in tokens if t.kind == "punct" and t.text == ";"]
        if separators:
            raise QueryError(
                f"one statement per query: a second one starts after the ';' at "
                f"{_where(sql, separators[0].offset)}"
            )
        first = next((t for t in tokens if not (t.kind == "punct" and t.text == "(")), None)
        if first is None or not _is_word(first, *READ_ONLY_KEYWORDS):
            allowed = ", ".join(READ_ONLY_KEYWORDS)
            got = first.text if first is not None else "("
            raise QueryError(
                f"only read-only statements are accepted ({allowed}); got {got.upper()}"
            )
        forbidden = self.forbidden_calls
        for token, following in itertools.pairwise(tokens):
            if _is_word(token, "INTO") and _is_word(following, "OUTFILE"):
                raise QueryError(
                    f"INTO OUTFILE (at {_where(sql, token.offset)}) writes a file on the "
                    "server; not accepted here — use --format csv|json and redirect the output"
                )
            if (
                token.kind in ("word", "identifier")
                and following.kind == "punct"
                and following.text == "("
                and token.text.lower() in forbidden
            ):
                raise QueryError(
                    f"{token.text}() (at {_where(sql, token.offset)}) reaches files, processes "
                    "or the network; analysts' queries read the store only"
                )
        return sql[: tokens[-1].offset + _length(sql, tokens[-1])]


def _length(sql: str, token: Token) -> int:
    """The length in ``sql`` of ``token`` as written (quotes and escapes included)."""
    if token.kind == "string" and sql.startswith("$", token.offset):
        tag = _HEREDOC.match(sql, token.offset)
        assert tag is not None
        return len(tag.group(0)) * 2 + len(token.text)
    if token.kind in ("string", "identifier"):
        _, end = _quoted(sql, token.offset, sql[token.offset])
        return end - token.offset
    return len(token.text)
