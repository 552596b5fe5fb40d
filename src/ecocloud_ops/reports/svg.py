"""Small server-side SVG charts for the reports: pure Python, no JavaScript, no external URLs.

Every function returns one standalone ``<svg>`` element (well-formed XML, with its namespace) that
can be inlined in HTML and rendered by browsers and WeasyPrint alike. Rates are fractions in
[0, 1] or None (undefined). The rate axis is zoomed: it runs from a round value below the lowest
rate or target (never below 0) to 100%. All text is escaped and set in the CJK font so that Chinese
names render.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence

from ..network.rates import format_rate

FONT_FAMILY = "'Noto Sans CJK SC', 'Noto Sans CJK', 'Noto Sans', sans-serif"
#: One colour per tier, in the order ministry_province, province_city, city_county.
SERIES_COLORS = ("#1f5fa8", "#d9822b", "#2e8b57", "#7b3fa0", "#8c564b")
MET_COLOR = "#2e7d32"
MISSED_COLOR = "#c62828"
TARGET_COLOR = "#333333"
GRID_COLOR = "#dddddd"
AXIS_COLOR = "#888888"
TEXT_COLOR = "#222222"
DEFAULT_WIDTH = 680  # about the content width of an A4 page with 15 mm margins, in CSS px

# Characters that XML 1.0 does not allow, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Candidate lower bounds of the rate axis, highest first.
_FLOORS = (0.995, 0.99, 0.98, 0.97, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
# Candidate tick steps, in per mille.
_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)


def esc(text: object) -> str:
    """Text for XML/HTML content or a quoted attribute: escaped, characters XML forbids removed."""
    return html.escape(_NOT_XML.sub("", str(text)), quote=True)


def _n(x: float) -> str:
    """A coordinate."""
    return f"{x:.1f}"


def axis_floor(values: Iterable[float | None]) -> float:
    """Lower bound of a zoomed rate axis: a round value a little below the lowest value, ≥ 0.

    Values are rates and targets; undefined ones are ignored (no value at all gives 0)."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return 0.0
    lowest = min(present)
    margin = max(0.002, (1.0 - lowest) * 0.15)  # keep the lowest bar visibly above the axis
    for floor in _FLOORS:
        if floor <= lowest - margin:
            return floor
    return 0.0


def axis_ticks(low: float, high: float = 1.0, max_intervals: int = 5) -> tuple[list[float], int]:
    """Tick values from ``low`` to ``high`` (a round step) and the decimals their percent labels need."""
    low_m, high_m = round(low * 1000), round(high * 1000)
    span = max(high_m - low_m, 1)
    step = next((s for s in _STEPS if span / s <= max_intervals), 1000)
    first = -(-low_m // step) * step
    ticks = [v / 1000 for v in range(first, high_m + 1, step)]
    decimals = 0 if step % 10 == 0 else 1
    return ticks, decimals


def text_width(text: str, size: float) -> float:
    """Rough advance width of a text: a full em for wide (CJK) characters, about half for others."""
    return sum(size if ord(c) >= 0x2E80 else size * 0.56 for c in text)


def _pct(value: float, decimals: int) -> str:
    return f"{value * 100:.{decimals}f}%"


def _open(width: float, height: float, label: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
            f'viewBox="0 0 {_n(width)} {_n(height)}" role="img" aria-label="{esc(label)}" '
            f'font-family="{esc(FONT_FAMILY)}" font-size="11" fill="{TEXT_COLOR}">',
            f"<title>{esc(label)}</title>"]


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: float | None = None,
          color: str | None = None, weight: str | None = None) -> str:
    attrs = f'x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"'
    if size is not None:
        attrs += f' font-size="{size:g}"'
    if color is not None:
        attrs += f' fill="{color}"'
    if weight is not None:
        attrs += f' font-weight="{weight}"'
    return f"<text {attrs}>{esc(text)}</text>"


