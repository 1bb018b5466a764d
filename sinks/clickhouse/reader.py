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

from sinks.clickhouse.endpoint import STATE_FILE, check_read_only
from sinks.clickhouse.store import ClickHouseStore, QueryResult, StoreError
from tokengov.errors import QueryError

__all__ = ["EndpointReader", "Reader", "StoreReader", "endpoint_address", "open_reader"]

log = logging.getLogger(__name__)


class Reader(Protocol):
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult: ...

    def close(self) -> None: ...

    @property
    def description(self) -> str: ...


class StoreReader:
    """Queries the store directly, on a read-only client."""

    def __init__(self, dsn: str) -> None:
        self._store = ClickHouseStore(dsn, readonly=True)

    @property
    def description(self) -> str:
        return self._store.redacted_dsn

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        try:
            return self._store.query(check_read_only(sql), parameters)
        except StoreError as exc:
            raise QueryError(str(exc)) from exc

    def close(self) -> None:
        self._store.close()


class EndpointReader:
    """Queries the endpoint of the process that owns the embedded store."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 120.0) -> None:
        self.url = f"http://{host}:{port}"
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, trust_env=False)

    @property
    def description(self) -> str:
        return f"{self.url} (the running worker)"

    def ping(self) -> bool:
        try:
            return self._http.get("/ping", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        try:
            response = self._http.post(
                "/query", json={"sql": sql, "parameters": dict(parameters or {})}
            )
        except httpx.HTTPError as exc:
            raise QueryError(f"query endpoint {self.url} did not answer: {exc}") from exc
        body = response.json()
        if response.status_code != 200:
            raise QueryError(str(body.get("error", response.text)))
        return QueryResult(body["columns"], body["types"], [tuple(r) for r in body["rows"]])

    def close(self) -> None:
        self._http.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def endpoint_address(data_dir: Path) -> tuple[str, int] | None:
    """The live endpoint recorded under ``data_dir``, if its process still runs."""
    state_file = data_dir / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
        host, port, pid = str(state["host"]), int(state["port"]), int(state["pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(pid):
        log.debug("stale %s (pid %d is gone)", state_file, pid)
        return None
    return host, port


def open_reader(dsn: str, data_dir: Path) -> Reader:
    """The endpoint when a worker serves the embedded store, else the store itself."""
    if dsn.startswith("chdb:"):
        address = endpoint_address(data_dir)
        if address is not None:
            reader = EndpointReader(*address)
            if reader.ping():
                return reader
            reader.close()
    return StoreReader(dsn)
