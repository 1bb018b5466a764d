"""How every tokengov process connects to Kafka: one typed, validated settings object.

:class:`KafkaConnection` reads ``TOKENGOV_KAFKA_*`` (pydantic-settings) and renders itself
once for librdkafka (confluent-kafka: the SDK, the CLI, the sinks) with
:meth:`~KafkaConnection.librdkafka_config`, and once for aiokafka/Faust (the worker) with
:meth:`~KafkaConnection.aiokafka_config` and :meth:`~KafkaConnection.faust_broker_credentials`.

============================== ==========================================================
``TOKENGOV_KAFKA_BOOTSTRAP``   ``host:port[,host:port]`` (default ``127.0.0.1:9092``)
``..._SECURITY_PROTOCOL``      ``PLAINTEXT`` · ``SSL`` · ``SASL_PLAINTEXT`` · ``SASL_SSL``
``..._SSL_CA_FILE``            PEM CA bundle that signed the brokers' certificates
                               (unset: the system's CAs)
``..._SSL_CERT_FILE``/``_KEY`` client certificate and key, PEM (mutual TLS; both or none)
``..._SASL_MECHANISM``         ``PLAIN`` · ``SCRAM-SHA-256`` · ``SCRAM-SHA-512``
``..._SASL_USERNAME``          SASL user
``..._SASL_PASSWORD``          SASL password (a secret: never in repr, str or logs)
``..._CLIENT_ID``              client id the brokers see (default ``tokengov``)
============================== ==========================================================

The core imports nothing of Faust or aiokafka: :meth:`faust_broker_credentials` imports
Faust when it is called, so the SDK works without the server's dependencies.
"""

from __future__ import annotations

import logging
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokengov.errors import BrokerError, KafkaConfigError

__all__ = [
    "ENV_PREFIX",
    "KafkaConnection",
    "SaslMechanism",
    "SecurityProtocol",
    "check_connection",
    "connection",
    "explain_refusal",
    "load_connection",
]

ENV_PREFIX: Final = "TOKENGOV_KAFKA_"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


def _env(field: str) -> str:
    return ENV_PREFIX + field.upper()


