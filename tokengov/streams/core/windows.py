"""Tumbling windows (stage 2): 1-minute and 1-hour usage per team, workflow, agent and model.

A window group (one size, one start) collects each partition's cumulative rows
and is published when event time — the largest timestamp any partition has
seen — passes its end plus ``late_grace``, or when nothing has touched it for
``window_idle_close`` (processing time). Publishing emits one ``usage``
message per (team, workflow, agent, model) and one ``attribution_coverage``
message for the group. A partition lagging past the grace can still change a
published window: it is then published again with ``revision`` + 1 (readers
keep the highest revision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tokengov.core.calls import usd, usd_str
from tokengov.core.contracts import UNATTRIBUTED
from tokengov.streams.core.alerts import fingerprint, make_alert
from tokengov.streams.core.codec import big, wide, wide_ints
from tokengov.streams.core.output import Output
from tokengov.streams.core.partition_totals import WINDOW_FIELDS
from tokengov.streams.core.timeutil import HOUR_MS, MINUTE_MS, iso_ms

__all__ = ["WindowGroup", "publish_window", "window_label"]

Dims = tuple[str, str, str, str]  # team, workflow, agent, model


def window_label(size_ms: int) -> str:
    if size_ms == MINUTE_MS:
        return "1m"
    if size_ms == HOUR_MS:
        return "1h"
    return f"{size_ms // 1000}s"


@dataclass
class WindowGroup:
    size_ms: int
    start_ms: int
    rows: dict[Dims, dict[int, list[Any]]] = field(default_factory=dict)  # p -> [v, ints, femto]
    revision: int = -1
    changed: bool = False
    touched_s: float = 0.0
    coverage_alerted: bool = False

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.size_ms

    def merge(self, dims: Dims, partition: int, v: int, ints: list[int], cost: int) -> bool:
        cell = self.rows.setdefault(dims, {})
        prev = cell.get(partition)
        if prev is not None and prev[0] >= v:
            return False
        cell[partition] = [v, [*map(big, ints)], big(cost)]
        self.changed = True
        return True

    def totals(self) -> dict[Dims, tuple[list[int], int]]:
        """Per dims: the summed counts and the summed cost in femto-USD."""
        out: dict[Dims, tuple[list[int], int]] = {}
        for dims, cell in self.rows.items():
            ints = [0] * len(WINDOW_FIELDS)
            cost = 0
            for _, part, part_cost in cell.values():
                for i, value in enumerate(part):
                    ints[i] += value
                cost += part_cost
            out[dims] = (ints, cost)
        return out

    def to_doc(self) -> dict[str, Any]:
        """The state record (sums beyond 64 bits as decimal text: see tokengov.streams.core.codec)."""
        return {
            "size_ms": self.size_ms,
            "start_ms": self.start_ms,
            "rows": [
                [*dims, [[p, v, wide_ints(ints), wide(c)] for p, (v, ints, c) in cell.items()]]
                for dims, cell in self.rows.items()
            ],
            "revision": self.revision,
            "changed": self.changed,
            "touched_s": self.touched_s,
            "coverage_alerted": self.coverage_alerted,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> WindowGroup:
        group = cls(doc["size_ms"], doc["start_ms"])
        for team, wf, agent, model, cells in doc["rows"]:
            group.rows[(team, wf, agent, model)] = {
                p: [v, [*map(big, ints)], big(c)] for p, v, ints, c in cells
            }
        group.revision = doc["revision"]
        group.changed = doc["changed"]
        group.touched_s = doc["touched_s"]
        group.coverage_alerted = doc["coverage_alerted"]
        return group


def publish_window(
    group: WindowGroup, min_coverage: float | None, now: datetime, out: Output
) -> None:
    """Emit the group's usage rows and its attribution coverage; alert on low coverage (1h)."""
    group.revision += 1
    group.changed = False
    label = window_label(group.size_ms)
    start, end = iso_ms(group.start_ms), iso_ms(group.end_ms)
    emitted_at = iso_ms(int(now.timestamp() * 1000))
    total_tokens = unattributed_tokens = 0
    total_femto = unattributed_femto = 0
    for (team, workflow, agent, model), (ints, cost) in sorted(group.totals().items()):
        doc: dict[str, Any] = {
            "metric": "usage",
            "window": label,
            "window_start": start,
            "window_end": end,
            "team": team,
            "workflow": workflow,
            "agent": agent,
            "model": model,
        }
        doc.update(zip(WINDOW_FIELDS, ints, strict=True))
        doc["cost_usd"] = usd_str(cost)
        doc["revision"] = group.revision
        doc["emitted_at"] = emitted_at
        out.metric(f"usage|{label}|{start}|{team}|{workflow}|{agent}|{model}", doc)
        tokens = ints[1] + ints[2]
        total_tokens += tokens
        total_femto += cost
        if team == UNATTRIBUTED or workflow == UNATTRIBUTED:
            unattributed_tokens += tokens
            unattributed_femto += cost
    total_cost, unattributed_cost = usd(total_femto), usd(unattributed_femto)
    token_coverage = 1 - unattributed_tokens / total_tokens if total_tokens else None
    cost_coverage = float(1 - unattributed_cost / total_cost) if total_cost else None
    out.metric(
        f"attribution_coverage|{label}|{start}",
        {
            "metric": "attribution_coverage",
            "window": label,
            "window_start": start,
            "window_end": end,
            "tokens": total_tokens,
            "unattributed_tokens": unattributed_tokens,
            "cost_usd": usd_str(total_femto),
            "unattributed_cost_usd": usd_str(unattributed_femto),
            "token_coverage": token_coverage,
            "cost_coverage": cost_coverage,
            "revision": group.revision,
            "emitted_at": emitted_at,
        },
    )
    if (
        group.size_ms == HOUR_MS
        and min_coverage is not None
        and token_coverage is not None
        and token_coverage < min_coverage
        and not group.coverage_alerted
    ):
        group.coverage_alerted = True
        out.alert(
            make_alert(
                kind="attribution_coverage",
                fingerprint=fingerprint("attribution_coverage", UNATTRIBUTED, label, start),
                severity="warning",
                team=UNATTRIBUTED,
                labels={"window": label},
                summary=(
                    f"only {token_coverage:.1%} of the tokens between {start} and {end} are "
                    f"attributed to a team and workflow (minimum {min_coverage:.0%}); "
                    f"{unattributed_tokens:,} tokens, ${unattributed_cost:,.2f} unattributed"
                ),
                evidence={
                    "token_coverage": round(token_coverage, 4),
                    "cost_coverage": None if cost_coverage is None else round(cost_coverage, 4),
                    "tokens": total_tokens,
                    "unattributed_tokens": unattributed_tokens,
                    "unattributed_cost_usd": usd_str(unattributed_femto),
                    "min_coverage": min_coverage,
                    "window_start": start,
                },
                starts_at=now,
            )
        )
