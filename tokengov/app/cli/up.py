"""``tokengov up``: the embedded stack in the foreground; Ctrl-C stops all of it."""

from __future__ import annotations

import json
import logging
import signal
import threading
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from tokengov.app.cli.common import DataDirOpt, PolicyOpt, console, err_console, fail, load_settings
from tokengov.app.local.stack import LocalStack, StackInfo
from tokengov.app.local.status import KafkaProbe, Status
from tokengov.core.errors import PolicyError, TokenGovError
from tokengov.core.policy import load_policy
from tokengov.core.settings import Settings

log = logging.getLogger(__name__)

EXAMPLE_POLICY = Path(__file__).resolve().parents[3] / "examples" / "policy.yaml"
STREAMS_GROUP = "tokengov-worker"  # the Faust app id is its consumer group


def resolve_policy(settings: Settings) -> Path:
    path = settings.policy or EXAMPLE_POLICY
    try:
        load_policy(path)
    except PolicyError as exc:
        fail(f"{exc}\n(check it with: tokengov policy check {path})")
    return path


def where_table(info: StackInfo, data_dir: Path) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_row("[bold]Kafka bootstrap[/]", info.bootstrap)
    table.add_row("[bold]data directory[/]", str(info.data_dir))
    table.add_row("[bold]ClickHouse[/]", info.clickhouse_dsn)
    from tokengov.sinks.clickhouse.endpoint import TOKEN_FILE
    from tokengov.sinks.clickhouse.reader import endpoint_address

    served = endpoint_address(data_dir)  # the worker falls back to a free port when taken
    endpoint = f"http://{served[0]}:{served[1]}" if served else info.query_endpoint
    table.add_row("[bold]query endpoint[/]", f'{endpoint}  (tokengov query "SELECT …")')
    table.add_row("[bold]its token[/]", f"{data_dir / TOKEN_FILE}  (Authorization: Bearer …)")
    table.add_row("[bold]policy[/]", str(info.policy))
    table.add_row("[bold]OTLP/HTTP[/]", _otlp_endpoint(data_dir, info.worker_pid))
    table.add_row("[bold]worker[/]", f"pid {info.worker_pid}, roles streams + sink + router + otlp")
    ready = data_dir / "worker" / "ready.json"  # written by the worker (worker_app)
    port = json.loads(ready.read_text()).get("metrics_port") if ready.exists() else None
    if port is not None:
        table.add_row(
            "[bold]health, metrics[/]", f"http://127.0.0.1:{port}/metrics  (/healthz /readyz)"
        )
    return table


def _otlp_endpoint(data_dir: Path, worker_pid: int | None) -> str:
    """Where the worker's OTLP receiver listens (its address file), or why it does not."""
    from tokengov.ingest.otlp.runtime import ADDRESS_FILE

    try:
        doc = json.loads((data_dir / "worker" / ADDRESS_FILE).read_text())
    except (OSError, ValueError):
        doc = {}
    if doc.get("pid") != worker_pid or worker_pid is None:
        return "not listening (TOKENGOV_OTLP_PORT taken? see the worker's log)"
    return f"http://{doc['host']}:{doc['port']}/v1/traces  (docs/otlp.md)"


def read_clickhouse_status(settings: Settings, status: Status) -> None:
    """Alerts firing, spend today and events stored, through the query endpoint."""
    from tokengov.sinks.clickhouse.reader import open_reader  # the worker's endpoint, or the store

    try:
        reader = open_reader(settings.clickhouse_dsn, settings.data_dir)
    except TokenGovError:
        return
    try:
        rows = reader.query(
            "SELECT (SELECT sum(cost_usd) FROM spend_daily WHERE day = today()) AS spend,"
            " (SELECT count() FROM (SELECT fingerprint, argMax(status, starts_at) AS s FROM alerts"
            "   GROUP BY fingerprint) WHERE s = 'firing') AS firing,"
            " (SELECT sum(calls) FROM spend_daily) AS calls",
        ).rows
    except TokenGovError:
        return
    finally:
        reader.close()
    if rows:
        spend, firing, calls = rows[0]
        status.spend_today_usd = Decimal(str(spend)) if spend is not None else Decimal(0)
        status.alerts_firing = int(firing)
        status.events_total = int(calls or 0)