def _line(x1: float, y1: float, x2: float, y2: float, color: str, *, width: float = 1.0,
          dashed: bool = False) -> str:
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return (f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{color}" '
            f'stroke-width="{width:g}"{dash}/>')


def _y_axis(lines: list[str], left: float, right: float, top: float, bottom: float, low: float) -> None:
    """Horizontal grid lines with percent labels on a vertical rate axis."""
    ticks, decimals = axis_ticks(low)
    for t in ticks:
        y = bottom - (t - low) / (1.0 - low) * (bottom - top) if low < 1.0 else top
        lines.append(_line(left, y, right, y, GRID_COLOR))
        lines.append(_text(left - 4, y + 3.5, _pct(t, decimals), anchor="end", size=9))
    lines.append(_line(left, top, left, bottom, AXIS_COLOR))
    lines.append(_line(left, bottom, right, bottom, AXIS_COLOR))


def tier_bar_chart(bars: Sequence[tuple[str, float | None, float]], *, title: str, target_label: str,
                   width: float = DEFAULT_WIDTH, height: float = 280) -> str:
    """Vertical bars of rates, each with its own dashed target line and value label.

    ``bars``: (label, rate or None, target). A bar is green when its rate meets its target, red
    otherwise; an undefined rate draws no bar and the label "—"."""
    left, right, top, bottom = 56.0, width - 16, 24.0, height - 56
    low = axis_floor([v for _, rate, target in bars for v in (rate, target)])
    out = _open(width, height, title)
    _y_axis(out, left, right, top, bottom, low)

    def y_of(v: float) -> float:
        v = min(max(v, low), 1.0)
        return bottom - (v - low) / (1.0 - low) * (bottom - top) if low < 1.0 else top

    slot = (right - left) / max(len(bars), 1)
    for i, (label, rate, target) in enumerate(bars):
        cx = left + slot * (i + 0.5)
        bar_w = min(slot * 0.5, 90)
        if rate is not None:
            y = y_of(rate)
            color = MET_COLOR if rate >= target else MISSED_COLOR
            out.append(f'<rect x="{_n(cx - bar_w / 2)}" y="{_n(y)}" width="{_n(bar_w)}" '
                       f'height="{_n(bottom - y)}" fill="{color}"/>')
            out.append(_text(cx, y - 5, format_rate(rate), anchor="middle", weight="bold"))
        else:
            out.append(_text(cx, bottom - 5, format_rate(None), anchor="middle", weight="bold"))
        ty = y_of(target)
        out.append(_line(cx - slot * 0.4, ty, cx + slot * 0.4, ty, TARGET_COLOR, width=1.5, dashed=True))
        out.append(_text(cx, bottom + 16, label, anchor="middle"))
        out.append(_text(cx, bottom + 30, f"{target_label} {format_rate(target)}", anchor="middle", size=9))
    legend_y = height - 10
    out.append(_line(left, legend_y - 4, left + 28, legend_y - 4, TARGET_COLOR, width=1.5, dashed=True))
    out.append(_text(left + 34, legend_y, target_label, size=9))
    out.append("</svg>")
    return "\n".join(out)


