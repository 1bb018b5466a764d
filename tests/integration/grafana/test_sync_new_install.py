"""`tokengov grafana sync` on a new installation (no history anywhere): the folder, data source
and dashboards are pushed to the loopback Grafana stand-in that checks every request body, it
says there is nothing to annotate yet, and it creates no store."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.sinks.grafana.dashboards import DASHBOARDS
from tokengov.sinks.grafana.panels import DATASOURCE_UID

from .conftest import FakeGrafana

pytestmark = pytest.mark.integration


def test_sync_on_a_new_installation_pushes_dashboards_and_annotates_nothing(
    fake_grafana: FakeGrafana, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wide_console: None
) -> None:
    for name in ("TOKENGOV_DATA_DIR", "TOKENGOV_CLICKHOUSE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENGOV_GRAFANA_URL", fake_grafana.url)
    monkeypatch.setenv("TOKENGOV_GRAFANA_TOKEN", "admin-token")
    monkeypatch.chdir(tmp_path)
    ran = CliRunner().invoke(
        app,
        [
            "grafana",
            "sync",
            "--datasource-url",
            "clickhouse://grafana_reader:pw@clickhouse:9000/tokengov",
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert fake_grafana.rejected == []
    assert set(fake_grafana.dashboards) == {spec.uid for spec in DASHBOARDS}
    assert set(fake_grafana.datasources) == {DATASOURCE_UID}
    assert fake_grafana.annotations == []
    assert (
        "alert annotations: nothing to annotate yet (no history at ./.tokengov yet — start "
        "`tokengov up` or run `tokengov demo`)" in ran.stdout
    ), ran.output
    assert "error" not in ran.stderr and "no history" not in ran.stderr, ran.stderr
    assert list(tmp_path.iterdir()) == []  # no ./.tokengov, no store