class KafkaConnection(BaseSettings):
    """Where the brokers are and how to authenticate to them (env prefix ``TOKENGOV_KAFKA_``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, case_sensitive=False
    )

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        min_length=1,
        description="Kafka bootstrap servers, host:port[,host:port].",
    )
    security_protocol: SecurityProtocol = Field(
        default=SecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates "
        "(SSL/SASL_SSL; unset: the system's CAs).",
    )
    ssl_cert_file: Path | None = Field(
        default=None, description="Client certificate, PEM (mutual TLS; with the key file)."
    )
    ssl_key_file: Path | None = Field(
        default=None, description="Client private key, PEM, unencrypted (mutual TLS)."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_PLAINTEXT/SASL_SSL).",
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    client_id: str = Field(
        default="tokengov", min_length=1, description="Client id the brokers see."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        proto = self.security_protocol
        tls_fields = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file")
        for name in tls_fields:
            path = getattr(self, name)
            if path is None:
                continue
            if not proto.tls:
                problems.append(
                    f"{_env(name)} is set but {_env('security_protocol')}={proto.value} does "
                    "not use TLS: set it to SSL or SASL_SSL, or unset the file"
                )
            elif not Path(path).is_file():
                problems.append(f"{_env(name)}={path}: no such file")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            problems.append(
                f"mutual TLS needs both {_env('ssl_cert_file')} and {_env('ssl_key_file')}"
            )
        sasl_fields = ("sasl_mechanism", "sasl_username", "sasl_password")
        if proto.sasl:
            for name in sasl_fields:
                value = getattr(self, name)
                if value is None or (isinstance(value, str) and not value):
                    problems.append(f"{_env('security_protocol')}={proto.value} needs {_env(name)}")
        else:
            for name in sasl_fields:
                if getattr(self, name) is not None:
                    problems.append(
                        f"{_env(name)} is set but {_env('security_protocol')}={proto.value} "
                        "does not use SASL: set it to SASL_PLAINTEXT or SASL_SSL"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- librdkafka (confluent-kafka) ------------------------------------------------------

    def librdkafka_config(self) -> dict[str, Any]:
        """The connection part of a confluent-kafka client's config (merge client options in).

        Topics are never auto-created by a metadata request (``allow.auto.create.topics``):
        tokengov creates them with explicit settings (:func:`tokengov.topics.ensure_topics`).
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol.value.lower(),
            "allow.auto.create.topics": False,
        }
        if self.ssl_ca_file is not None:
            conf["ssl.ca.location"] = str(self.ssl_ca_file)
        if self.ssl_cert_file is not None and self.ssl_key_file is not None:
            conf["ssl.certificate.location"] = str(self.ssl_cert_file)
            conf["ssl.key.location"] = str(self.ssl_key_file)
        if self.security_protocol.sasl:
            assert self.sasl_mechanism is not None
            assert self.sasl_password is not None
            conf["sasl.mechanism"] = self.sasl_mechanism.value
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        return conf

    # -- aiokafka / Faust ------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for aiokafka (what ``aiokafka.helpers.create_ssl_context`` builds)."""
        if not self.security_protocol.tls:
            return None
        ctx = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH,
            cafile=str(self.ssl_ca_file) if self.ssl_ca_file is not None else None,
        )
        if self.ssl_cert_file is not None and self.ssl_key_file is not None:
            ctx.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file))
        return ctx

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments of an aiokafka client (``AIOKafkaProducer(**conf)``)."""
        conf: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol.value,
        }
        context = self.ssl_context()
        if context is not None:
            conf["ssl_context"] = context
        if self.security_protocol.sasl:
            assert self.sasl_mechanism is not None
            assert self.sasl_password is not None
            conf["sasl_mechanism"] = self.sasl_mechanism.value
            conf["sasl_plain_username"] = self.sasl_username
            conf["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return conf

    def faust_broker_url(self) -> str:
        """Faust's ``broker=``: ``kafka://h1:p1;h2:p2``."""
        hosts = ";".join(h.strip() for h in self.bootstrap.split(",") if h.strip())
        return f"kafka://{hosts}"

    def faust_broker_credentials(self) -> Any:
        """Faust's ``broker_credentials=`` (``None`` for PLAINTEXT)."""
        proto = self.security_protocol
        if proto is SecurityProtocol.PLAINTEXT:
            return None
        from faust.auth import SASLCredentials, SSLCredentials

        if proto is SecurityProtocol.SSL:
            return SSLCredentials(self.ssl_context())
        assert self.sasl_mechanism is not None
        assert self.sasl_password is not None
        return SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password.get_secret_value(),
            ssl_context=self.ssl_context(),
            mechanism=self.sasl_mechanism.value,
        )

    def __str__(self) -> str:
        """The bootstrap servers: what error messages say ("cannot reach ... on {conn}")."""
        return self.bootstrap

    def describe(self) -> str:
        """One line for logs and error messages; never a secret."""
        return f"{self.bootstrap} ({self.security_protocol.value})"


