"""docs/otlp.md's YAML: the Collector pipeline is well formed and aimed at the receiver; the
policy section it shows is the defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tokengov.core.policy import OtlpAttribution, parse_policy
from tokengov.ingest.otlp.spans import is_content
from tokengov.producers.adapters import OTEL_ATTRIBUTES

DOC = Path(__file__).resolve().parents[3] / "docs" / "otlp.md"


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def test_the_collector_pipeline() -> None:
    (config,) = [b for b in yaml_blocks() if "service" in b]
    assert set(config) <= {
        "receivers",
        "processors",
        "exporters",
        "extensions",
        "connectors",
        "service",
    }
    pipelines = config["service"]["pipelines"]
    assert pipelines
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] == "traces"
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {component} is not defined"
    (exporter,) = [e for n, e in config["exporters"].items() if n.split("/")[0] == "otlphttp"]
    assert exporter["endpoint"].endswith(":4318")  # the exporter appends /v1/traces
    conditions = " ".join(config["processors"]["filter/genai"]["traces"]["span"])
    for marker in ("GEN_AI_OPERATION_NAME", "GEN_AI_PROVIDER_NAME", "GEN_AI_SYSTEM"):
        assert f'attributes["{OTEL_ATTRIBUTES[marker]}"] == nil' in conditions
    statements = config["processors"]["transform/no-content"]["trace_statements"][0]["statements"]
    deleted = [re.fullmatch(r'delete_key\(attributes, "(.+)"\)', s).group(1) for s in statements]  # type: ignore[union-attr]
    assert deleted and all(is_content(key) for key in deleted)


def test_the_policy_section_shown_is_the_defaults() -> None:
    (section,) = [b for b in yaml_blocks() if "otlp" in b]
    policy = parse_policy(yaml.safe_dump({"version": 1, **section}))
    assert policy.otlp == OtlpAttribution()