def _show_status(
    stack: LocalStack,
    settings: Settings,
    probe: KafkaProbe,
    status: Status,
    stop: threading.Event,
    interval_s: float,
) -> None:
    """A live line on a terminal; a line every minute or so when the output is a file."""

    def refresh() -> bool:
        if not stack.worker_alive():
            err_console.print("[bold red]the worker exited[/]; stopping")
            return False
        try:
            probe.sample(status)
            read_clickhouse_status(settings, status)
        except Exception:  # the status line must never bring the stack down
            log.exception("status refresh failed")
        return True

    if err_console.is_terminal:
        with Live(console=err_console, refresh_per_second=2, transient=True) as live:
            while not stop.wait(interval_s):
                if not refresh():
                    return
                live.update(status.line())
        return
    every = max(1, round(60 / interval_s))
    ticks = 0
    while not stop.wait(interval_s):
        if not refresh():
            return
        ticks += 1
        if ticks % every == 0:
            err_console.print(status.line(), soft_wrap=True)


def up_command(
    data_dir: DataDirOpt = None,
    policy: PolicyOpt = None,
    port: Annotated[
        int | None, typer.Option(help="Broker port (default from TOKENGOV_KAFKA_BOOTSTRAP).")
    ] = None,
    status_interval: Annotated[float, typer.Option(help="Seconds between status refreshes.")] = 2.0,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve Kafka over mutual TLS with a throwaway CA and certificates kept in "
            "<data dir>/tls (needs tokengov[tls]); prints the TOKENGOV_KAFKA_* variables "
            "clients set.",
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="The worker's /healthz, /readyz and /metrics port (default "
            "TOKENGOV_METRICS_PORT; unset = off).",
        ),
    ] = None,
) -> None:
    """Run the embedded stack: broker, worker (streams, ClickHouse writer, alert router), query endpoint."""
    settings = load_settings(data_dir=data_dir, policy=policy)
    policy_path = resolve_policy(settings)
    broker_port = port or int(settings.kafka_bootstrap.rsplit(":", 1)[-1])
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker_log = (settings.data_dir / "worker.log").open("ab")
    # The worker's stdout is the terminal (the console receiver prints routed alerts there);
    # its logs go to <data dir>/worker.log.
    material = None
    if tls:
        try:
            from tokengov.app.local.certs import load_or_make_material
        except ImportError as exc:
            worker_log.close()
            fail(str(exc))
        material = load_or_make_material(settings.data_dir / "tls")
    stack = LocalStack(
        settings,
        policy_path,
        port=broker_port,
        worker_stderr=worker_log,
        tls=material,
        env={} if metrics_port is None else {"TOKENGOV_METRICS_PORT": str(metrics_port)},
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        info = stack.start()  # stops what it started when it fails
    except TokenGovError as exc:
        worker_log.close()
        fail(str(exc))
    try:
        try:
            stack.wait_ready(timeout_s=90)
        except TokenGovError as exc:
            fail(f"{exc}; see {settings.data_dir / 'worker.log'}")
        console.print(
            Panel(
                where_table(stack.info(), settings.data_dir),
                title="tokengov up",
                subtitle="Ctrl-C stops everything",
            )
        )
        if material is not None:
            variables = {"TOKENGOV_KAFKA_BOOTSTRAP": info.bootstrap, **material.environment()}
            console.print("clients connect with (mutual TLS):")
            for name, value in variables.items():
                console.print(f"  {name}={value}", soft_wrap=True)
        probe = KafkaProbe(stack.kafka, stack.topics.events, STREAMS_GROUP)
        status = Status()
        try:
            _show_status(stack, settings, probe, status, stop, status_interval)
        finally:
            probe.close()
    finally:
        console.print("stopping: worker (commits offsets, closes the store), then the broker…")
        stack.stop()
        worker_log.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print(
            f"stopped; nothing left running (worker log: {settings.data_dir / 'worker.log'})"
        )
