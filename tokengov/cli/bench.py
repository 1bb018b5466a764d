"""``tokengov bench …``: benchmarks that run a baseline and the real thing and print the ratio."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Benchmarks: a baseline and the real thing in one run, with the ratio.",
    no_args_is_help=True,
)