def ranking_chart(rows: Sequence[tuple[str, float | None]], *, title: str, target: float, target_label: str,
                  width: float = DEFAULT_WIDTH, row_height: float = 17) -> str:
    """Horizontal bars, one per row (label, rate or None) in the given order, with a dashed target line."""
    left, right, top = 112.0, width - 64, 26.0
    bottom = top + row_height * max(len(rows), 1)
    height = bottom + 34
    low = axis_floor([*(rate for _, rate in rows), target])
    out = _open(width, height, title)

    def x_of(v: float) -> float:
        v = min(max(v, low), 1.0)
        return left + (v - low) / (1.0 - low) * (right - left) if low < 1.0 else right

    ticks, decimals = axis_ticks(low)
    for t in ticks:
        x = x_of(t)
        out.append(_line(x, top, x, bottom, GRID_COLOR))
        out.append(_text(x, bottom + 13, _pct(t, decimals), anchor="middle", size=9))
    out.append(_line(left, top, left, bottom, AXIS_COLOR))
    out.append(_line(left, bottom, right, bottom, AXIS_COLOR))
    bar_h = row_height * 0.7
    for i, (label, rate) in enumerate(rows):
        y = top + row_height * i
        mid = y + row_height / 2
        out.append(_text(left - 5, mid + 3.5, label, anchor="end", size=10))
        if rate is None:
            out.append(_text(left + 4, mid + 3.5, format_rate(None), size=10))
            continue
        x = x_of(rate)
        color = MET_COLOR if rate >= target else MISSED_COLOR
        out.append(f'<rect x="{_n(left)}" y="{_n(mid - bar_h / 2)}" width="{_n(x - left)}" '
                   f'height="{_n(bar_h)}" fill="{color}"/>')
        out.append(_text(x + 4, mid + 3.5, format_rate(rate), size=9))
    tx = x_of(target)
    out.append(_line(tx, top - 4, tx, bottom, TARGET_COLOR, width=1.5, dashed=True))
    out.append(_text(tx, top - 8, f"{target_label} {format_rate(target)}", anchor="middle", size=9))
    out.append("</svg>")
    return "\n".join(out)


def line_chart(x_labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, title: str,
               targets: Sequence[float | None] = (), target_label: str = "", width: float = DEFAULT_WIDTH,
               height: float = 280) -> str:
    """Rates over time: one line per series (name, values aligned with ``x_labels``); None = a gap.

    Each point is also marked, so a value between two gaps stays visible. ``targets`` (aligned with
    ``series``) adds a thin dashed line per series in its colour."""
    left, right, top, bottom = 56.0, width - 16, 16.0, height - 58
    all_values = [v for _, values in series for v in values]
    low = axis_floor([*all_values, *targets])
    out = _open(width, height, title)
    _y_axis(out, left, right, top, bottom, low)
    n = len(x_labels)

    def x_of(i: int) -> float:
        return (left + right) / 2 if n <= 1 else left + 8 + i * (right - left - 16) / (n - 1)

    def y_of(v: float) -> float:
        v = min(max(v, low), 1.0)
        return bottom - (v - low) / (1.0 - low) * (bottom - top) if low < 1.0 else top

    every = max(1, math.ceil(n / 31))
    for i, label in enumerate(x_labels):
        if i % every == 0:
            out.append(_text(x_of(i), bottom + 13, label, anchor="middle", size=8.5))
    for k, target in enumerate(targets):
        if target is not None and k < len(series):
            y = y_of(target)
            out.append(_line(left, y, right, y, SERIES_COLORS[k % len(SERIES_COLORS)], width=0.8, dashed=True))
    for k, (_, values) in enumerate(series):
        color = SERIES_COLORS[k % len(SERIES_COLORS)]
        run: list[str] = []
        runs: list[list[str]] = []
        for i, v in enumerate(values[:n]):
            if v is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{_n(x_of(i))},{_n(y_of(v))}")
        if run:
            runs.append(run)
        for r in runs:
            if len(r) > 1:
                out.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{color}" stroke-width="1.8" '
                           f'stroke-linejoin="round"/>')
            for point in r:
                px, py = point.split(",")
                out.append(f'<circle cx="{px}" cy="{py}" r="2.2" fill="{color}"/>')
    # Legend, one row below the x labels.
    lx, ly = left, height - 14
    for k, (name, _) in enumerate(series):
        color = SERIES_COLORS[k % len(SERIES_COLORS)]
        out.append(_line(lx, ly - 4, lx + 22, ly - 4, color, width=2))
        out.append(_text(lx + 27, ly, name, size=9.5))
        lx += 27 + text_width(name, 9.5) + 18
    if targets and target_label:
        out.append(_line(lx, ly - 4, lx + 22, ly - 4, TARGET_COLOR, width=0.8, dashed=True))
        out.append(_text(lx + 27, ly, target_label, size=9.5))
    out.append("</svg>")
    return "\n".join(out)
