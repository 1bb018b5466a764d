"""The generated dashboards: committed JSON equals the code, and each one is well formed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.sinks.grafana import render
from tokengov.sinks.grafana.dashboards import ALERT_TAG, DASHBOARDS, to_model
from tokengov.sinks.grafana.panels import DATASOURCE_UID, PLUGIN_ID
from tokengov.sinks.grafana.sql import ALL_VALUE

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "grafana"


def test_committed_files_match_the_code() -> None:
    problems = render.check(GRAFANA)
    assert problems == [], (
        "generated Grafana files drifted from tokengov/sinks/grafana — run `tokengov grafana build`:\n"
        + "\n".join(problems)
    )


def test_check_detects_drift_and_build_repairs_it(tmp_path: Path) -> None:
    out = tmp_path / "grafana"
    runner = CliRunner()
    assert runner.invoke(app, ["grafana", "build", "--out", str(out)]).exit_code == 0
    assert render.check(out) == []
    victim = out / "dashboards" / DASHBOARDS[0].filename
    victim.write_text(victim.read_text().replace("Spend", "Spent", 1))
    (out / "dashboards" / "hand-made.json").write_text("{}")
    result = runner.invoke(app, ["grafana", "build", "--out", str(out), "--check"])
    assert result.exit_code == 1
    assert "differs from the code" in result.output and "hand-made.json" in result.output
    assert runner.invoke(app, ["grafana", "build", "--out", str(out)]).exit_code == 0
    assert render.check(out) == [] and not (out / "dashboards" / "hand-made.json").exists()


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("spec", DASHBOARDS, ids=lambda s: s.uid)
def test_dashboard_shape(spec: Any) -> None:
    model = to_model(spec.build())
    assert model["uid"] == spec.uid and len(spec.uid) <= 40
    assert model["title"] == spec.title and isinstance(model["schemaVersion"], int)
    titles = [p["title"] for p in _panels(model)]
    assert len(titles) == len(set(titles)), "panel titles must be unique within a dashboard"
    ids = [p["id"] for p in model["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert list(variables) == ["team", "workflow", "model"]
    for var in variables.values():
        assert var["multi"] and var["includeAll"] and var["allValue"] == ALL_VALUE
        assert var["datasource"] == {"type": PLUGIN_ID, "uid": DATASOURCE_UID}
    annotations = model["annotations"]["list"]
    assert any(a["target"]["tags"] == [ALERT_TAG] for a in annotations)
    for panel in _panels(model):
        assert panel["title"] and panel["description"], panel
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel["targets"]:
            assert target["datasource"] == {"type": PLUGIN_ID, "uid": DATASOURCE_UID}
            sql = target["rawSql"]
            if target["format"] == 0:  # time series need a `time` column first
                assert re.match(
                    r"\s*(WITH .*?\)\s*)?SELECT\s+(\$__timeInterval\([^)]*\)\s+AS\s+)?time\b",
                    sql,
                    re.S,
                ), (panel["title"], sql)
            # Filters use the multi-value format; a bare $team would expand to {a,b}.
            assert not re.search(r"\$(team|workflow|model)\b|\$\{(team|workflow|model)\}", sql)


def test_uids_and_titles_are_unique() -> None:
    assert len({s.uid for s in DASHBOARDS}) == len(DASHBOARDS)
    assert len({s.title for s in DASHBOARDS}) == len(DASHBOARDS)


def test_unit_economics_metrics_sit_next_to_the_success_rate() -> None:
    model = to_model(next(s for s in DASHBOARDS if s.uid == "tokengov-unit-economics").build())
    series = [p for p in _panels(model) if p["type"] == "timeseries"]
    assert len(series) == 4
    for panel in series:
        assert "success_rate" in panel["targets"][1]["rawSql"]
        overrides = panel["fieldConfig"]["overrides"]
        assert any(
            o["matcher"] == {"id": "byFrameRefID", "options": "B"}
            and {"id": "custom.axisPlacement", "value": "right"} in o["properties"]
            for o in overrides
        )
    table = next(p for p in _panels(model) if p["type"] == "table")
    assert "success_rate" in table["targets"][0]["rawSql"]


def test_provisioning_files() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/tokengov-clickhouse.yaml").read_text())
    (entry,) = ds["datasources"]
    assert entry["type"] == PLUGIN_ID and entry["uid"] == DATASOURCE_UID
    assert entry["jsonData"]["username"] == "grafana_reader"
    assert entry["secureJsonData"]["password"] == "${TOKENGOV_GRAFANA_CLICKHOUSE_PASSWORD}"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/tokengov.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["folderUid"] == "tokengov"
    assert provider["allowUiUpdates"] is False


def test_committed_json_is_plain_json() -> None:
    for spec in DASHBOARDS:
        data = json.loads((GRAFANA / "dashboards" / spec.filename).read_text())
        assert data["uid"] == spec.uid
