"""Faust's broker options from the one Kafka connection (:mod:`tokengov.core.kafka`).

Faust (aiokafka underneath) takes the brokers as ``broker="kafka://h1:p1;h2:p2"`` and TLS or
SASL as ``broker_credentials=``; both are rendered here, in the application layer, because
building Faust's credential objects imports Faust, which the core (and the SDK) must not.
"""

from __future__ import annotations

from typing import Any

from faust.auth import SASLCredentials, SSLCredentials

from tokengov.core.kafka import KafkaConnection, SecurityProtocol

__all__ = ["faust_broker_credentials", "faust_broker_options", "faust_broker_url"]


def faust_broker_url(conn: KafkaConnection) -> str:
    """Faust's ``broker=``: ``kafka://h1:p1;h2:p2``."""
    hosts = ";".join(h.strip() for h in conn.bootstrap.split(",") if h.strip())
    return f"kafka://{hosts}"


def faust_broker_credentials(conn: KafkaConnection) -> Any:
    """Faust's ``broker_credentials=`` (``None`` for PLAINTEXT)."""
    proto = conn.security_protocol
    if proto is SecurityProtocol.PLAINTEXT:
        return None
    if proto is SecurityProtocol.SSL:
        return SSLCredentials(conn.ssl_context())
    assert conn.sasl_mechanism is not None
    assert conn.sasl_password is not None
    return SASLCredentials(
        username=conn.sasl_username,
        password=conn.sasl_password.get_secret_value(),
        ssl_context=conn.ssl_context(),
        mechanism=conn.sasl_mechanism.value,
    )


def faust_broker_options(conn: KafkaConnection) -> dict[str, Any]:
    """``faust.App(..., **faust_broker_options(conn))``."""
    return {"broker": faust_broker_url(conn), "broker_credentials": faust_broker_credentials(conn)}
