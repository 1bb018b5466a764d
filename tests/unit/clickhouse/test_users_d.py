"""deploy/clickhouse: the server's users and the settings they rely on, parsed and checked
field by field against ClickHouse's users.d / config.d schema (a ClickHouse server is not
run in the tests; its documented behaviour is cited in the files)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tokengov.sinks.clickhouse.limits import QueryLimits
from tokengov.sinks.clickhouse.reports import ONE_SNAPSHOT

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "clickhouse"
USERS = DEPLOY / "users.d" / "tokengov.xml"
CONFIG = DEPLOY / "config.d" / "tokengov.xml"

#: The children a profile / a user may have in users.d (ClickHouse's users.xml schema).
USER_FIELDS = {
    "password",
    "password_sha256_hex",
    "password_double_sha1_hex",
    "no_password",
    "networks",
    "profile",
    "quota",
    "grants",
    "access_management",
    "default_database",
    "allow_databases",
    "settings",
}
CONSTRAINT_FIELDS = {"min", "max", "readonly", "const", "changeable_in_readonly", "disallowed"}
#: Global grants that open files, processes or the network (ClickHouse's SOURCES group).
SOURCES = (
    "SOURCES",
    "FILE",
    "URL",
    "REMOTE",
    "MYSQL",
    "POSTGRES",
    "SQLITE",
    "ODBC",
    "JDBC",
    "HDFS",
    "S3",
    "AZURE",
    "MONGO",
    "REDIS",
    "HIVE",
    "KAFKA",
    "NATS",
    "RABBITMQ",
    "READ",
    "WRITE",
    " ON *.*",
    "ALL ON *",
)


@pytest.fixture(scope="module")
def users() -> ET.Element:
    root = ET.parse(USERS).getroot()
    assert root.tag == "clickhouse"
    assert {child.tag for child in root} == {"profiles", "users"}
    return root


def _int(element: ET.Element, tag: str) -> int:
    found = element.find(tag)
    assert found is not None and found.text is not None, tag
    return int(found.text)


def test_the_reader_profile_is_read_only_with_limits(users: ET.Element) -> None:
    profile = users.find("profiles/tokengov_reader")
    assert profile is not None
    assert _int(profile, "readonly") == 1
    assert _int(profile, "allow_ddl") == 0
    assert _int(profile, "allow_introspection_functions") == 0
    defaults = QueryLimits()
    assert _int(profile, "max_execution_time") == defaults.timeout_s
    assert _int(profile, "max_memory_usage") == defaults.max_memory_bytes
    assert _int(profile, "max_result_rows") == defaults.max_result_rows
    assert profile.findtext("result_overflow_mode") == "throw"
    assert profile.findtext("timeout_overflow_mode") == "throw"
    # what the reports' statements say in SETTINGS (refused under readonly = 1 unless equal)
    snapshot = "enable_shared_storage_snapshot_in_query"
    assert _int(profile, snapshot) == defaults.session_settings()[snapshot] == 1
    assert f"SETTINGS {snapshot} = 1" in ONE_SNAPSHOT
    constraints = profile.find("constraints")
    assert constraints is not None
    # Only max_execution_time may change under readonly = 1, and only within the limit.
    assert [c.tag for c in constraints] == ["max_execution_time"]
    timeout = constraints[0]
    assert {c.tag for c in timeout} <= CONSTRAINT_FIELDS
    assert timeout.find("changeable_in_readonly") is not None
    assert _int(timeout, "max") == _int(profile, "max_execution_time")
    # readonly itself is never made changeable, in any profile.
    for any_profile in users.findall("profiles/*"):
        assert any_profile.find("constraints/readonly") is None


def test_users_have_known_fields_passwords_from_env_and_no_source_grants(
    users: ET.Element,
) -> None:
    by_name = {user.tag: user for user in users.findall("users/*")}
    assert set(by_name) == {"default", "tokengov_writer", "grafana_reader"}
    for name, user in by_name.items():
        assert {child.tag for child in user} <= USER_FIELDS, name
        password = user.find("password")
        if password is not None:
            assert password.text is None and password.get("from_env"), name
        for query in user.findall("grants/query"):
            grant = (query.text or "").upper()
            assert grant.startswith("GRANT "), grant
            assert not [s for s in SOURCES if s in grant.removeprefix("GRANT ")], grant
    default_networks = [ip.text for ip in by_name["default"].findall("networks/ip")]
    assert sorted(default_networks) == ["127.0.0.1", "::1"]
    reader = by_name["grafana_reader"]
    assert reader.findtext("profile") == "tokengov_reader"
    assert [q.text for q in reader.findall("grants/query")] == ["GRANT SELECT ON tokengov.*"]
    writer = by_name["tokengov_writer"]
    assert [q.text for q in writer.findall("grants/query")] == ["GRANT ALL ON tokengov.*"]


def test_the_server_enables_changeable_in_readonly() -> None:
    root = ET.parse(CONFIG).getroot()
    assert root.tag == "clickhouse"
    assert root.findtext("access_control_improvements/settings_constraints_replace_previous") == (
        "true"
    )
