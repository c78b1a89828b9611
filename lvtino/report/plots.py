"""Line plots as inline SVG: no plotting library, no external file, crisp at any zoom."""

from __future__ import annotations

import html
import math

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= count:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def line_plot(series: dict[str, list[float | None]], title: str, ylabel: str, width: int = 640,
              height: int = 220) -> str:
    """An SVG line plot of each series against its index (frame); None values leave gaps."""
    left, right, top, bottom = 56, 12, 24, 32
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    n = max((len(s) for s in series.values()), default=0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}" class="plot">',
             f'<text x="{left}" y="16" class="plot-title">{html.escape(title)}</text>']
    if not values or n == 0:
        parts.append(f'<text x="{left}" y="{height // 2}">no values</text></svg>')
        return "".join(parts)
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    sx = lambda i: left + (width - left - right) * (i / max(1, n - 1))  # noqa: E731
    sy = lambda v: top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))  # noqa: E731
    for t in _ticks(lo, hi):
        y = sy(t)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{t:.4g}</text>')
    for t in _ticks(0, n - 1):
        x = sx(t)
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle" class="tick">{int(t)}</text>')
    parts.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 2}" text-anchor="middle" class="tick">frame</text>'
                 f'<text x="12" y="{(top + height - bottom) / 2:.0f}" transform="rotate(-90 12 '
                 f'{(top + height - bottom) / 2:.0f})" text-anchor="middle" class="tick">{html.escape(ylabel)}</text>')
    for k, (name, s) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        runs, run = [], []
        for i, v in enumerate(s):
            if v is None or not math.isfinite(v):
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(f"{sx(i):.1f},{sy(v):.1f}")
        if run:
            runs.append(run)
        for r in runs:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(r)}"/>')
        # legend beside the title; its colour as a style (a stylesheet's fill would override an attribute)
        parts.append(f'<text x="{width - right - 90 * k}" y="16" text-anchor="end" style="fill:{colour}" '
                     f'class="legend">&#9644; {html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