def load_connection(**overrides: Any) -> KafkaConnection:
    """The environment's connection, with ``overrides`` over it; errors name the variables."""
    try:
        return KafkaConnection(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{_env(loc)}: {msg}" if loc else msg)
        raise KafkaConfigError("Kafka connection settings: " + "; ".join(lines)) from None


def connection(value: KafkaConnection | str) -> KafkaConnection:
    """Accept a connection or a bare bootstrap string (plaintext, as before)."""
    if isinstance(value, KafkaConnection):
        return value
    return KafkaConnection.model_construct(bootstrap=value)


def explain_refusal(conn: KafkaConnection, errors: list[str]) -> KafkaConfigError | None:
    """A :class:`KafkaConfigError` saying which setting to fix, when librdkafka's ``errors``
    (from ``error_cb`` or the log) show the brokers refused the connection settings."""
    unique = list(dict.fromkeys(errors))
    lowered = " ".join(unique).lower()
    text = " | ".join(unique[:3]) + (f" (and {len(unique) - 3} more)" if len(unique) > 3 else "")
    where = conn.bootstrap
    if "certificate verify failed" in lowered or "could not be verified" in lowered:
        ca = (
            f"{ENV_PREFIX}SSL_CA_FILE={conn.ssl_ca_file} did not sign it"
            if conn.ssl_ca_file is not None
            else f"{ENV_PREFIX}SSL_CA_FILE is not set and the system's CAs did not sign it"
        )
        return KafkaConfigError(
            f"TLS: the certificate of the broker at {where} is not trusted: {ca}. "
            f"Set {ENV_PREFIX}SSL_CA_FILE to the PEM file of the CA that signed the brokers' "
            f"certificates. (librdkafka: {text})"
        )
    if (
        conn.security_protocol.tls
        and "ssl" in lowered
        and ("alert" in lowered or "handshake" in lowered or "closed by peer" in lowered)
    ):
        mtls = (
            f"; if the brokers require mutual TLS, set {ENV_PREFIX}SSL_CERT_FILE and "
            f"{ENV_PREFIX}SSL_KEY_FILE to a client certificate they trust"
        )
        return KafkaConfigError(
            f"TLS: the handshake with the broker at {where} failed{mtls}; check "
            f"{ENV_PREFIX}SSL_CA_FILE. (librdkafka: {text})"
        )
    if "authentication" in lowered:  # not "sasl": every line of a SASL client names it
        return KafkaConfigError(
            f"SASL: the broker at {where} refused the credentials: check "
            f"{ENV_PREFIX}SASL_MECHANISM, {ENV_PREFIX}SASL_USERNAME and "
            f"{ENV_PREFIX}SASL_PASSWORD. (librdkafka: {text})"
        )
    if not conn.security_protocol.tls and (
        "disconnected" in lowered or "wrong protocol" in lowered or "ssl" in lowered
    ):
        return KafkaConfigError(
            f"the broker at {where} closed a {conn.security_protocol.value} connection: if it "
            f"serves TLS, set {ENV_PREFIX}SECURITY_PROTOCOL=SSL (or SASL_SSL) and "
            f"{ENV_PREFIX}SSL_CA_FILE. (librdkafka: {text})"
        )
    return None


def check_connection(conn: KafkaConnection, timeout_s: float = 10.0) -> None:
    """Ask the brokers for metadata; raise :class:`KafkaConfigError` (which setting to fix)
    when they refuse the settings, :class:`BrokerError` when they cannot be reached."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record.getMessage())

    # librdkafka says why a connection failed (TLS verification, SASL) in its log and in
    # error_cb; both are collected here, never printed: the raised error carries them.
    probe_log = logging.Logger("tokengov.librdkafka.probe")  # unregistered: no parent, no leak
    probe_log.addHandler(_Collect())

    def on_error(err: KafkaError) -> None:
        errors.append(err.str())

    config: dict[str, Any] = {
        **conn.librdkafka_config(),
        "logger": probe_log,
        "log.connection.close": True,  # a TLS peer that hangs up (mutual TLS) says so here
        "error_cb": on_error,
        "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # serves error_cb
        refusal = explain_refusal(conn, [*errors, str(exc)])
        if refusal is not None:
            raise refusal from exc
        raise BrokerError(f"cannot reach the Kafka brokers at {conn.bootstrap}: {exc}") from exc
    if not metadata.brokers:  # pragma: no cover - a broker that answers lists itself
        raise BrokerError(f"the Kafka brokers at {conn.bootstrap} list no broker")
