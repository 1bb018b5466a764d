"""The read-only query endpoint served by the process that owns an embedded store.

chdb lets one process open a data directory, so while the worker runs, other
processes (``tokengov query``, ``tokengov report``) ask it over loopback HTTP:

* ``GET /ping`` → ``{"ok": true}``
* ``POST /query`` with ``{"sql": "...", "parameters": {...}}`` →
  ``{"columns": [...], "types": [...], "rows": [[...], ...]}``, or status 400 with
  ``{"error": "<ClickHouse's message>"}``.

Only ``SELECT``, ``SHOW``, ``DESCRIBE``, ``WITH`` and ``EXPLAIN`` statements are
accepted, one per request, and they run on a client opened with ClickHouse's
``readonly = 2`` — the engine itself refuses any write. While it serves,
``<data dir>/clickhouse-query.json`` names its address and pid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import orjson

from sinks.clickhouse.store import ClickHouseStore, StoreError
from tokengov.errors import QueryError

__all__ = [
    "STATE_FILE",
    "QueryEndpoint",
    "check_read_only",
    "jsonable",
    "parse_address",
]

log = logging.getLogger(__name__)

STATE_FILE: Final = "clickhouse-query.json"
READ_ONLY_KEYWORDS: Final = ("SELECT", "SHOW", "DESCRIBE", "DESC", "WITH", "EXPLAIN")
MAX_BODY_BYTES: Final = 1 << 20
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.DOTALL)


def check_read_only(sql: str) -> str:
    """The statement, stripped, if it is one read-only statement; else :class:`QueryError`."""
    text = _COMMENTS.sub(" ", sql).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise QueryError("empty query")
    if ";" in _STRINGS.sub("''", text):
        raise QueryError("one statement per query")
    first = text.split(None, 1)[0].upper().lstrip("(")
    if first not in READ_ONLY_KEYWORDS:
        allowed = ", ".join(READ_ONLY_KEYWORDS)
        raise QueryError(f"only read-only statements are accepted ({allowed}); got {first}")
    return text


def jsonable(value: Any) -> Any:
    """A value from a ClickHouse result as JSON: money and big integers as strings, times ISO."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | bytes | bytearray):
        return (
            value.decode(errors="replace") if isinstance(value, bytes | bytearray) else str(value)
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"query endpoint must be host:port, got {address!r}")
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("query endpoint: " + format, *args)

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._reply(HTTPStatus.OK, {"ok": True, "pid": os.getpid()})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/query":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
            sql = check_read_only(str(request.get("sql", "")))
            parameters = request.get("parameters") or None
            result = self.server.store.query(sql, parameters)
        except (ValueError, QueryError) as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        except StoreError as exc:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        self._reply(
            HTTPStatus.OK,
            {
                "columns": result.columns,
                "types": result.types,
                "rows": [jsonable(list(row)) for row in result.rows],
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: ClickHouseStore) -> None:
        self.store = store
        super().__init__(address, _Handler)


class QueryEndpoint:
    """Serves read-only queries on ``host:port`` for the store at ``dsn`` (same process)."""

    def __init__(self, dsn: str, address: str, state_dir: Path) -> None:
        self.host, self.port = parse_address(address)
        self.state_file = state_dir / STATE_FILE
        self._dsn = dsn
        self._store = ClickHouseStore(dsn, readonly=True)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._server = _Server((self.host, self.port), self._store)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="clickhouse-query-endpoint", daemon=True
        )
        self._thread.start()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"host": self.host, "port": self.port, "pid": os.getpid(), "dsn": self._dsn})
        )
        tmp.replace(self.state_file)
        log.info("read-only query endpoint on http://%s", self.address)

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            state = json.loads(self.state_file.read_text())
            if state.get("pid") == os.getpid():
                self.state_file.unlink()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
        self._store.close()
