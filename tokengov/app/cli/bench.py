"""``tokengov bench …``: benchmarks that run a baseline and the real thing and print the ratio."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tokengov.app.cli.common import BootstrapOpt, console, err_console, fail, setup_logging
from tokengov.core.errors import TokenGovError

app = typer.Typer(
    help="Benchmarks: a baseline and the real thing in one run, with the ratio.",
    no_args_is_help=True,
)


@app.command()
def streams(
    tasks: Annotated[
        int, typer.Option(help="Tasks in the throughput mix (~8 events each).")
    ] = 40_000,
    naive_tasks: Annotated[int, typer.Option(help="Tasks for the naive baseline.")] = 3_000,
    partitions: Annotated[int, typer.Option(help="Partitions of tokengov.events.")] = 8,
    latency_seconds: Annotated[
        float, typer.Option(help="Length of each latency run (50 % and 80 % of capacity).")
    ] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the event mix.")] = 7,
    bootstrap: BootstrapOpt = None,
) -> None:
    """The worker's roles (governance, debt, both) against a naive one-event-at-a-time Faust
    agent, then the full worker's detection latency at 50 % and 80 % of its measured capacity.

    Starts its own embedded broker unless --bootstrap is given."""
    from tokengov.app.bench.common import interpreter
    from tokengov.app.bench.streams import FLOOR, run

    console.print(
        "running: worker --role governance, --role debt, --role streams (throughput; then "
        "latency at 50 % and 80 % of its capacity), then the framework's floor (a bare Faust "
        "agent) and the naive baseline …"
    )
    console.print(f"interpreter: {interpreter()}")
    r = run(
        bootstrap=bootstrap,
        tasks=tasks,
        naive_tasks=naive_tasks,
        partitions=partitions,
        latency_seconds=latency_seconds,
        seed=seed,
    )
    table = Table(
        "",
        "events",
        "seconds",
        "events/s",
        "worker CPU µs/event",
        "worker CPU share",
        "load avg (1 min)",
        title="tokengov bench streams",
        title_justify="left",
    )
    labels = {
        "governance": "worker --role governance (stream processors)",
        "debt": "worker --role debt (token debt)",
        "streams": "worker --role streams (both, one decode)",
        FLOOR: "bare Faust agent (acks the messages, no work: the framework's floor)",
    }
    floor = r.floor
    for run_ in [*r.roles.values(), *([] if floor is None else [floor])]:
        table.add_row(
            labels.get(run_.role, run_.role),
            f"{run_.events:,}",
            f"{run_.seconds:.2f}",
            f"{run_.events_per_s:,.0f}",
            "" if run_.cpu_us_per_event is None else f"{run_.cpu_us_per_event:.1f}",
            "" if run_.cpu_share is None else f"{run_.cpu_share:.0%}",
            f"{run_.load_average:.2f}",
        )
    table.add_row(
        "naive Faust agent",
        f"{r.naive_events:,}",
        f"{r.naive_seconds:.2f}",
        f"{r.naive_per_s:,.0f}",
        "",
        "",
        "",
    )
    console.print(table)
    governance = r.roles.get("governance")
    if governance is not None and r.naive_per_s:
        console.print(
            f"ratio: [bold]{governance.events_per_s / r.naive_per_s:.1f}×[/] the naive agent "
            "(stream processors, end to end: events in → alerts out)"
        )
    streams_run = r.roles.get("streams")
    if floor is not None and floor.cpu_us_per_event and streams_run is not None:
        floor_us = floor.cpu_us_per_event
        work = (
            ""
            if streams_run.cpu_us_per_event is None
            else f"; --role streams spent {streams_run.cpu_us_per_event:.1f}, "
            f"{streams_run.cpu_us_per_event - floor_us:.1f} of them its own work"
        )
        console.print(
            f"framework floor: Faust and aiokafka took {floor_us:.1f} CPU µs/event before any "
            f"of tokengov's work{work}. One core gives 10 µs/event at 100,000 events/s: "
            f"the floor leaves {10 - floor_us:.1f} of them for the work"
        )
    for lat in r.latency:
        console.print(
            f"detection latency (--role streams) at {lat.share:.0%} of its capacity = "
            f"{lat.offered_rate:,} events/s offered ({lat.events:,} events, "
            f"{len(lat.latencies_ms)} limit crossings, load avg {lat.load_average:.2f}): "
            f"p50 {lat.percentile(0.5):.0f} ms, p99 {lat.percentile(0.99):.0f} ms, "
            f"max {max(lat.latencies_ms, default=float('nan')):.0f} ms"
            + (f"; {lat.lost_probes} crossings without an alert" if lat.lost_probes else "")
        )


@app.command()
def stages(
    tasks: Annotated[
        int, typer.Option(min=1, help="Tasks in the mix (~8 events each; bench streams' mix).")
    ] = 20_000,
    repeat: Annotated[
        int,
        typer.Option(min=1, help="Passes over the mix, each from fresh state; the best is kept."),
    ] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the event mix.")] = 7,
) -> None:
    """The worker's per-event stages (decode, governance, token debt) in this process, without
    a broker, against a bare JSON parse of the same bytes: a CPU figure that does not move with
    the broker and the producer, to compare interpreters, builds or changes on one machine."""
    from tokengov.app.bench.common import interpreter
    from tokengov.app.bench.stages import STAGES, run

    console.print(f"interpreter: {interpreter()}")
    r = run(
        tasks=tasks,
        repeat=repeat,
        seed=seed,
        progress=lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    table = Table(
        "stage",
        "CPU µs/event",
        "share",
        title=(
            f"tokengov bench stages — {r.events:,} events in {r.messages:,} envelopes, "
            f"best of {repeat}"
        ),
        title_justify="left",
    )
    total = r.total_us_per_event
    for stage in STAGES:
        us = r.us_per_event(stage)
        table.add_row(stage, f"{us:.2f}", f"{us / total:.0%}" if total else "")
    table.add_row("all three", f"{total:.2f}", "100%")
    table.add_row("baseline: orjson.loads of the same bytes", f"{r.baseline_us_per_event:.2f}", "")
    console.print(table)
    if r.baseline_us_per_event:
        console.print(
            f"ratio: the three stages cost [bold]{total / r.baseline_us_per_event:.1f}×[/] a bare "
            f"JSON parse; at this CPU one core does ~{1e6 / total:,.0f} events/s of them (the "
            "worker adds Faust, the Kafka clients and the flush's delivery: bench streams)"
        )
    console.print(
        f"taken in: {r.governed:,} events governed, {r.debt_taken:,} taken by token debt, "
        f"{r.alerts:,} alerts, {r.decode_failures:,} refused by the decoder"
    )


@app.command("otlp")
def otlp_bench(
    requests: Annotated[
        int, typer.Option(min=1, help="Requests of 512 spans (448 GenAI model calls) each.")
    ] = 200,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 4,
    latency_seconds: Annotated[
        float, typer.Option(min=1.0, help="Length of the latency run at half the rate.")
    ] = 5.0,
    bootstrap: BootstrapOpt = None,
) -> None:
    """GenAI spans/s through one OTLP receiver process (request in → events acknowledged by
    Kafka) next to producing the same events directly, and the latency per request at half
    that rate. Starts its own embedded broker unless --bootstrap is given."""
    from tokengov.app.bench.otlp import report, run

    console.print("running: receiver throughput, latency at half the rate, then the baseline …")
    report(
        run(
            bootstrap=bootstrap,
            requests=requests,
            clients=clients,
            latency_seconds=latency_seconds,
        )
    )


@app.command("sdk")
def sdk_bench(
    events: int = typer.Option(200_000, help="Events per side."),
    bootstrap: str | None = typer.Option(None, help="Use this broker instead of an embedded one."),
) -> None:
    """The SDK's per-event cost at the call site vs a bare confluent-kafka produce."""
    from tokengov.app.bench.sdk import report, run

    report(run(events, bootstrap))


