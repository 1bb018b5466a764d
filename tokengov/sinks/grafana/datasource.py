"""The ClickHouse data source Grafana reads, defined once: written into the provisioning file
and created or updated through the HTTP API by ``tokengov grafana sync``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from tokengov.sinks.grafana.errors import GrafanaConfigError
from tokengov.sinks.grafana.panels import DATASOURCE_UID, PLUGIN_ID

__all__ = ["DATASOURCE_NAME", "ClickHouseDatasource"]

DATASOURCE_NAME: Final = "tokengov ClickHouse"

_SCHEMES: Final[dict[str, tuple[Literal["http", "native"], bool, int]]] = {
    "http": ("http", False, 8123),
    "https": ("http", True, 8443),
    "clickhouse": ("native", False, 9000),
    "clickhouses": ("native", True, 9440),
}


@dataclass(frozen=True)
class ClickHouseDatasource:
    """Connection of Grafana's ClickHouse plugin (``grafana-clickhouse-datasource``, v4 model)."""

    host: str
    port: int
    protocol: Literal["http", "native"]
    secure: bool
    username: str
    password: SecretStr | None
    database: str = "default"
    name: str = DATASOURCE_NAME
    uid: str = DATASOURCE_UID

    @classmethod
    def from_url(cls, url: str) -> ClickHouseDatasource:
        """``http(s)://user:pass@host:port/db`` or ``clickhouse(s)://…`` (native protocol)."""
        parts = urlsplit(url)
        scheme = _SCHEMES.get(parts.scheme)
        if scheme is None:
            raise GrafanaConfigError(
                f"data source URL {parts.scheme}://…: Grafana reads a ClickHouse server over "
                f"{', '.join(s + '://' for s in _SCHEMES)} (the embedded chdb store is not "
                "reachable by Grafana)"
            )
        if not parts.hostname:
            raise GrafanaConfigError("data source URL: no host")
        protocol, secure, default_port = scheme
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            protocol=protocol,
            secure=secure,
            username=unquote(parts.username or "default"),
            password=SecretStr(unquote(parts.password)) if parts.password else None,
            database=parts.path.strip("/") or "default",
        )

    def json_data(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "protocol": self.protocol,
            "secure": self.secure,
            "username": self.username,
            "defaultDatabase": self.database,
        }

    def api_body(self) -> dict[str, Any]:
        """The body of ``POST /api/datasources`` / ``PUT /api/datasources/uid/:uid``."""
        body: dict[str, Any] = {
            "name": self.name,
            "uid": self.uid,
            "type": PLUGIN_ID,
            "access": "proxy",
            "isDefault": False,
            "jsonData": self.json_data(),
        }
        if self.password is not None:
            body["secureJsonData"] = {"password": self.password.get_secret_value()}
        return body

    def provisioning(self, *, password_env: str) -> dict[str, Any]:
        """The provisioning file's entry; the password comes from ``$password_env`` at start."""
        return {
            "name": self.name,
            "uid": self.uid,
            "type": PLUGIN_ID,
            "access": "proxy",
            "editable": False,
            "jsonData": self.json_data(),
            "secureJsonData": {"password": f"${{{password_env}}}"},
        }
