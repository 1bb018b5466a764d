"""`tokengov grafana sync` through the typed adapter against a loopback Grafana stand-in that
checks every request body against Grafana's documented HTTP API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from tokengov.app.local.broker import free_port
from tokengov.sinks.grafana.alert_marks import AlertMark
from tokengov.sinks.grafana.client import Annotation, GrafanaAPI
from tokengov.sinks.grafana.dashboards import ALERT_TAG, DASHBOARDS
from tokengov.sinks.grafana.datasource import ClickHouseDatasource
from tokengov.sinks.grafana.errors import (
    GrafanaAPIError,
    GrafanaAuthError,
    GrafanaConfigError,
    GrafanaUnreachable,
    GrafanaVersionError,
)
from tokengov.sinks.grafana.panels import DATASOURCE_UID
from tokengov.sinks.grafana.sync import sync

from .conftest import FakeGrafana, validate_dashboard_save

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DATASOURCE = ClickHouseDatasource.from_url(
    "clickhouse://grafana_reader:s3cret@clickhouse:9000/tokengov"
)


def _mark(n: int, *, minutes_ago: int, ends: bool = False) -> AlertMark:
    start = NOW - timedelta(minutes=minutes_ago)
    return AlertMark(
        alert_id=f"a-{n}",
        fingerprint=f"runaway|search|support-triage|t-{n}|max_tool_calls",
        kind="runaway",
        severity="critical",
        team="search",
        workflow="support-triage",
        summary=f"task t-{n} made 13 tool calls; its cost profile allows 12",
        starts_at=start,
        ends_at=start + timedelta(minutes=5) if ends else None,
    )


def _api(fake: FakeGrafana, token: str = "admin-token") -> GrafanaAPI:
    return GrafanaAPI(fake.url, SecretStr(token), timeout_s=5)


def test_sync_creates_everything_and_is_idempotent(fake_grafana: FakeGrafana) -> None:
    marks = [_mark(1, minutes_ago=90), _mark(2, minutes_ago=30, ends=True)]
    with _api(fake_grafana) as api:
        first = sync(api, alerts=marks, now=NOW, datasource=DATASOURCE)
    assert fake_grafana.rejected == []
    assert first.folder == "created" and first.datasource == "created"
    assert first.annotations_posted == 2 and first.annotations_already_there == 0
    assert first.grafana_version == "11.6.0"

    # The stored dashboards are exactly the committed JSON files (what provisioning loads).
    for spec in DASHBOARDS:
        stored = fake_grafana.dashboards[spec.uid]
        committed = json.loads((REPO / "grafana" / "dashboards" / spec.filename).read_text())
        assert stored["dashboard"] == {**committed, "id": None}
        assert stored["folderUid"] == "tokengov"
        refs = {
            t["datasource"]["uid"]
            for p in stored["dashboard"]["panels"]
            for t in p.get("targets", [])
        }
        assert refs == {DATASOURCE_UID}
    ds = fake_grafana.datasources[DATASOURCE_UID]
    assert ds["jsonData"]["host"] == "clickhouse" and ds["jsonData"]["protocol"] == "native"
    assert ds["secureJsonData"] == {"password": "s3cret"}

    by_alert = {
        next(t for t in a["tags"] if t.startswith("alert_id:")): a for a in fake_grafana.annotations
    }
    assert set(by_alert) == {"alert_id:a-1", "alert_id:a-2"}
    a2 = by_alert["alert_id:a-2"]
    assert ALERT_TAG in a2["tags"] and "team:search" in a2["tags"] and "kind:runaway" in a2["tags"]
    assert a2["time"] == int(marks[1].starts_at.timestamp() * 1000)
    assert a2["timeEnd"] == a2["time"] + 5 * 60 * 1000
    assert by_alert["alert_id:a-1"]["timeEnd"] is None
    assert "13 tool calls" in a2["text"]

    # Second run: everything updated in place, no annotation posted twice; a new alert is.
    with _api(fake_grafana) as api:
        second = sync(api, alerts=[*marks, _mark(3, minutes_ago=1)], now=NOW, datasource=DATASOURCE)
    assert fake_grafana.rejected == []
    assert second.folder == "updated" and second.datasource == "updated"
    assert second.annotations_posted == 1 and second.annotations_already_there == 2
    assert len(fake_grafana.annotations) == 3
    assert all(fake_grafana.dashboards[s.uid]["version"] == 2 for s in DASHBOARDS)


def test_sync_without_datasource_reports_it_missing(fake_grafana: FakeGrafana) -> None:
    with _api(fake_grafana, "editor-token") as api:
        report = sync(api, alerts=[], now=NOW)
    assert report.datasource is None and report.datasource_present is False
    assert set(fake_grafana.dashboards) == {s.uid for s in DASHBOARDS}
    assert fake_grafana.datasources == {} and fake_grafana.rejected == []


def test_many_existing_annotations_are_paged_not_reposted(
    fake_grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokengov.sinks.grafana.sync as sync_module

    monkeypatch.setattr(sync_module, "_PAGE", 4)  # Grafana's answer limit, made small
    marks = [_mark(n, minutes_ago=10 * n) for n in range(1, 12)]
    with _api(fake_grafana) as api:
        assert sync(api, alerts=marks, now=NOW).annotations_posted == 11
        again = sync(api, alerts=marks, now=NOW)
    assert again.annotations_posted == 0 and again.annotations_already_there == 11
    assert len(fake_grafana.annotations) == 11


def test_bad_token_is_a_clear_auth_error(fake_grafana: FakeGrafana) -> None:
    with _api(fake_grafana, "not-a-token") as api, pytest.raises(GrafanaAuthError) as err:
        sync(api, alerts=[], now=NOW)
    assert err.value.status == 401
    assert "rejected the token" in str(err.value) and "TOKENGOV_GRAFANA_TOKEN" in str(err.value)


def test_missing_role_is_a_clear_auth_error(fake_grafana: FakeGrafana) -> None:
    with _api(fake_grafana, "viewer-token") as api, pytest.raises(GrafanaAuthError) as err:
        sync(api, alerts=[], now=NOW)
    assert err.value.status == 403 and "Editor role" in str(err.value)
    # An Editor may not manage data sources: the message says which role is needed.
    with _api(fake_grafana, "editor-token") as api, pytest.raises(GrafanaAuthError) as err:
        sync(api, alerts=[], now=NOW, datasource=DATASOURCE)
    assert "Admin" in str(err.value)


def test_old_grafana_is_a_version_error(fake_grafana: FakeGrafana) -> None:
    fake_grafana.version = "10.4.3"
    with _api(fake_grafana) as api, pytest.raises(GrafanaVersionError) as err:
        sync(api, alerts=[], now=NOW)
    assert "10.4.3" in str(err.value) and "11.6" in str(err.value)
    assert fake_grafana.dashboards == {}


def test_grafana_refusal_carries_its_message(fake_grafana: FakeGrafana) -> None:
    with _api(fake_grafana) as api, pytest.raises(GrafanaAPIError) as err:
        api.create_annotation(Annotation(time=NOW, text="", tags=("x",)))
    assert err.value.status == 400 and "text is required" in str(err.value)


def test_unreachable_and_unconfigured() -> None:
    unreachable = GrafanaAPI(f"http://127.0.0.1:{free_port()}", SecretStr("t"), timeout_s=2)
    with unreachable as api, pytest.raises(GrafanaUnreachable, match="cannot reach Grafana"):
        api.version()
    with pytest.raises(GrafanaConfigError, match="TOKENGOV_GRAFANA_TOKEN"):
        GrafanaAPI("http://127.0.0.1:1", None)
    with pytest.raises(GrafanaConfigError, match="TOKENGOV_GRAFANA_URL"):
        GrafanaAPI("", SecretStr("t"))


def test_the_stand_in_rejects_what_grafana_documents_as_invalid() -> None:
    """The validation the sync tests rely on is not vacuous."""
    good = {
        "dashboard": {"uid": "u", "title": "t", "schemaVersion": 41, "panels": []},
        "folderUid": "f",
        "overwrite": True,
    }
    assert validate_dashboard_save(good) == []
    for broken, expected in [
        ({**good, "dashboard": {**good["dashboard"], "schemaVersion": None}}, "schemaVersion"),
        ({**good, "dashboard": {**good["dashboard"], "uid": "x" * 41}}, "uid"),
        (
            {**good, "dashboard": {k: v for k, v in good["dashboard"].items() if k != "panels"}},
            "panels",
        ),
        (
            {**good, "dashboard": {**good["dashboard"], "panels": [{"type": "stat", "id": 1}]}},
            "gridPos",
        ),
        ({**good, "folder": "f"}, "unknown field"),
    ]:
        assert any(expected in p for p in validate_dashboard_save(broken)), expected
