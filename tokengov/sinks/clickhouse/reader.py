"""Where analysts' queries go: the running worker's endpoint, or the store itself.

With an embedded store (``chdb://``) the data directory belongs to one
process; when the worker owns it, ``<data dir>/clickhouse-query.json`` names
its read-only endpoint and queries go there. Otherwise (or with a ClickHouse
server) the store is opened directly, read-only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from tokengov.core.errors import QueryError
from tokengov.sinks.clickhouse.endpoint import STATE_FILE, engine_policy, read_token
from tokengov.sinks.clickhouse.endpoint_values import decode_row, decoder, encode_parameters
from tokengov.sinks.clickhouse.limits import QueryLimits
from tokengov.sinks.clickhouse.statement import StatementPolicy
from tokengov.sinks.clickhouse.store import ClickHouseStore, QueryResult, StoreError

__all__ = ["EndpointReader", "Reader", "StoreReader", "endpoint_address", "open_reader"]

log = logging.getLogger(__name__)


class Reader(Protocol):
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult: ...

    def close(self) -> None: ...

    @property
    def description(self) -> str: ...


class StoreReader:
    """Queries the store directly: the statement checks, then a read-only session with
    ``limits`` — the same as the endpoint's."""

    def __init__(self, dsn: str, limits: QueryLimits | None = None) -> None:
        self._store = ClickHouseStore(dsn, readonly=True, limits=limits)
        self._policy: StatementPolicy | None = None

    @property
    def description(self) -> str:
        return self._store.redacted_dsn

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        try:
            if self._policy is None:
                self._policy = engine_policy(self._store)
            return self._store.query(self._policy.check(sql), parameters)
        except StoreError as exc:
            raise QueryError(str(exc)) from exc

    def close(self) -> None:
        self._store.close()


class EndpointReader:
    """Queries the endpoint of the process that owns the embedded store; each value is
    decoded by its column's type (:mod:`tokengov.sinks.clickhouse.endpoint_values`), so rows equal a
    :class:`StoreReader`'s for the same query."""

    def __init__(self, host: str, port: int, token: str, *, timeout_s: float = 120.0) -> None:
        self.url = f"http://{_url_host(host)}:{port}"
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout_s,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"},
        )

    @property
    def description(self) -> str:
        return f"{self.url} (the running worker)"

    def ping(self) -> bool:
        """True when the endpoint answers; :class:`QueryError` when it refuses us (the
        token, the Host): falling back to opening the store would only fail later."""
        try:
            response = self._http.get("/ping", timeout=2.0)
        except httpx.HTTPError:
            return False
        if response.status_code in (401, 403):
            raise QueryError(f"query endpoint {self.url}: {_error(response)}")
        return response.status_code == 200

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        try:
            response = self._http.post(
                "/query", json={"sql": sql, "parameters": encode_parameters(parameters)}
            )
        except httpx.HTTPError as exc:
            raise QueryError(f"query endpoint {self.url} did not answer: {exc}") from exc
        if response.status_code != 200:
            raise QueryError(_error(response))
        body = response.json()
        types = [str(t) for t in body["types"]]
        decoders = [decoder(t) for t in types]
        rows = [decode_row(decoders, row) for row in body["rows"]]
        return QueryResult(list(body["columns"]), types, rows)

    def close(self) -> None:
        self._http.close()


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _url_host(host: str) -> str:
    """A bind address as a URL host: all interfaces → loopback; IPv6 in brackets."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (a name, not a bind)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _store_path(dsn: str) -> Path:
    return Path(dsn.removeprefix("chdb:").removeprefix("//")).expanduser().resolve()


def endpoint_address(data_dir: Path, dsn: str | None = None) -> tuple[str, int] | None:
    """The live endpoint recorded under ``data_dir``, if its process still runs (and, with
    ``dsn``, serves that embedded store rather than another)."""
    state_file = data_dir / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
        host, port, pid = str(state["host"]), int(state["port"]), int(state["pid"])
        served = state.get("dsn")
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not _pid_alive(pid):
        log.debug("stale %s (pid %d is gone)", state_file, pid)
        return None
    if dsn is not None and isinstance(served, str) and _store_path(served) != _store_path(dsn):
        log.debug("%s serves %s, not %s", state_file, served, dsn)
        return None
    return host, port


def open_reader(dsn: str, data_dir: Path, limits: QueryLimits | None = None) -> Reader:
    """The endpoint when a worker serves the embedded store (with the token it keeps in
    ``data_dir``), else the store itself, read-only with ``limits``."""
    if dsn.startswith("chdb:"):
        address = endpoint_address(data_dir, dsn)
        if address is not None:
            reader = EndpointReader(*address, read_token(data_dir))
            try:
                if reader.ping():
                    return reader
            except QueryError:
                reader.close()
                raise
            reader.close()
    return StoreReader(dsn, limits)