@app.command("alerts")
def alerts(
    count: Annotated[int, typer.Option("--alerts", min=1, help="Alerts to send.")] = 60,
    interval_s: Annotated[
        float, typer.Option("--interval", min=0.0, help="Seconds between alerts.")
    ] = 0.1,
    group_wait: Annotated[
        str, typer.Option("--group-wait", help="group_wait of the critical route.")
    ] = "1s",
    role: Annotated[
        str,
        typer.Option(
            "--role", help="The worker to measure: router (tokengov worker --role router) or all."
        ),
    ] = "router",
    bootstrap: BootstrapOpt = None,
) -> None:
    """Alert latency: alerts topic → `tokengov worker --role router` → signed loopback webhook,
    next to a direct POST; the router's overhead beyond group_wait on its own line.

    Starts an embedded broker unless --bootstrap is given. Target: p95 overhead < 100 ms."""
    from rich.table import Table

    from tokengov.app.bench.alerts import (
        OVERHEAD_TARGET_MS,
        group_wait_seconds,
        run_alert_bench,
        summarize,
    )
    from tokengov.app.bench.common import percentile

    if role not in ("router", "all"):
        fail(f"--role: {role!r} is not one of router, all", 2)
    try:
        group_wait_seconds(group_wait)
    except TokenGovError as exc:
        fail(f"--group-wait {group_wait!r}: {exc}")
    console.print(f"running: tokengov worker --role {role}, then direct POSTs, then the alerts …")
    result = run_alert_bench(
        bootstrap=bootstrap,
        alerts=count,
        interval_s=interval_s,
        group_wait=group_wait,
        role=role,
    )
    table = Table(
        title=f"{result.alerts} alerts, worker --role {result.role}, group_wait "
        f"{result.group_wait_s:g}s (milliseconds)",
        title_justify="left",
    )
    table.add_column("path", no_wrap=True)
    for column in ("p50", "p95", "p99", "max", "p95 ÷ POST"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in summarize(result):
        table.add_row(*row)
    console.print(table)
    console.print(
        "router overhead = topic → webhook − group_wait = (topic → flush − group_wait: fetch, "
        "agent, group timer) + (flush → POST: delivery queue, signing, HTTP)"
    )
    overhead = percentile(result.overhead_ms, 95)
    base = percentile(result.baseline_ms, 95)
    console.print(
        f"router overhead beyond group_wait: p50 {percentile(result.overhead_ms, 50):.1f} ms, "
        f"p95 {overhead:.1f} ms, p99 {percentile(result.overhead_ms, 99):.1f} ms; "
        f"direct POST p95 {base:.1f} ms; ratio {overhead / base:,.0f}× (p95)"
    )
    ok = overhead < OVERHEAD_TARGET_MS and result.lost == 0 and result.bad_signatures == 0
    verdict = "[green]within[/]" if ok else "[red]NOT within[/]"
    console.print(
        f"lost: {result.lost}; bad signatures: {result.bad_signatures}; p95 overhead "
        f"{overhead:.1f} ms: {verdict} the {OVERHEAD_TARGET_MS:g} ms target"
    )


@app.command()
def sink(
    writer_events: Annotated[
        int, typer.Option("--writer-events", help="Call events through the writer.")
    ] = 200_000,
    events: Annotated[
        int, typer.Option("--events", help="Events generated in ClickHouse for the reports.")
    ] = 10_000_000,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="Rows per insert.")] = 50_000,
    decoders: Annotated[
        int | None,
        typer.Option("--decoders", help="Writer decoder processes. Default: the worker's."),
    ] = None,
    policy: Annotated[Path, typer.Option("--policy", help="Prices for the writer.")] = Path(
        "examples/policy.yaml"
    ),
    bootstrap: BootstrapOpt = None,
) -> None:
    """ClickHouse writer vs a bare clickhouse-connect insert; report latency over --events."""
    from tokengov.app.bench.sink import run

    setup_logging()
    result = run(
        writer_events=writer_events,
        report_events=events,
        policy_path=policy,
        bootstrap=bootstrap,
        batch_rows=batch_rows,
        decoders=decoders,
        progress=lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    table = Table(
        "path", "rows", "seconds", "rows/s", title="Writer vs bare insert", title_justify="left"
    )
    table.add_row(
        "bare clickhouse-connect insert",
        f"{result.writer_rows:,}",
        f"{result.bare_s:.2f}",
        f"{result.bare_rate:,.0f}",
    )
    table.add_row(
        f"tokengov writer (Kafka → ClickHouse), {result.decoders} decoder processes",
        f"{result.writer_rows:,}",
        f"{result.writer_s:.2f}",
        f"{result.writer_rate:,.0f}",
    )
    table.add_row(
        "tokengov writer, decoding in its own thread",
        f"{result.writer_rows:,}",
        f"{result.inline_s:.2f}",
        f"{result.inline_rate:,.0f}",
    )
    table.add_row(
        "  decode + price + serialize in one process, no I/O",
        f"{result.writer_rows:,}",
        f"{result.decode_s:.2f}",
        f"{result.decode_rate:,.0f}",
    )
    console.print(table)
    ratio = result.writer_rate / result.bare_rate
    inline = result.inline_rate / result.bare_rate
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(
        f"writer / bare = [bold]{ratio:.0%}[/] with {result.decoders} decoder processes "
        f"(target ≥ 80%); {inline:.0%} decoding in the writer's thread; load average {load} "
        f"on {os.cpu_count()} CPUs"
    )
    reports = Table(
        "report",
        "rows",
        "latency (best of 3)",
        "target < 1 s",
        title=f"Reports over {result.report_events:,} events "
        f"(generated in {result.generate_s:.0f} s)",
        title_justify="left",
    )
    for name, (seconds, rows) in result.reports.items():
        reports.add_row(name, str(rows), f"{seconds * 1000:.0f} ms", "yes" if seconds < 1 else "NO")
    console.print(reports)


@app.command()
def reports(
    events: Annotated[
        int, typer.Option("--events", min=1000, help="Call events in the store.")
    ] = 10_000_000,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Where the store is built and kept. Default: <tmp>/tokengov-bench-reports.",
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Build the store anew even if one is cached.")
    ] = False,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, help="Runs per query; best counts.")
    ] = 5,
    policy: Annotated[
        Path, typer.Option("--policy", help="Quality bars for unit-economics.")
    ] = Path("examples/policy.yaml"),
    live_parts: Annotated[
        list[int] | None,
        typer.Option(
            "--live-parts",
            min=1,
            help="Also time both reports (90 days) on a copy of the store with this many "
            "unmerged parts in task_totals, merges stopped, as a live store has between "
            "merges (repeatable: --live-parts 1 --live-parts 7).",
        ),
    ] = None,
) -> None:
    """top-tasks and unit-economics from the per-task aggregate vs the raw-table scan (before
    schema version 6), over --events events generated in chdb, in one run, with the ratio."""
    from tokengov.app.bench.reports import run
    from tokengov.core.policy import load_policy

    setup_logging()
    result = run(
        events=events,
        policy=load_policy(policy),
        cache_dir=cache_dir,
        rebuild=rebuild,
        repeat=repeat,
        live_parts=live_parts or (),
        progress=lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    if result.built:
        console.print(
            f"store of {result.events:,} events built in {result.store}: generated in "
            f"{result.generate_s:.0f} s at schema version 5, migrated to the latest (backfills of "
            f"task_spend_hourly and task_totals) in {result.backfill_s:.1f} s"
        )
    else:
        console.print(f"store of {result.events:,} events reused from {result.store}")
    table = Table(
        "report",
        "window",
        "raw scan (before)",
        "statement (now)",
        "ratio",
        "whole report",
        "rows",
        "same rows",
        "target < 200 ms",
        title=f"Reports over {result.events:,} events ({result.aggregate_rows:,} rows in "
        f"task_totals), best of {repeat}",
        title_justify="left",
    )
    for t in result.timings:
        table.add_row(
            t.name,
            t.window,
            f"{t.baseline_s * 1000:.0f} ms",
            f"{t.aggregate_s * 1000:.0f} ms",
            f"{t.ratio:.1f}×",
            f"{t.report_s * 1000:.0f} ms",
            str(t.rows),
            "yes" if t.identical else "[red]NO[/]",
            "yes" if t.report_s < 0.2 else "[red]NO[/]",
        )
    console.print(table)
    if result.live:
        live = Table(
            "report",
            "fresh parts in task_totals",
            "whole report",
            "rows",
            "same rows",
            "target < 200 ms",
            title="Between merges (90 days; a copy of the store, merges stopped)",
            title_justify="left",
        )
        for lt in result.live:
            live.add_row(
                lt.name,
                str(lt.fresh_parts),
                f"{lt.report_s * 1000:.0f} ms",
                str(lt.rows),
                "yes" if lt.identical else "[red]NO[/]",
                "yes" if lt.report_s < 0.2 else "[red]NO[/]",
            )
        console.print(live)
    if not all(t.identical for t in result.timings) or not all(t.identical for t in result.live):
        fail("the per-task aggregate and the raw scan returned different rows")
