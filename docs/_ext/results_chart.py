"""A bar chart of speed-ups as inline SVG, drawn when the site is built.

One horizontal bar per comparison, from the line at 1× (same speed) to the speed-up, on a
log-2 axis so that 2× faster and 2× slower are bars of the same length. Text is drawn in
``currentColor``, so the chart follows the page's light or dark colour scheme. Written by hand
rather than with matplotlib: the SVG is small, sharp at any zoom, and needs nothing installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["FASTER", "SLOWER", "speedup_chart"]

FASTER = "#3f51b5"  # the site's primary colour (indigo): ours is faster
SLOWER = "#e8710a"  # orange: ours is slower
_ROW = 22  # pixels per bar
_CHAR = 6.5  # approximate width of one character of 12 px sans-serif text
_PLOT = 440  # width of the bars' area
_TOP, _BOTTOM = 28, 46  # room for the legend above and the axis below


def _axis(values: Sequence[float]) -> tuple[int, int]:
    """Powers of two (as exponents) around 1 and every value, with a little room."""
    lo = min(1.0, *values) / 1.05
    hi = max(1.0, *values) * 1.05
    return math.floor(math.log2(lo)), math.ceil(math.log2(hi))


def _tick(exponent: int) -> str:
    value = 2.0**exponent
    return f"{value:g}×"


def speedup_chart(labels: Sequence[str], speedups: Sequence[float]) -> str:
    """An ``<svg>`` element of one bar per speed-up, labelled, with a line at 1×.

    Args:
        labels: One label per bar, drawn left of it.
        speedups: Positive finite speed-ups (above 1: ours is faster), as many as ``labels``.

    Returns:
        The SVG markup, without blank lines (so that Markdown keeps it as one HTML block).

    Raises:
        ValueError: If the lengths differ, nothing is given, or a speed-up is not positive.
    """
    if len(labels) != len(speedups) or not speedups:
        raise ValueError(
            f"speedup_chart needs one label per speed-up and at least one bar; got "
            f"{len(labels)} labels and {len(speedups)} speed-ups"
        )
    bad = [s for s in speedups if not (math.isfinite(s) and s > 0)]
    if bad:
        raise ValueError(f"speed-ups must be positive and finite; got {bad}")
    lo, hi = _axis(speedups)
    left = 12 + _CHAR * max(len(label) for label in labels)
    width = left + _PLOT + 70
    height = _TOP + _ROW * len(speedups) + _BOTTOM

    def x(value: float) -> float:
        return left + (math.log2(value) - lo) / (hi - lo) * _PLOT

    one = x(1.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height}" '
        f'width="100%" role="img" font-family="sans-serif" font-size="12" fill="currentColor" '
        f'style="max-width:{width:.0f}px">',
        "<title>Speed-up of ours against the reference (above 1: ours is faster)</title>",
        f'<rect x="{left}" y="8" width="10" height="10" fill="{FASTER}"/>',
        f'<text x="{left + 14}" y="17">ours faster</text>',
        f'<rect x="{left + 100}" y="8" width="10" height="10" fill="{SLOWER}"/>',
        f'<text x="{left + 114}" y="17">ours slower</text>',
    ]
    bottom = _TOP + _ROW * len(speedups)
    for exponent in range(lo, hi + 1):
        gx = x(2.0**exponent)
        out.append(
            f'<line x1="{gx:.1f}" y1="{_TOP - 4}" x2="{gx:.1f}" y2="{bottom}" '
            'stroke="currentColor" stroke-opacity="0.15"/>'
        )
        out.append(
            f'<text x="{gx:.1f}" y="{bottom + 16}" text-anchor="middle">{_tick(exponent)}</text>'
        )
    for i, (label, value) in enumerate(zip(labels, speedups)):
        y = _TOP + _ROW * i
        start, end = sorted((one, x(value)))
        colour = FASTER if value >= 1 else SLOWER
        out += [
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{start:.1f}" y="{y + 4}" width="{max(end - start, 1):.1f}" height="14" '
            f'fill="{colour}"><title>{escape(label)}: {value:.3g}×</title></rect>',
            f'<text x="{max(end, one) + 4:.1f}" y="{y + 15}">{value:.3g}×</text>',
        ]
    out += [
        f'<line x1="{one:.1f}" y1="{_TOP - 4}" x2="{one:.1f}" y2="{bottom}" '
        'stroke="currentColor" stroke-width="2"/>',
        f'<text x="{left + _PLOT / 2:.0f}" y="{bottom + 36}" text-anchor="middle">'
        "speed-up against the reference (log scale; 1× = same speed)</text>",
        "</svg>",
    ]
    return "\n".join(out)
