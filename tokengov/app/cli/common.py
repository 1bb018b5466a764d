"""What every command shares: settings from flags and environment, console, logging, errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from tokengov.core.errors import QueryError
from tokengov.core.settings import Settings

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.reader import Reader

__all__ = [
    "BootstrapOpt",
    "DataDirOpt",
    "PolicyOpt",
    "console",
    "err_console",
    "fail",
    "load_settings",
    "open_history",
    "setup_logging",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="State directory (env TOKENGOV_DATA_DIR, default ./.tokengov)."
    ),
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Policy file (env TOKENGOV_POLICY).")
]
BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help="Kafka bootstrap (env TOKENGOV_KAFKA_BOOTSTRAP). TLS/SASL from the environment: "
        "TOKENGOV_KAFKA_SECURITY_PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), "
        "TOKENGOV_KAFKA_SSL_CA_FILE, TOKENGOV_KAFKA_SSL_CERT_FILE, TOKENGOV_KAFKA_SSL_KEY_FILE, "
        "TOKENGOV_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), "
        "TOKENGOV_KAFKA_SASL_USERNAME, TOKENGOV_KAFKA_SASL_PASSWORD, TOKENGOV_KAFKA_CLIENT_ID.",
    ),
]


def load_settings(
    *, data_dir: Path | None = None, policy: Path | None = None, bootstrap: str | None = None
) -> Settings:
    """Environment first, flags over it."""
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if policy is not None:
        overrides["policy"] = policy
    if bootstrap is not None:
        overrides["kafka_bootstrap"] = bootstrap
    return Settings(**overrides)


def open_history(
    settings: Settings, dsn: str | None = None, *, events_required: bool = True
) -> Reader:
    """The reader of the history (:mod:`tokengov.app.cli.history`: ``dsn``, else the data
    dir's store, else the demo's — said on stderr): the running worker's query endpoint (with
    its token) or the store itself, read-only with the settings' query limits. No history
    ends the command with one line and exit code 66; a refusal (a missing or unreadable
    token) with exit code 1. ``events_required`` False: a store with tokengov's tables but
    no row yet is read too (``tokengov query``: an empty answer is an answer)."""
    from tokengov.app.cli.history import EXIT_NO_HISTORY, NoHistory, open_located

    try:
        return open_located(
            settings,
            dsn,
            events_required=events_required,
            note=lambda line: err_console.print(line, style="dim", markup=False, soft_wrap=True),
        )
    except NoHistory as exc:
        fail(str(exc), code=EXIT_NO_HISTORY)
    except QueryError as exc:
        fail(str(exc))


def setup_logging(verbose: bool = False) -> None:
    """Only entrypoints configure handlers, and only the project's loggers."""
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
    for name in ("tokengov",):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        logger.propagate = False


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)
