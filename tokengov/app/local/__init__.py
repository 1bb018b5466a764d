"""The embedded stack on one machine: the broker process and friends."""

from tokengov.app.local.broker import (
    BrokerInfo,
    EmbeddedBroker,
    broker_answers,
    free_port,
    port_in_use,
)

__all__ = ["BrokerInfo", "EmbeddedBroker", "broker_answers", "free_port", "port_in_use"]
