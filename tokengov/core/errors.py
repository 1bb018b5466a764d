"""The exceptions tokengov raises, as one small tree.

::

    TokenGovError
    ├── ContractError          a message that does not satisfy the event contract
    ├── PolicyError            a policy file that is not valid (carries every problem)
    ├── BrokerError            the embedded broker cannot start, answer or stop
    ├── KafkaConfigError       the Kafka connection settings are invalid or refused (TLS/SASL)
    ├── SinkError              a sink could not write (``retryable`` says whether to retry)
    ├── DeliveryError          a receiver could not be notified (``receiver`` names it)
    └── QueryError             ClickHouse refused an analyst's query (its own message)

Messages say what is wrong and, where it helps, what to do about it.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ContractError",
    "DeliveryError",
    "KafkaConfigError",
    "PolicyError",
    "QueryError",
    "SinkError",
    "TokenGovError",
]


class TokenGovError(Exception):
    """Base of every error tokengov raises on purpose."""


class ContractError(TokenGovError):
    """A message on the wire does not satisfy the contract (DESIGN.md)."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class PolicyError(TokenGovError):
    """A policy file is invalid. ``problems`` holds one ``path: message`` line per error."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class BrokerError(TokenGovError):
    """The embedded Kafka-compatible broker cannot start, answer or stop."""


class KafkaConfigError(TokenGovError):
    """The Kafka connection settings (``TOKENGOV_KAFKA_*``) are invalid, or the brokers refuse
    them (TLS verification, SASL authentication); the message names the setting to fix."""


class SinkError(TokenGovError):
    """A sink could not write. ``retryable`` is True when trying again may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


class DeliveryError(TokenGovError):
    """A notification could not be delivered to ``receiver``."""

    def __init__(self, receiver: str, message: str, *, retryable: bool = True) -> None:
        self.receiver = receiver
        self.retryable = retryable
        super().__init__(f"receiver {receiver!r}: {message}")


class QueryError(TokenGovError):
    """ClickHouse rejected a query; the message is ClickHouse's own."""
