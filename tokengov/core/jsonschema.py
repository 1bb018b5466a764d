"""JSON Schema files of the wire contract, exported into ``schemas/`` for other languages.

``tokengov schema export`` (or :func:`write_schemas`) regenerates them; a test
fails when the committed files drift from the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from tokengov.core.contracts import (
    SCHEMA_VERSION,
    Alert,
    CallEvent,
    Decision,
    Outcome,
    event_adapter,
)
from tokengov.core.deadletter import DeadLetterRecord

__all__ = ["SCHEMA_DIR", "render_schemas", "write_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

_MODELS: dict[str, type[BaseModel]] = {
    "call": CallEvent,
    "outcome": Outcome,
    "alert": Alert,
    "decision": Decision,
    "deadletter": DeadLetterRecord,
}


def _with_id(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://tokengov.dev/schemas/{name}.v{SCHEMA_VERSION}.json",
        **schema,
    }


def render_schemas() -> dict[str, bytes]:
    """File name → file content, deterministic."""
    files: dict[str, bytes] = {}
    for name, model in _MODELS.items():
        schema = _with_id(model.model_json_schema(mode="validation"), name)
        files[f"{name}.v{SCHEMA_VERSION}.json"] = (
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
    event = _with_id(event_adapter.json_schema(mode="validation"), "event")
    event["title"] = "TokenGovEvent"
    files[f"event.v{SCHEMA_VERSION}.json"] = (
        orjson.dumps(event, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    return files


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_schemas().items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written
