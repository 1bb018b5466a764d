"""The debt report for the terminal (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tokengov.app.report.model import ReportData

__all__ = ["render_text"]


def render_text(data: ReportData, console: Console, *, top: int = 15) -> None:
    scope = f"team {data.team}" if data.team else "all teams"
    trend = f"{data.trend_pct:+.0%}" if data.trend_pct is not None else "—"
    console.print(f"[bold]Token-debt report[/] — {scope}, since {data.since.isoformat()}")
    console.print(
        f"total spend ${data.total_cost_usd:,.2f} · {data.total_tokens:,} tokens · trend {trend} · "
        f"open waste ${data.open_waste_usd_per_day:,.2f}/day"
    )
    findings = Table(
        "#",
        "team",
        "workflow / agent",
        "area",
        "tokens/day",
        "USD/day",
        "conf.",
        "status",
        "better pattern",
        title="Findings, by estimated waste",
        title_justify="left",
    )
    for rank, f in enumerate(data.findings[:top], 1):
        where = f.workflow + (f" / {f.agent}" if f.agent else "")
        findings.add_row(
            str(rank),
            f.team,
            where,
            f.area.replace("_", " "),
            f"{f.waste_tokens_per_day:,}",
            f"${f.waste_usd_per_day:,.2f}",
            f"{f.confidence:.2f}",
            "acted on" if f.acted_on else "open",
            f.better_pattern,
        )
    console.print(findings)
    units = Table(
        "team",
        "workflow",
        "calls",
        "cost",
        "success",
        "tokens/outcome",
        title="Unit metrics per workflow",
        title_justify="left",
    )
    for u in data.workflows:
        units.add_row(
            u.team,
            u.workflow,
            f"{u.calls:,}",
            f"${u.cost_usd:,.2f}",
            f"{u.success_rate:.0%}" if u.success_rate is not None else "—",
            f"{u.tokens_per_outcome:,.0f}" if u.tokens_per_outcome is not None else "—",
        )
    console.print(units)
    maturity = Table(
        "team", "workflow", "level", "what lifts it a level", title="Maturity", title_justify="left"
    )
    for m in data.maturity:
        maturity.add_row(
            m.facts.team,
            m.facts.workflow or "(team)",
            m.level,
            "; ".join(m.to_next_level) or "top level",
        )
    console.print(maturity)
