"""``tokengov schema export``: the wire contract as JSON Schema files, for other languages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tokengov.app.cli.common import console
from tokengov.core.jsonschema import SCHEMA_DIR, write_schemas

app = typer.Typer(help="The wire contract as JSON Schema.", no_args_is_help=True)


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Directory to write into.")] = SCHEMA_DIR,
) -> None:
    """Write schemas/<name>.v1.json from the models (a test fails when they drift)."""
    for path in write_schemas(out):
        console.print(f"wrote {path}")
