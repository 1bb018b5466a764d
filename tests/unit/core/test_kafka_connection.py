"""The Kafka connection settings: validation, rendering for librdkafka and aiokafka/Faust,
and secrets that never show. Rendered configs are handed to the real client constructors."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer

from tokengov.app.faust_broker import faust_broker_credentials, faust_broker_url
from tokengov.app.local.certs import TlsFiles, make_tls_files
from tokengov.core.errors import KafkaConfigError
from tokengov.core.kafka import (
    KafkaConnection,
    SecurityProtocol,
    connection,
    explain_refusal,
    load_connection,
)
from tokengov.core.settings import Settings

PASSWORD = "s3cr3t-pa55word-xyz"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TOKENGOV_KAFKA_"):
            monkeypatch.delenv(name)


def _every_protocol(tls: TlsFiles) -> dict[str, KafkaConnection]:
    return {
        "PLAINTEXT": load_connection(bootstrap="h1:9092,h2:9092"),
        "SSL": load_connection(security_protocol="SSL", ssl_ca_file=tls.ca_cert),
        "SSL-mtls": load_connection(
            security_protocol="SSL",
            ssl_ca_file=tls.ca_cert,
            ssl_cert_file=tls.client_cert,
            ssl_key_file=tls.client_key,
        ),
        "SSL-system-CAs": load_connection(security_protocol="SSL"),
        "SASL_PLAINTEXT": load_connection(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username="agent",
            sasl_password=PASSWORD,
        ),
        "SASL_SSL": load_connection(
            security_protocol="SASL_SSL",
            ssl_ca_file=tls.ca_cert,
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="agent",
            sasl_password=PASSWORD,
        ),
        "SASL_SSL-256": load_connection(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="agent",
            sasl_password=PASSWORD,
        ),
    }


def test_defaults_and_the_existing_bootstrap_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = load_connection()
    assert conn.bootstrap == "127.0.0.1:9092"
    assert conn.security_protocol is SecurityProtocol.PLAINTEXT
    monkeypatch.setenv("TOKENGOV_KAFKA_BOOTSTRAP", "kafka-1:9093")
    assert load_connection().bootstrap == "kafka-1:9093"
    assert Settings().kafka_bootstrap == "kafka-1:9093"
    assert Settings().kafka.bootstrap == "kafka-1:9093"
    # --bootstrap (kafka_bootstrap given explicitly) wins over the environment.
    assert Settings(kafka_bootstrap="flag:1").kafka.bootstrap == "flag:1"


def test_settings_read_every_variable(monkeypatch: pytest.MonkeyPatch, tls: TlsFiles) -> None:
    monkeypatch.setenv("TOKENGOV_KAFKA_BOOTSTRAP", "b:9093")
    monkeypatch.setenv("TOKENGOV_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TOKENGOV_KAFKA_SSL_CA_FILE", str(tls.ca_cert))
    monkeypatch.setenv("TOKENGOV_KAFKA_SSL_CERT_FILE", str(tls.client_cert))
    monkeypatch.setenv("TOKENGOV_KAFKA_SSL_KEY_FILE", str(tls.client_key))
    monkeypatch.setenv("TOKENGOV_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("TOKENGOV_KAFKA_SASL_USERNAME", "agent")
    monkeypatch.setenv("TOKENGOV_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("TOKENGOV_KAFKA_CLIENT_ID", "fleet-7")
    assert Settings().kafka.librdkafka_config() == {
        "bootstrap.servers": "b:9093",
        "client.id": "fleet-7",
        "security.protocol": "sasl_ssl",
        "allow.auto.create.topics": False,
        "ssl.ca.location": str(tls.ca_cert),
        "ssl.certificate.location": str(tls.client_cert),
        "ssl.key.location": str(tls.client_key),
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "agent",
        "sasl.password": PASSWORD,
    }


def test_plaintext_rendering() -> None:
    conn = load_connection(bootstrap="h1:9092,h2:9092")
    assert conn.librdkafka_config() == {
        "bootstrap.servers": "h1:9092,h2:9092",
        "client.id": "tokengov",
        "security.protocol": "plaintext",
        "allow.auto.create.topics": False,
    }
    assert conn.aiokafka_config() == {
        "bootstrap_servers": "h1:9092,h2:9092",
        "client_id": "tokengov",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_broker_url(conn) == "kafka://h1:9092;h2:9092"
    assert faust_broker_credentials(conn) is None


def test_ssl_rendering(tls: TlsFiles) -> None:
    conn = _every_protocol(tls)["SSL-mtls"]
    conf = conn.librdkafka_config()
    assert conf["security.protocol"] == "ssl"
    assert conf["ssl.ca.location"] == str(tls.ca_cert)
    assert conf["ssl.certificate.location"] == str(tls.client_cert)
    assert conf["ssl.key.location"] == str(tls.client_key)
    assert "sasl.mechanism" not in conf
    aio = conn.aiokafka_config()
    assert aio["security_protocol"] == "SSL"
    context = aio["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    # The CA file is loaded, not the system store only.
    assert any("tokengov test CA" in str(c.get("subject")) for c in context.get_ca_certs())

    from faust.auth import SSLCredentials
    from faust.types.auth import AuthProtocol

    creds = faust_broker_credentials(conn)
    assert isinstance(creds, SSLCredentials)
    assert creds.protocol == AuthProtocol.SSL


def test_sasl_rendering(tls: TlsFiles) -> None:
    from faust.auth import SASLCredentials
    from faust.types.auth import AuthProtocol, SASLMechanism

    for key, proto, mech in [
        ("SASL_PLAINTEXT", AuthProtocol.SASL_PLAINTEXT, SASLMechanism.PLAIN),
        ("SASL_SSL", AuthProtocol.SASL_SSL, SASLMechanism.SCRAM_SHA_512),
    ]:
        conn = _every_protocol(tls)[key]
        conf = conn.librdkafka_config()
        assert conf["security.protocol"] == key.lower()
        assert conf["sasl.mechanism"] == mech.value
        assert conf["sasl.username"] == "agent"
        assert conf["sasl.password"] == PASSWORD
        aio = conn.aiokafka_config()
        assert aio["sasl_mechanism"] == mech.value
        assert aio["sasl_plain_username"] == "agent"
        assert aio["sasl_plain_password"] == PASSWORD
        assert ("ssl_context" in aio) == (key == "SASL_SSL")
        creds = faust_broker_credentials(conn)
        assert isinstance(creds, SASLCredentials)
        assert creds.protocol == proto
        assert creds.mechanism == mech
        assert creds.password == PASSWORD


def test_secrets_never_show(tls: TlsFiles, caplog: pytest.LogCaptureFixture) -> None:
    conn = _every_protocol(tls)["SASL_SSL"]
    logging.getLogger("tokengov.test").warning("connecting with %s / %r", conn, conn)
    for text in (repr(conn), str(conn), conn.describe(), caplog.text, conn.model_dump_json()):
        assert PASSWORD not in text
    assert "agent" in repr(conn)  # the rest is shown: the test would see a blank repr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": "p"},
            "TOKENGOV_KAFKA_SASL_MECHANISM",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
            "TOKENGOV_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
            },
            "TOKENGOV_KAFKA_SASL_PASSWORD",
        ),
        ({"sasl_username": "u"}, "TOKENGOV_KAFKA_SASL_USERNAME is set but"),
        ({"security_protocol": "TLS"}, "TOKENGOV_KAFKA_SECURITY_PROTOCOL"),
        ({"sasl_mechanism": "GSSAPI"}, "TOKENGOV_KAFKA_SASL_MECHANISM"),
        (
            {"security_protocol": "SSL", "ssl_ca_file": "/nonexistent/ca.pem"},
            "TOKENGOV_KAFKA_SSL_CA_FILE=/nonexistent/ca.pem: no such file",
        ),
        ({"ssl_ca_file": "ca.pem"}, "TOKENGOV_KAFKA_SSL_CA_FILE is set but"),
        ({"bootstrap": ""}, "TOKENGOV_KAFKA_BOOTSTRAP"),
    ],
)
def test_clear_errors(overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(KafkaConfigError, match=expected):
        load_connection(**overrides)


def test_mutual_tls_needs_both_files(tls: TlsFiles) -> None:
    with pytest.raises(KafkaConfigError, match="both TOKENGOV_KAFKA_SSL_CERT_FILE and"):
        load_connection(security_protocol="SSL", ssl_cert_file=tls.client_cert)


def test_errors_from_the_environment_never_echo_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENGOV_KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(KafkaConfigError) as info:
        Settings().kafka  # noqa: B018 - the property validates
    assert "TOKENGOV_KAFKA_SASL_PASSWORD is set but" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_bare_bootstrap_string_is_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENGOV_KAFKA_SECURITY_PROTOCOL", "SSL")
    conn = connection("h:1")
    assert conn.bootstrap == "h:1"
    assert conn.security_protocol is SecurityProtocol.PLAINTEXT
    same = load_connection(bootstrap="x:1")
    assert connection(same) is same


def test_librdkafka_accepts_every_rendering(tls: TlsFiles) -> None:
    for name, conn in _every_protocol(tls).items():
        conf = conn.librdkafka_config()
        try:
            Producer(conf).flush(0)
            Consumer({**conf, "group.id": "g"}).close()
        except Exception as exc:  # pragma: no cover - the message says which rendering
            raise AssertionError(f"{name}: librdkafka refused {exc}") from exc


def test_aiokafka_accepts_every_rendering(tls: TlsFiles) -> None:
    async def construct(conf: dict[str, Any]) -> None:
        # The constructors validate protocol, mechanism, credentials and the SSL context.
        AIOKafkaProducer(**conf)
        AIOKafkaConsumer(**conf)

    for conn in _every_protocol(tls).values():
        asyncio.run(construct(conn.aiokafka_config()))
    # ... and they do refuse what is inconsistent, so the check above means something.
    broken = {**_every_protocol(tls)["SASL_SSL"].aiokafka_config(), "ssl_context": None}
    with pytest.raises(ValueError, match="ssl_context"):
        asyncio.run(construct(broken))


def test_refusals_name_the_setting_to_fix(tls: TlsFiles) -> None:
    """What librdkafka says when a broker refuses, turned into the setting to fix (SASL has
    no broker to test against here: Tansu 0.6.0 has no SASL listener)."""
    sasl = _every_protocol(tls)["SASL_SSL"]
    refusal = explain_refusal(
        sasl,
        [
            "sasl_ssl://b:9093/bootstrap: SASL authentication error: Authentication failed "
            "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
        ],
    )
    assert refusal is not None
    assert "TOKENGOV_KAFKA_SASL_PASSWORD" in str(refusal)
    assert PASSWORD not in str(refusal)
    ssl_conn = _every_protocol(tls)["SSL"]
    untrusted = explain_refusal(ssl_conn, ["SSL handshake failed: certificate verify failed"])
    assert untrusted is not None
    assert f"TOKENGOV_KAFKA_SSL_CA_FILE={tls.ca_cert} did not sign it" in str(untrusted)
    # A broker that is simply not there is not a settings problem (every line of a SASL
    # client names "sasl_ssl://": that alone is no refusal of the credentials).
    down = "sasl_ssl://127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: refused"
    assert explain_refusal(sasl, [down]) is None
    assert explain_refusal(ssl_conn, ["Connect to ipv4#127.0.0.1:1 failed: refused"]) is None
    lines = [f"SSL handshake failed: certificate verify failed ({i})" for i in range(50)]
    many = explain_refusal(ssl_conn, lines)
    assert many is not None and "(and 47 more)" in str(many)
