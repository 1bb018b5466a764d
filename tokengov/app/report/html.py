"""The debt report as one self-contained HTML page: inline CSS and SVG, no script,
no external resource — readable offline and printable."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from tokengov.app.report.model import FindingRow, ReportData
from tokengov.app.report.svg import bar_chart, line_chart

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;margin:24px;
max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}.muted{color:#6b7280}
.kpis{display:flex;gap:16px;flex-wrap:wrap;margin:16px 0}.kpi{border:1px solid #e5e7eb;
border-radius:6px;padding:10px 14px;min-width:160px}.kpi b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #e5e7eb;
padding:5px 6px;text-align:left;vertical-align:top}th{background:#f9fafb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.charts svg{display:block;margin:8px 0;max-width:100%;height:auto}
.level{font-weight:600}.acted{color:#16a34a}.evidence{font-size:12px;color:#374151}
@media print{body{margin:0}h2{break-after:avoid}table,svg{break-inside:avoid}}
"""


def _money(value: Decimal | float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0%}" if value else "0%"


def _evidence(finding: FindingRow) -> str:
    items = ", ".join(
        f"{escape(k)}={v:,}" if isinstance(v, int) else f"{escape(k)}={v:g}"
        for k, v in finding.evidence.items()
    )
    return f'<span class="evidence">{items}</span>'


def _findings(data: ReportData) -> str:
    rows = []
    for rank, f in enumerate(data.findings, 1):
        where = escape(f.workflow) + (f" / {escape(f.agent)}" if f.agent else "")
        status = '<span class="acted">acted on</span>' if f.acted_on else "open"
        rows.append(
            f"<tr><td class='num'>{rank}</td><td>{escape(f.team)}</td><td>{where}</td>"
            f"<td>{escape(f.area.replace('_', ' '))}<br><span class='muted'>{escape(f.detector)}"
            f"</span></td><td class='num'>{f.waste_tokens_per_day:,}</td>"
            f"<td class='num'>{_money(f.waste_usd_per_day)}</td>"
            f"<td class='num'>{f.confidence:.2f}</td><td>{status}</td>"
            f"<td>{_evidence(f)}</td><td>{escape(f.better_pattern)}</td></tr>"
        )
    if not rows:
        rows.append("<tr><td colspan='10' class='muted'>no findings in this period</td></tr>")
    return (
        "<table id='findings'><thead><tr><th class='num'>#</th><th>team</th>"
        "<th>workflow / agent</th><th>area</th><th class='num'>waste tokens/day</th>"
        "<th class='num'>waste USD/day</th><th class='num'>confidence</th><th>status</th>"
        "<th>evidence</th><th>better pattern</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _workflows(data: ReportData) -> str:
    rows = []
    for u in data.workflows:
        tpo = f"{u.tokens_per_outcome:,.0f}" if u.tokens_per_outcome is not None else "—"
        rate = f"{u.success_rate:.0%}" if u.success_rate is not None else "—"
        rows.append(
            f"<tr><td>{escape(u.team)}</td><td>{escape(u.workflow)}</td>"
            f"<td class='num'>{u.calls:,}</td><td class='num'>{u.tokens:,}</td>"
            f"<td class='num'>{_money(u.cost_usd)}</td><td class='num'>{u.outcomes:,}</td>"
            f"<td class='num'>{rate}</td><td class='num'>{tpo}</td>"
            f"<td class='num'>{_money(u.cost_per_outcome_usd)}</td>"
            f"<td class='num'>{u.retries:,}</td><td class='num'>{u.errors:,}</td></tr>"
        )
    if not rows:
        rows.append("<tr><td colspan='11' class='muted'>no spend in this period</td></tr>")
    return (
        "<table id='workflows'><thead><tr><th>team</th><th>workflow</th><th class='num'>calls</th>"
        "<th class='num'>tokens</th><th class='num'>cost</th><th class='num'>outcomes</th>"
        "<th class='num'>success rate</th><th class='num'>tokens / successful outcome</th>"
        "<th class='num'>cost / successful outcome</th><th class='num'>retries</th>"
        "<th class='num'>errors</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _maturity(data: ReportData) -> str:
    rows = []
    for m in data.maturity:
        f = m.facts
        scope = escape(f.workflow) if f.workflow else "<i>whole team</i>"
        lift = "; ".join(escape(s) for s in m.to_next_level) or "top level"
        rows.append(
            f"<tr><td>{escape(f.team)}</td><td>{scope}</td><td class='level'>{m.level}</td>"
            f"<td>{'; '.join(escape(s) for s in m.met) or '—'}</td>"
            f"<td>{lift}</td></tr>"
        )
    if not rows:
        rows.append("<tr><td colspan='5' class='muted'>no teams with spend</td></tr>")
    return (
        "<table id='maturity'><thead><tr><th>team</th><th>workflow</th><th>level</th>"
        "<th>facts met</th><th>what lifts it a level</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def render_html(data: ReportData) -> str:
    scope = f"team {escape(data.team)}" if data.team else "all teams"
    spend = line_chart(
        {"spend (USD)": [(d.day.isoformat(), float(d.cost_usd)) for d in data.days]},
        chart_id="chart-spend",
        title="Spend per day (USD)",
        fmt=lambda v: f"${v:,.2f}",
    )
    waste = bar_chart(
        [(area.replace("_", " "), float(usd)) for area, usd in data.waste_by_area.items()],
        chart_id="chart-waste",
        title="Open estimated waste by area (USD per day)",
        fmt=lambda v: f"${v:,.2f}",
    )
    per_outcome = line_chart(
        {
            w: [(d.isoformat(), v) for d, v in points]
            for w, points in data.tokens_per_outcome.items()
        },
        chart_id="chart-tokens-per-outcome",
        title="Tokens per successful outcome, per day",
    )
    open_count = sum(not f.acted_on for f in data.findings)
    kpis = (
        f"<div class='kpis'><div class='kpi'>total spend<b>{_money(data.total_cost_usd)}</b></div>"
        f"<div class='kpi'>tokens<b>{data.total_tokens:,}</b></div>"
        f"<div class='kpi'>spend trend<b>{_pct(data.trend_pct)}</b>"
        "<span class='muted'>later half vs earlier half</span></div>"
        f"<div class='kpi'>open waste<b>{_money(data.open_waste_usd_per_day)}/day</b>"
        f"<span class='muted'>{open_count} open findings</span></div>"
        "</div>"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>tokengov token-debt report</title><style>{_CSS}</style></head><body>"
        f"<h1>Token-debt report</h1><p class='muted'>{scope}, since {data.since.isoformat()}; "
        f"generated {data.generated_at.strftime('%Y-%m-%d %H:%M UTC')}</p>{kpis}"
        f"<h2>Spend</h2><div class='charts'>{spend}</div>"
        f"<h2>Findings, by estimated waste</h2><div class='charts'>{waste}</div>{_findings(data)}"
        f"<h2>Unit metrics per workflow</h2><div class='charts'>{per_outcome}</div>"
        f"{_workflows(data)}<h2>Maturity</h2>{_maturity(data)}"
        "<p class='muted'>Waste estimates follow the models in docs/debt.md: the tokens a "
        "workflow spent beyond what the better pattern would have needed, per day.</p>"
        "</body></html>"
    )
