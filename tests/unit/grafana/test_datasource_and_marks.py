"""The data source definition and how alerts become annotations (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokengov.sinks.grafana.alert_marks import AlertMark, alert_id_of
from tokengov.sinks.grafana.dashboards import ALERT_TAG
from tokengov.sinks.grafana.datasource import ClickHouseDatasource
from tokengov.sinks.grafana.errors import GrafanaConfigError
from tokengov.sinks.grafana.panels import DATASOURCE_UID, PLUGIN_ID


@pytest.mark.parametrize(
    ("url", "protocol", "secure", "port", "user", "password", "db"),
    [
        (
            "clickhouse://reader:pw@ch:9000/tokengov",
            "native",
            False,
            9000,
            "reader",
            "pw",
            "tokengov",
        ),
        ("clickhouses://reader@ch/tokengov", "native", True, 9440, "reader", None, "tokengov"),
        ("http://ch", "http", False, 8123, "default", None, "default"),
        ("https://r%40x:p%2Fw@ch:8443/db", "http", True, 8443, "r@x", "p/w", "db"),
    ],
)
def test_from_url(
    url: str, protocol: str, secure: bool, port: int, user: str, password: str | None, db: str
) -> None:
    ds = ClickHouseDatasource.from_url(url)
    assert (ds.host, ds.protocol, ds.secure, ds.port, ds.username, ds.database) == (
        "ch",
        protocol,
        secure,
        port,
        user,
        db,
    )
    assert (ds.password.get_secret_value() if ds.password else None) == password
    body = ds.api_body()
    assert body["type"] == PLUGIN_ID and body["uid"] == DATASOURCE_UID and body["access"] == "proxy"
    assert ("secureJsonData" in body) == (password is not None)
    assert password is None or password not in repr(ds)  # SecretStr keeps it out of logs


def test_chdb_is_not_a_grafana_data_source() -> None:
    with pytest.raises(GrafanaConfigError, match="embedded chdb store is not reachable"):
        ClickHouseDatasource.from_url("chdb:///tmp/x")
    with pytest.raises(GrafanaConfigError, match="no host"):
        ClickHouseDatasource.from_url("http:///db")


def _mark(**overrides: object) -> AlertMark:
    start = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    fields: dict[str, object] = dict(
        alert_id="a-1",
        fingerprint="budget_threshold|search|day|0.8",
        kind="budget_threshold",
        severity="warning",
        team="search",
        workflow=None,
        summary="search spent 80% of $200",
        starts_at=start,
        ends_at=None,
    )
    fields.update(overrides)
    return AlertMark(**fields)  # type: ignore[arg-type]


def test_annotation_tags_and_text() -> None:
    ann = _mark().annotation()
    assert ann.tags == (
        ALERT_TAG,
        "alert_id:a-1",
        "kind:budget_threshold",
        "severity:warning",
        "team:search",
        "fingerprint:budget_threshold|search|day|0.8",
    )
    assert alert_id_of(ann.tags) == "a-1"
    assert ann.text == "[warning] budget_threshold · search: search spent 80% of $200"
    assert ann.time_end is None


def test_region_only_when_the_alert_ended_later_and_long_fingerprints_are_left_out() -> None:
    start = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    ended = _mark(ends_at=start + timedelta(minutes=3), workflow="triage").annotation()
    assert ended.time_end == start + timedelta(minutes=3) and "workflow:triage" in ended.tags
    assert _mark(ends_at=start).annotation().time_end is None
    long_fp = _mark(fingerprint="x" * 101).annotation()
    assert not any(t.startswith("fingerprint:") for t in long_fp.tags)
    assert alert_id_of(("a", "b")) is None
