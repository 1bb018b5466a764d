"""The read-only query endpoint served by the process that owns an embedded store.

chdb lets one process open a data directory, so while the worker runs, other
processes (``tokengov query``, ``tokengov report``) ask it over loopback HTTP:

* ``GET /ping`` → ``{"ok": true, "pid": …}``
* ``POST /query`` with ``{"sql": "...", "parameters": {...}}`` (values JSON cannot carry
  tagged by :func:`tokengov.sinks.clickhouse.endpoint_values.encode_parameters`) →
  ``{"columns": [...], "types": [...], "rows": [[...], ...]}``, or status 400 with
  ``{"error": "<ClickHouse's message>"}``.

Every request must carry ``Authorization: Bearer <token>``: the token is generated at
the first start and kept in ``<data dir>/query-token`` (mode 0600), where the CLI reads
it (401 without it or with another). ``Host`` must name this endpoint (a loopback name
or address, or the configured bind address, with its port: a DNS-rebinding defence); a
request with an ``Origin`` header (any browser's cross-origin or page request) is
refused; ``POST /query`` takes ``Content-Type: application/json`` only (415 otherwise).
No response carries CORS headers.

Queries run in a read-only session with limits (:mod:`tokengov.sinks.clickhouse.limits`) after
the statement checks of :mod:`tokengov.sinks.clickhouse.statement`. While it serves,
``<data dir>/clickhouse-query.json`` names its address and pid.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import stat
import threading
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import orjson

from tokengov.core.errors import QueryError
from tokengov.sinks.clickhouse.endpoint_values import decode_parameters
from tokengov.sinks.clickhouse.limits import QueryLimits
from tokengov.sinks.clickhouse.statement import StatementPolicy
from tokengov.sinks.clickhouse.store import ClickHouseStore, StoreError

__all__ = [
    "STATE_FILE",
    "TOKEN_FILE",
    "QueryEndpoint",
    "check_read_only",
    "engine_policy",
    "ensure_token",
    "jsonable",
    "parse_address",
    "read_token",
]

log = logging.getLogger(__name__)

STATE_FILE: Final = "clickhouse-query.json"
TOKEN_FILE: Final = "query-token"  # noqa: S105 (a file name)
MAX_BODY_BYTES: Final = 1 << 20
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
ALL_INTERFACES: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (names, not a bind)


def check_read_only(sql: str) -> str:
    """The statement if it is one read-only statement (the static checks of
    :class:`StatementPolicy`); else :class:`QueryError`."""
    return StatementPolicy().check(sql)


def engine_policy(store: ClickHouseStore) -> StatementPolicy:
    """The statement checks with the table functions the engine behind ``store`` knows."""
    try:
        names = store.query("SELECT name FROM system.table_functions").rows
    except (QueryError, StoreError) as exc:
        log.warning("cannot list the engine's table functions (%s); using the built-in list", exc)
        return StatementPolicy()
    return StatementPolicy.with_engine_functions(str(row[0]) for row in names)


def _owner_only(path: Path) -> bool:
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def ensure_token(data_dir: Path) -> str:
    """The endpoint's token in ``data_dir``: the existing one when only its owner can read
    it, else a new one, written with mode 0600."""
    path = data_dir / TOKEN_FILE
    with contextlib.suppress(FileNotFoundError):
        if _owner_only(path):
            token = path.read_text().strip()
            if len(token) >= 32:
                return token
        log.warning("%s is readable by others or malformed: writing a new token", path)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    tmp.replace(path)
    return token


def read_token(data_dir: Path) -> str:
    """The token the CLI sends; :class:`QueryError` naming the file when it cannot."""
    path = data_dir / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise QueryError(
            f"{path} is missing: the query endpoint writes it when it starts"
        ) from None
    except PermissionError:
        raise QueryError(
            f"cannot read {path} (permission denied): run as the user that runs the worker"
        ) from None


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
        self.send_header("Cache-Control", "no-store")
        if status >= 400:
            # The request body may be unread: do not parse it as the next request.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _refusal(self) -> tuple[HTTPStatus, str] | None:
        """Why this request is refused, if it is: Host, Origin, then the token."""
        if not self.server.host_allowed(self.headers.get("Host")):
            return HTTPStatus.FORBIDDEN, f"Host {self.headers.get('Host')!r} is not this endpoint"
        if self.headers.get("Origin") is not None:
            return HTTPStatus.FORBIDDEN, "requests from web pages (an Origin header) are refused"
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.server.token.encode()
        ):
            return HTTPStatus.UNAUTHORIZED, (
                "missing or wrong token: send Authorization: Bearer <the content of "
                f"{self.server.token_file}>"
            )
        return None

    def _admitted(self) -> bool:
        refusal = self._refusal()
        if refusal is not None:
            status, message = refusal
            self._reply(status, {"error": message})
            return False
        return True

    def do_GET(self) -> None:
        if not self._admitted():
            return
        if self.path == "/ping":
            self._reply(HTTPStatus.OK, {"ok": True, "pid": os.getpid()})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})

    def do_POST(self) -> None:
        if not self._admitted():
            return
        if self.path != "/query":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})
            return
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            self._reply(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"error": f"Content-Type must be application/json, got {content_type or 'none'}"},
            )
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
            return
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("the body must be a JSON object")
            sql = self.server.policy().check(str(request.get("sql", "")))
            parameters = decode_parameters(request.get("parameters") or {}) or None
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

    def do_OPTIONS(self) -> None:
        # A browser's CORS preflight: refused, and never answered with Access-Control-*.
        self._reply(HTTPStatus.FORBIDDEN, {"error": "cross-origin requests are refused"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: ClickHouseStore,
        token: str,
        token_file: Path,
    ) -> None:
        self.store = store
        self.token = token
        self.token_file = token_file
        self._policy: StatementPolicy | None = None
        self._policy_lock = threading.Lock()
        super().__init__(address, _Handler)
        self.bind_host = address[0].lower()
        self.port = int(self.server_address[1])

    def policy(self) -> StatementPolicy:
        with self._policy_lock:
            if self._policy is None:
                self._policy = engine_policy(self.store)
            return self._policy

    def host_allowed(self, header: str | None) -> bool:
        """``Host`` names a loopback address or the bind address, on this port."""
        if not header:
            return False
        host, port = _split_host(header.strip().lower())
        if port is not None and port != self.port:
            return False
        return host in LOOPBACK_NAMES or (
            host == self.bind_host and self.bind_host not in ALL_INTERFACES
        )


def _split_host(value: str) -> tuple[str, int | None]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not port:
        return host, None
    return (host, int(port)) if port.isdigit() else (host, -1)


class QueryEndpoint:
    """Serves read-only queries on ``host:port`` for the store at ``dsn`` (same process);
    its token lives in ``state_dir`` (the data directory)."""

    def __init__(
        self, dsn: str, address: str, state_dir: Path, *, limits: QueryLimits | None = None
    ) -> None:
        self.host, self.port = parse_address(address)
        self.state_dir = state_dir
        self.state_file = state_dir / STATE_FILE
        self.token_file = state_dir / TOKEN_FILE
        self._dsn = dsn
        self._store = ClickHouseStore(dsn, readonly=True, limits=limits)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        token = ensure_token(self.state_dir)
        self._server = _Server((self.host, self.port), self._store, token, self.token_file)
        self.port = self._server.port
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
        if self.host.lower() not in LOOPBACK_NAMES:
            log.warning(
                "the query endpoint listens on %s, not loopback: whoever reaches it with the "
                "token in %s reads the whole history",
                self.address,
                self.token_file,
            )

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
