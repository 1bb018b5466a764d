"""Errors of the Grafana part, under tokengov's tree::

TokenGovError
└── GrafanaError              anything about talking to Grafana or configuring it
    ├── GrafanaConfigError    missing URL or token, unusable data source URL
    ├── GrafanaUnreachable    no answer (connection refused, DNS, timeout)
    ├── GrafanaAuthError      401 / 403: the token is missing, wrong, or lacks a role
    ├── GrafanaVersionError   the server is older than tokengov's dashboards need
    └── GrafanaAPIError       any other refusal (status, Grafana's own message)
"""

from __future__ import annotations

from tokengov.core.errors import TokenGovError

__all__ = [
    "GrafanaAPIError",
    "GrafanaAuthError",
    "GrafanaConfigError",
    "GrafanaError",
    "GrafanaUnreachable",
    "GrafanaVersionError",
]


class GrafanaError(TokenGovError):
    """Base of the Grafana part's errors."""


class GrafanaConfigError(GrafanaError):
    """tokengov is not configured to reach Grafana (or its data source) correctly."""


class GrafanaUnreachable(GrafanaError):
    """Grafana did not answer."""


class GrafanaAuthError(GrafanaError):
    """Grafana refused the credentials (401) or the role behind them (403)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class GrafanaVersionError(GrafanaError):
    """The Grafana server is too old (or does not say which version it is)."""


class GrafanaAPIError(GrafanaError):
    """Grafana refused a request; ``status`` is the HTTP status, the message Grafana's own."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)
