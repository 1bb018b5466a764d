"""``tokengov alerts list|show|test-route|silence``: on-call's view of alerts."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from tokengov.app.cli.common import (
    BootstrapOpt,
    DataDirOpt,
    PolicyOpt,
    console,
    fail,
    load_settings,
    open_history,
)
from tokengov.core.contracts import Alert, utcnow
from tokengov.core.errors import BrokerError, PolicyError, QueryError
from tokengov.core.policy import Policy, load_policy, parse_duration
from tokengov.core.settings import Settings
from tokengov.core.topics import ROUTER_STATE, SILENCES, partition_count
from tokengov.sinks.router.group import is_resolved
from tokengov.sinks.router.history import AlertHistory, AlertRow
from tokengov.sinks.router.inhibit import BUILTIN_RULES, Inhibitor, rules_from_policy
from tokengov.sinks.router.kafka import SilenceTopic
from tokengov.sinks.router.labels import routing_labels
from tokengov.sinks.router.silences import Silence, new_silence
from tokengov.sinks.router.snapshot import LocalSnapshot
from tokengov.sinks.router.state import PartitionState
from tokengov.sinks.router.state_topic import RouterStateTopic
from tokengov.sinks.router.timemute import time_mute
from tokengov.sinks.router.tree import RouteMatch, RouteTree

app = typer.Typer(
    help="On-call's view of alerts: history, routing, silences.", no_args_is_help=True
)
silence_app = typer.Typer(help="Mute alerts for a while, with who and why.", no_args_is_help=True)
app.add_typer(silence_app, name="silence")

ClickHouseOpt = Annotated[
    str | None,
    typer.Option("--clickhouse", help="clickhouse-connect DSN (env TOKENGOV_CLICKHOUSE_URL)."),
]
SilencesTopicOpt = Annotated[str, typer.Option("--silences-topic", help="The silences topic.")]


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _history(settings: Settings, dsn: str | None) -> AlertHistory:
    """The history at ``dsn`` (default the settings'): through the running worker's query
    endpoint when it owns the embedded store, else the store itself."""
    return AlertHistory(open_history(settings, dsn))


def _policy(settings: Settings) -> Policy | None:
    if settings.policy is None:
        return None
    try:
        return load_policy(settings.policy)
    except PolicyError as exc:
        fail(str(exc))


@app.command("list")
def list_alerts(
    team: Annotated[str | None, typer.Option("--team", help="Only this team.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="firing or resolved (latest state).")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    data_dir: DataDirOpt = None,
    clickhouse: ClickHouseOpt = None,
) -> None:
    """The latest state of each alert, newest first."""
    if status not in (None, "firing", "resolved"):
        fail(f"--status: {status!r} is not firing or resolved")
    history = _history(load_settings(data_dir=data_dir), clickhouse)
    try:
        rows = history.latest(team=team, status=status, kind=kind, limit=limit)
    except QueryError as exc:
        fail(str(exc))
    finally:
        history.close()
    table = Table("since", "status", "severity", "team", "kind", "workflow", "task", "summary")
    table.add_column("alert id", no_wrap=True)
    for row in rows:
        color = (
            "green"
            if row.status == "resolved"
            else {"critical": "red", "warning": "yellow"}.get(row.severity, "")
        )
        table.add_row(
            _ts(row.starts_at),
            f"[{color}]{row.status}[/]",
            row.severity,
            row.team,
            row.kind,
            row.workflow or "—",
            row.task_id or "—",
            escape(row.summary),
            row.alert_id,
        )
    console.print(table)
    console.print(f"{len(rows)} alert(s)")


def _dur(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _print_routing(policy: Policy, tree: RouteTree, labels: dict[str, str]) -> list[RouteMatch]:
    console.print("[bold]Routing[/]")
    for step in tree.explain(labels):
        mark = "[green]✓[/]" if step.matched else "[dim]✗[/]"
        console.print(f"  {'  ' * step.depth}{mark} {step.path}: {escape(step.detail)}")
    matches = tree.match(labels)
    console.print(f"[bold]Receivers notified[/] ({len(matches)})")
    for m in matches:
        opts = m.node.opts
        group_by = "all labels" if opts.group_by_all else (", ".join(sorted(opts.group_by)) or "—")
        via = f"via {m.node.path}"
        if m.team_receiver:
            via += f" (only the root matched: team {labels.get('team')}'s own receiver)"
        console.print(
            f"  → [bold]{escape(m.receiver)}[/] {escape(via)} · group by {escape(group_by)} · "
            f"wait {_dur(opts.group_wait)} · interval {_dur(opts.group_interval)} · "
            f"repeat {_dur(opts.repeat_interval)}"
        )
    return matches


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def _alerts_in(records: Mapping[int, Mapping[bytes, bytes]]) -> list[Alert]:
    latest: dict[str, Alert] = {}
    for partition, partition_records in records.items():
        state = PartitionState.from_records(partition, _NO_WRITES, partition_records)
        for group in state.load_groups():
            latest.update(group.alerts)
    return list(latest.values())


class _NoWrites:
    """test-route only reads the router's state."""

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        raise RuntimeError("test-route never writes router state")


_NO_WRITES = _NoWrites()


def _router_alerts(settings: Settings, topic: str) -> tuple[list[Alert], str] | None:
    """The alerts the routers hold now, and where they were read: the router-state topic
    (every partition), else this machine's router snapshot; None when neither is readable."""
    try:
        partitions = partition_count(settings.kafka, topic, timeout_s=5)
        records = RouterStateTopic(settings.kafka, topic, read_timeout_s=10).read(range(partitions))
        return _alerts_in(records), f"topic {topic}"
    except BrokerError as exc:
        path = settings.data_dir / "router" / "snapshot.sqlite"
        if not path.is_file():
            console.print(f"[dim]router state not read: {escape(str(exc))}[/]")
            return None
        snapshot = LocalSnapshot(path)
        try:
            found = {p: snapshot.records(p) for p in snapshot.partitions()}
        finally:
            snapshot.close()
        return _alerts_in(found), f"{path} (the broker could not be read: {exc})"


def _print_inhibition(
    policy: Policy,
    labels: dict[str, str],
    held: tuple[list[Alert], str] | None,
    at: datetime,
) -> None:
    alerts, source = held if held is not None else (None, "")
    inhibitor = Inhibitor([*BUILTIN_RULES, *rules_from_policy(policy.inhibit_rules)])
    for alert in alerts or []:
        inhibitor.observe(
            alert.fingerprint,
            routing_labels(alert),
            firing=not is_resolved(alert, at),
            ends_at=alert.ends_at,
        )
    checks = inhibitor.explain(labels, at)
    if alerts is None:
        known = "the router's state is not readable here: the rules that could mute"
    else:
        firing = sum(1 for a in alerts if not is_resolved(a, at))
        known = f"against the {firing} firing alert(s) the routers hold, read from {source}"
    if not checks:
        console.print(f"[bold]Inhibition[/]: no rule can mute these labels ({known})")
        return
    muting = [c for c in checks if c.muting_source is not None]
    if alerts is None:
        verdict = f"{len(checks)} rule(s) could mute them"
    elif muting:
        verdict = f"[yellow]muted now by {len(muting)} rule(s)[/]"
    else:
        verdict = "not muted now"
    console.print(f"[bold]Inhibition[/] ({escape(known)}): {verdict}")
    for check in checks:
        rule = check.rule
        src = ", ".join(str(m) for m in rule.source)
        equal = " and ".join(
            f'{e}="{labels[e]}"' if e in labels else f"no {e} label" for e in rule.equal
        )
        needs = f"an alert {{{src}}}" + (f" with {equal}" if equal else "")
        if check.muting_source is not None and check.muting_labels is not None:
            console.print(
                f"  [yellow]✗[/] {escape(rule.name)}: muted now by firing alert "
                f"{escape(check.muting_source)} {escape(_labels_text(check.muting_labels))}"
            )
        else:
            console.print(f"  · {escape(rule.name)}: would be muted while {escape(needs)} fires")
        if check.two_sided:
            console.print(
                "      these labels match the rule's source side too: a source that also "
                "matches its target side does not mute them (Alertmanager)"
            )


def _print_silences(silences: list[Silence], labels: dict[str, str], at: datetime) -> None:
    muting = [s for s in silences if s.mutes(labels, at)]
    if not muting:
        console.print("[bold]Silences[/]: none active matches")
        return
    console.print(
        f"[bold]Silences[/]: [yellow]{len(muting)} active silence(s) mute these labels[/]"
    )
    for s in muting:
        console.print(
            f"  {s.silence_id} by {escape(s.created_by)} until {_ts(s.ends_at)} UTC: "
            f"{escape(s.reason)} ({escape(', '.join(s.matchers))})"
        )


def _print_time_intervals(tree: RouteTree, matches: list[RouteMatch], at: datetime) -> None:
    timed = [m for m in matches if m.node.mute_time_intervals or m.node.active_time_intervals]
    if not timed:
        console.print("[bold]Time intervals[/]: none on the matched routes")
        return
    console.print(f"[bold]Time intervals[/] (at {_ts(at.astimezone(UTC))} UTC)")
    for m in timed:
        node = m.node
        muted = time_mute(node, tree.intervals, at)
        verdict = f"[yellow]muted: {escape(muted.describe())}[/]" if muted else "notifies"
        console.print(f"  {escape(node.path)} → {escape(m.receiver)}: {verdict}")
        for name in node.active_time_intervals:
            inside = bool(tree.intervals.containing([name], at))
            state = "inside" if inside else "outside"
            console.print(f"      active_time_intervals {escape(name)}: {state}")
        for name in node.mute_time_intervals:
            inside = bool(tree.intervals.containing([name], at))
            state = "inside: mutes" if inside else "outside: does not mute"
            console.print(f"      mute_time_intervals {escape(name)}: {state}")


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return utcnow()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at: {text!r} is not a time (use ISO 8601: 2026-11-30T09:00+01:00; no zone: UTC)")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@app.command("show")
def show(
    alert_id: Annotated[str, typer.Argument(help="An alert id (or a fingerprint).")],
    data_dir: DataDirOpt = None,
    policy_file: PolicyOpt = None,
    clickhouse: ClickHouseOpt = None,
) -> None:
    """One alert: evidence, routing and the notification history."""
    settings = load_settings(data_dir=data_dir, policy=policy_file)
    history = _history(settings, clickhouse)
    try:
        rows, notes = history.show(alert_id)
    except QueryError as exc:
        fail(str(exc))
    finally:
        history.close()
    if not rows:
        fail(f"no alert with id or fingerprint {alert_id!r}")
    latest: AlertRow = rows[-1]
    console.print(f"[bold]{escape(latest.summary)}[/]")
    facts = Table.grid(padding=(0, 2))
    for key, value in [
        ("alert id", latest.alert_id),
        ("fingerprint", latest.fingerprint),
        ("kind", latest.kind),
        ("severity", latest.severity),
        ("status", latest.status),
        ("team", latest.team),
        ("workflow", latest.workflow or "—"),
        ("task", latest.task_id or "—"),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(latest.labels.items())) or "—"),
        ("started", _ts(latest.starts_at)),
        ("ended", _ts(latest.ends_at)),
    ]:
        facts.add_row(f"[dim]{key}[/]", escape(value))
    console.print(facts)
    console.print("[bold]Evidence[/]")
    console.print(escape(orjson.dumps(latest.evidence, option=orjson.OPT_INDENT_2).decode()))
    policy = _policy(settings)
    if policy is not None:
        labels = {"kind": latest.kind, "severity": latest.severity, "team": latest.team}
        if latest.workflow:
            labels["workflow"] = latest.workflow
        if latest.task_id:
            labels["task_id"] = latest.task_id
        labels.update(latest.labels)
        console.print("[dim](routing per the policy in force now)[/]")
        _print_routing(policy, RouteTree.from_policy(policy), labels)
    table = Table(
        "time",
        "receiver",
        "attempt",
        "result",
        "latency",
        "error",
        title="Notifications",
        title_justify="left",
    )
    for n in notes:
        color = {"delivered": "green", "failed": "yellow", "dead_letter": "red"}.get(n.result, "")
        table.add_row(
            _ts(n.ts),
            n.receiver,
            str(n.attempt),
            f"[{color}]{n.result}[/]",
            f"{n.latency_ms} ms",
            escape(n.error) or "—",
        )
    console.print(table if notes else "[bold]Notifications[/]: none recorded")


