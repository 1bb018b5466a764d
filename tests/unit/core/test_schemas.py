"""The committed JSON Schema files are what the models export: regenerate with
``tokengov schema export`` when the contract changes (with a new schema_version)."""

from __future__ import annotations

import json

import jsonschema

from tokengov.core.jsonschema import SCHEMA_DIR, render_schemas


def test_committed_schemas_match_the_models():
    rendered = render_schemas()
    committed = {p.name: p.read_bytes() for p in SCHEMA_DIR.glob("*.json")}
    assert set(committed) == set(rendered), "run: tokengov schema export"
    for name, content in rendered.items():
        assert committed[name] == content, (
            f"schemas/{name} drifted from the models: run tokengov schema export"
        )


def test_event_schema_accepts_the_design_example_and_rejects_bad_kind():
    from tests.unit.core.test_contracts import BASE

    schema = json.loads((SCHEMA_DIR / "event.v1.json").read_text())
    jsonschema.validate(BASE, schema)
    bad = dict(BASE, kind="trace")
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("an unknown kind must not validate")
