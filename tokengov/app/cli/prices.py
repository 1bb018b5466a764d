"""``tokengov prices show MODEL`` and ``tokengov prices check``: prices at a glance.

``show`` prints the rates the pricer applies to a model (for a provider, a day and a service
tier) and where they come from: the policy's override, or the catalog (genai-prices, its
release) with the policy's discount. ``check`` lists the models seen in the history lately
that are unpriced or priced by the catalog alone, and the policy's prices that differ from
the catalog's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tokengov.app.cli.common import (
    DataDirOpt,
    PolicyOpt,
    console,
    fail,
    load_settings,
    open_history,
)
from tokengov.app.cli.query import parse_when
from tokengov.core.errors import PolicyError, QueryError
from tokengov.core.policy import PriceCatalog, load_policy
from tokengov.core.pricing import Entry, Pricer

__all__ = ["SEEN_SQL", "app", "check", "show"]

app = typer.Typer(
    help="Prices: what applies to a model, and what is unpriced.", no_args_is_help=True
)

_RATE_NAMES = ("input", "cached input", "cache write", "cache write 1h", "output", "reasoning")

#: The models seen in the window, per provider, with what their calls were recorded as.
SEEN_SQL = """
SELECT provider, model, count() AS calls,
       countIf(cost_source = 'unpriced') AS unpriced_calls,
       countIf(cost_source = 'catalog') AS catalog_calls
FROM token_events
WHERE ts >= {since:DateTime64(3, 'UTC')}
GROUP BY provider, model
ORDER BY provider, model
"""


def _catalog(policy_file: Path | None, data_dir: Path | None) -> PriceCatalog:
    """The policy's prices and discounts (none without a policy: the catalog alone)."""
    settings = load_settings(policy=policy_file, data_dir=data_dir)
    if settings.policy is None:
        return PriceCatalog({})
    try:
        return load_policy(settings.policy).catalog
    except PolicyError as exc:
        fail(str(exc))


def _usd(rate: Decimal) -> str:
    text = format(rate.normalize(), "f")
    return f"${text}"


def _origin(entry: Entry) -> str:
    if entry.source == "policy":
        return "policy override (prices:)"
    where = f"catalog {entry.version}: {entry.provider_id} / {entry.model_id}"
    if entry.discount is not None:
        scope = " ".join(
            f"{k} {v}"
            for k, v in (("provider", entry.discount.provider), ("model", entry.discount.model))
            if v is not None
        )
        where += f", discount {entry.discount.discount} applied ({scope})"
    return where


def _rates_table(entry: Entry, title: str) -> Table:
    table = Table("USD per million tokens", *_RATE_NAMES, title=title, title_justify="left")
    table.add_row("base", *(_usd(r) for r in entry.usd_rates))
    for tier in sorted(entry.tiers, key=lambda t: t.above):
        table.add_row(f"input > {tier.above:,} tokens", *(_usd(r) for r in tier.usd_rates))
    return table


@app.command()
def show(
    model: Annotated[str, typer.Argument(help="The model as calls name it.")],
    provider: Annotated[
        str, typer.Option(help="The event's provider (openai, anthropic, azure, aws.bedrock…).")
    ] = "unknown",
    at: Annotated[
        str | None, typer.Option(help="The day (YYYY-MM-DD). Default: today (UTC).")
    ] = None,
    tier: Annotated[
        str | None, typer.Option(help="Service tier: flex, priority, batch, … Default: none.")
    ] = None,
    policy: PolicyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The rates that apply to MODEL and where they come from."""
    catalog = _catalog(policy, data_dir)
    day = parse_when(at, datetime.now(UTC)).date() if at else datetime.now(UTC).date()
    entry = Pricer(catalog).entry(model, day, provider, tier)
    label = f"{model} (provider {provider}, {day}{', tier ' + tier if tier else ''})"
    if entry is None:
        console.print(
            f"[bold]{label}[/]: [red]unpriced[/]: neither the policy nor the catalog knows it"
        )
        raise typer.Exit(1)
    console.print(f"[bold]{label}[/]: {_origin(entry)}")
    console.print(_rates_table(entry, "Rates"))
    if entry.source == "policy":
        listed = Pricer(PriceCatalog({})).entry(model, day, provider, tier)
        if listed is not None:
            console.print(f"the catalog's price, overridden: {_origin(listed)}")
            console.print(_rates_table(listed, "Catalog"))


def _differs(policy_entry: Entry, catalog_entry: Entry) -> list[str]:
    return [
        f"{name} {_usd(p)} (catalog {_usd(c)})"
        for name, p, c in zip(
            _RATE_NAMES, policy_entry.usd_rates, catalog_entry.usd_rates, strict=True
        )
        if p != c
    ]


@app.command()
def check(
    since: Annotated[str, typer.Option(help="Models seen since (date, time or age).")] = "7d",
    clickhouse: Annotated[
        str | None,
        typer.Option("--clickhouse", help="clickhouse-connect DSN (env TOKENGOV_CLICKHOUSE_URL)."),
    ] = None,
    policy: PolicyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Models seen lately that are unpriced or priced by the catalog alone, and policy
    prices that differ from the catalog's. Exits 1 when a seen model is unpriced."""
    catalog = _catalog(policy, data_dir)
    settings = load_settings(data_dir=data_dir, policy=policy)
    now = datetime.now(UTC)
    start = parse_when(since, now)
    reader = open_history(settings, clickhouse, events_required=False)
    try:
        seen = reader.query(SEEN_SQL, {"since": start})
    except QueryError as exc:
        fail(str(exc))
    finally:
        reader.close()
    today = now.date()
    pricer = Pricer(catalog)
    listed = Pricer(PriceCatalog({}))
    findings = Table(
        "provider",
        "model",
        "calls",
        "now priced by",
        "recorded unpriced",
        title_justify="left",
        title=f"Models seen since {start:%Y-%m-%d %H:%M} UTC, not priced by the policy",
    )
    unpriced = 0
    providers_of: dict[str, set[str]] = {}
    for provider, model, calls, unpriced_calls, _catalog_calls in seen.rows:
        providers_of.setdefault(str(model), set()).add(str(provider))
        entry = pricer.entry(str(model), today, str(provider))
        if entry is not None and entry.source == "policy":
            continue
        unpriced += entry is None
        findings.add_row(
            str(provider),
            str(model),
            f"{calls:,}",
            "[red]unpriced[/]" if entry is None else _origin(entry),
            f"{unpriced_calls:,}",
        )
    console.print(findings)
    differences = Table(
        "model",
        "provider",
        "differs from the catalog",
        title_justify="left",
        title="Policy prices that differ from the catalog (today)",
    )
    for model in catalog.models():
        for provider in sorted(providers_of.get(model, set())) or ["unknown"]:
            mine = pricer.entry(model, today, provider)
            theirs = listed.entry(model, today, provider)
            if mine is None or theirs is None or mine.source != "policy":
                continue
            diff = _differs(mine, theirs)
            if diff:
                differences.add_row(model, provider, "; ".join(diff))
    console.print(differences)
    if unpriced:
        raise typer.Exit(1)