def _parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or value.startswith(("=", "~")) or name.endswith("!"):
            fail(f"not a label: {item!r} (use name=value)")
        labels[name.strip()] = value.strip().strip("\"'")
    return labels


@app.command("test-route")
def test_route(
    labels: Annotated[list[str], typer.Argument(help="Alert labels: team=search kind=runaway …")],
    policy_file: PolicyOpt = None,
    bootstrap: BootstrapOpt = None,
    silences_topic: SilencesTopicOpt = SILENCES,
    router_state_topic: Annotated[
        str,
        typer.Option(
            "--router-state-topic", help="The routers' state topic (the alerts they hold)."
        ),
    ] = ROUTER_STATE,
    no_silences: Annotated[
        bool, typer.Option("--no-silences", help="Do not read silences from the broker.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Evaluate at this time (ISO 8601, e.g. 2026-11-30T09:00+01:00; default now).",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Which receivers an alert with these labels would reach, and what would mute it:
    inhibit rules (against the alerts the router holds, when its state is readable),
    silences, and the matched routes' time intervals."""
    settings = load_settings(data_dir=data_dir, policy=policy_file, bootstrap=bootstrap)
    policy = _policy(settings)
    if policy is None:
        fail("no policy: pass --policy FILE or set TOKENGOV_POLICY")
    when = _parse_at(at)
    parsed = _parse_labels(labels)
    console.print("Labels: " + escape(" ".join(f'{k}="{v}"' for k, v in sorted(parsed.items()))))
    tree = RouteTree.from_policy(policy)
    matches = _print_routing(policy, tree, parsed)
    _print_inhibition(policy, parsed, _router_alerts(settings, router_state_topic), when)
    _print_time_intervals(tree, matches, when)
    if no_silences:
        return
    try:
        silences = SilenceTopic(settings.kafka, silences_topic).read_all(timeout_s=5)
    except BrokerError as exc:
        console.print(f"[bold]Silences[/]: not checked ({escape(str(exc))})")
        return
    _print_silences(silences, parsed, when)


# ------------------------------------------------------------------ silences


@silence_app.command("add")
def silence_add(
    matchers: Annotated[list[str], typer.Argument(help="team=search kind=~runaway|loop …")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (shown to on-call).")],
    duration: Annotated[
        str, typer.Option("--duration", "-d", help="How long: 30m, 2h, 1d.")
    ] = "2h",
    created_by: Annotated[
        str | None, typer.Option("--by", help="Who silences (default: your user name).")
    ] = None,
    bootstrap: BootstrapOpt = None,
    silences_topic: SilencesTopicOpt = SILENCES,
) -> None:
    """Create a silence: alerts matching every matcher are not notified until it ends."""
    settings = load_settings(bootstrap=bootstrap)
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        fail(f"--duration: {exc}")
    if length <= timedelta(0):
        fail("--duration: must be positive")
    now = utcnow()
    try:
        silence = new_silence(
            matchers,
            created_by=created_by or getpass.getuser(),
            reason=reason,
            ends_at=now + length,
            now=now,
        )
    except ValueError as exc:
        fail(f"invalid silence: {exc}")
    try:
        SilenceTopic(settings.kafka, silences_topic).publish(silence)
    except BrokerError as exc:
        fail(str(exc))
    console.print(
        f"[green]✓[/] silence {silence.silence_id} until {_ts(silence.ends_at)} UTC "
        f"({escape(', '.join(silence.matchers))})"
    )


@silence_app.command("list")
def silence_list(
    show_all: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    bootstrap: BootstrapOpt = None,
    silences_topic: SilencesTopicOpt = SILENCES,
) -> None:
    """Active and pending silences (``--all``: expired ones too)."""
    settings = load_settings(bootstrap=bootstrap)
    try:
        silences = SilenceTopic(settings.kafka, silences_topic).read_all()
    except BrokerError as exc:
        fail(str(exc))
    now = utcnow()
    shown = 0
    colors = {"active": "yellow", "pending": "cyan", "expired": "dim"}
    for s in silences:
        state = s.state(now)
        if state == "expired" and not show_all:
            continue
        shown += 1
        console.print(
            f"[{colors[state]}]●[/] {s.silence_id} [{colors[state]}]{state}[/] "
            f"by {escape(s.created_by)}"
        )
        console.print(f"    {_ts(s.starts_at)} → {_ts(s.ends_at)} UTC")
        console.print(f"    matchers: {escape(', '.join(s.matchers))}")
        console.print(f"    reason: {escape(s.reason)}")
    console.print(f"{shown} silence(s)")


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="The silence id.")],
    bootstrap: BootstrapOpt = None,
    silences_topic: SilencesTopicOpt = SILENCES,
) -> None:
    """End a silence now."""
    settings = load_settings(bootstrap=bootstrap)
    topic = SilenceTopic(settings.kafka, silences_topic)
    try:
        known = {s.silence_id: s for s in topic.read_all()}
    except BrokerError as exc:
        fail(str(exc))
    silence = known.get(silence_id)
    if silence is None:
        fail(f"no silence {silence_id!r} on {silences_topic}")
    now = utcnow()
    if silence.state(now) == "expired":
        console.print(f"silence {silence_id} had already ended at {_ts(silence.ends_at)} UTC")
        return
    try:
        topic.publish(silence.expired(now))
    except BrokerError as exc:
        fail(str(exc))
    console.print(f"[green]✓[/] silence {silence_id} expired")
