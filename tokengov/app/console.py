"""The ``tokengov`` console script's entry point.

The command line is part of the server install (``pip install 'tokengov[server]'``). With
only the SDK installed (``pip install tokengov``), running ``tokengov`` says so in one
line instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Final

__all__ = ["SERVER_MODULES", "main"]

#: Top-level import names of the ``server`` extra's distributions.
SERVER_MODULES: Final = frozenset(
    {
        "faust",
        "mode",
        "aiokafka",
        "cramjam",
        "clickhouse_connect",
        "chdb",
        "grafana_client",
        "grafana_foundation_sdk",
        "calfkit",
        "rich",
        "typer",
        "httpx",
        "re2",
        # the OTLP receiver
        "aiohttp",
        "opentelemetry",
        "google",
        "prometheus_client",
    }
)


def main() -> None:
    try:
        from tokengov.app.cli.main import main as cli_main

        cli_main()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in SERVER_MODULES:
            raise
        sys.stderr.write(
            f"tokengov: the command line needs the server dependencies ({missing} is not "
            "installed): pip install 'tokengov[server]'\n"
        )
        raise SystemExit(1) from None
