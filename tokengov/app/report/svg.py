"""Charts as inline SVG, drawn in Python: no script, no network, printable.

Each function returns one ``<svg>`` element with a fixed ``width``/``height``,
a ``viewBox`` (so it scales), ``role="img"`` and a ``<title>`` for readers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Final

__all__ = ["PALETTE", "bar_chart", "line_chart", "nice_max"]

PALETTE: Final = (
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#4b5563",
)
_FONT: Final = 'font-family="system-ui, sans-serif" font-size="11" fill="#374151"'


def nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``value`` (1 when nothing to show)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value * (1 - 1e-12):
            return step * magnitude
    return 10 * magnitude


def _svg_open(chart_id: str, title: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="16" {_FONT} font-size="13" font-weight="600">{escape(title)}</text>',
    ]


def _no_data(parts: list[str], width: int, height: int) -> str:
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {_FONT}>'
        "no data in this period</text></svg>"
    )
    return "".join(parts)


def line_chart(
    series: Mapping[str, Sequence[tuple[str, float]]],
    *,
    chart_id: str,
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    width: int = 720,
    height: int = 260,
) -> str:
    """One line per series over shared category labels on x (e.g. ISO dates)."""
    parts = _svg_open(chart_id, title, width, height)
    xs = sorted({x for points in series.values() for x, _ in points})
    if not xs:
        return _no_data(parts, width, height)
    legend_rows = (len(series) + 3) // 4
    left, right, top, bottom = 70, 44, 28, 40 + 16 * legend_rows
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_max(max(v for points in series.values() for _, v in points))

    def x_of(label: str) -> float:
        return left + (plot_w * xs.index(label) / (len(xs) - 1) if len(xs) > 1 else plot_w / 2)

    def y_of(value: float) -> float:
        return top + plot_h * (1 - value / top_value)

    for i in range(5):
        value = top_value * i / 4
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>'
            f"{escape(fmt(value))}</text>"
        )
    step = max(1, len(xs) // 8)
    for index, label in enumerate(xs):
        if index % step == 0 or index == len(xs) - 1:
            parts.append(
                f'<text x="{x_of(label):.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle" {_FONT}>{escape(label)}</text>'
            )
    for n, (name, points) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        coords = " ".join(f"{x_of(x):.1f},{y_of(v):.1f}" for x, v in sorted(points))
        parts.append(
            f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" '
            f'points="{coords}"/>'
        )
        for x, v in points:
            parts.append(
                f'<circle cx="{x_of(x):.1f}" cy="{y_of(v):.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(name)} {escape(x)}: {escape(fmt(v))}</title></circle>"
            )
        lx = left + (n % 4) * (plot_w / 4)
        ly = top + plot_h + 30 + 16 * (n // 4)
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14:.1f}" y="{ly}" {_FONT}>{escape(name[:28])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    chart_id: str,
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:,.2f}",
    width: int = 720,
    bar_height: int = 20,
) -> str:
    """Horizontal bars, one per item, labelled with the value."""
    height = 36 + max(1, len(items)) * (bar_height + 8) + 8
    parts = _svg_open(chart_id, title, width, height)
    if not items:
        return _no_data(parts, width, height)
    left, right = 150, 90
    plot_w = width - left - right
    top_value = nice_max(max(v for _, v in items))
    for n, (label, value) in enumerate(items):
        y = 32 + n * (bar_height + 8)
        w = max(0.0, plot_w * value / top_value)
        parts.append(
            f'<text x="{left - 8}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" '
            f"{_FONT}>{escape(label)}</text>"
        )
        parts.append(
            f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" '
            f'height="{bar_height}" fill="{PALETTE[n % len(PALETTE)]}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
        parts.append(
            f'<text x="{left + w + 6:.1f}" y="{y + bar_height * 0.7:.1f}" {_FONT}>'
            f"{escape(fmt(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
