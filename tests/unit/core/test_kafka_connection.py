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
    # A plain unreachable broker is not a settings problem.
    assert explain_refusal(ssl_conn, ["Connect to ipv4#127.0.0.1:1 failed: refused"]) is None
    many = explain_refusal(
        ssl_conn, [f"SSL handshake failed: certificate verify failed {i}" for i in range(50)]
    )
    assert many is not None and "(and 47 more)" in str(many)
