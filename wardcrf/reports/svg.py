"""Small inline SVG charts (no matplotlib: light, deterministic, offline).

Two shapes are enough for the reports: lines over ordered time points (a
vital sign per participant over the five dosing days) and a paired
before/after slope chart (CT score per participant).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def lines(
    title: str,
    x_labels: list[str],
    series: dict[str, list[float | None]],
    unit: str = "",
    width: int = 480,
    height: int = 240,
    *,
    x_title: str = "",
    y_title: str = "",
) -> str:
    """One line per series over `x_labels`; gaps where a value is missing.

    `x_title` and `y_title` name the axes (with the unit: a plot a reader
    cannot decode without the report's prose is not evidence of anything).
    """
    values = [v for s in series.values() for v in s if v is not None]
    left, right, top, bottom = 60, 110, 28, 44
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}'
        f"{' (' + escape(unit) + ')' if unit else ''}</text>",
    ]
    mid_x, mid_y = (left + width - right) / 2, (top + height - bottom) / 2
    if x_title:
        out.append(
            f'<text class="axis-title" x="{mid_x:.1f}" y="{height - 8}" font-size="10" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
    if y_title:
        out.append(
            f'<text class="axis-title" x="14" y="{mid_y:.1f}" font-size="10" text-anchor="middle" '
            f'transform="rotate(-90 14 {mid_y:.1f})">{escape(y_title)}</text>'
        )
    if not values or not x_labels:
        out.append(f'<text x="{left}" y="{height // 2}" font-size="12">no data recorded</text></svg>')
        return "".join(out)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    sx = _scale(0, max(len(x_labels) - 1, 1), left, width - right)
    sy = _scale(lo, hi, height - bottom, top)
    out.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>'
    )
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>')
    for v in (lo + pad, (lo + hi) / 2, hi - pad):
        out.append(
            f'<text x="{left - 4}" y="{sy(v) + 4:.1f}" font-size="10" text-anchor="end">{_fmt(v)}</text>'
        )
    for i, label in enumerate(x_labels):
        out.append(
            f'<text x="{sx(i):.1f}" y="{height - bottom + 14}" font-size="9" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    for k, (name, vals) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        seg: list[str] = []
        for i, val in enumerate(vals):
            if val is None:
                if len(seg) > 1:
                    out.append(
                        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(seg)}"/>'
                    )
                seg = []
                continue
            seg.append(f"{sx(i):.1f},{sy(val):.1f}")
            out.append(f'<circle cx="{sx(i):.1f}" cy="{sy(val):.1f}" r="2" fill="{color}"/>')
        if len(seg) > 1:
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(seg)}"/>'
            )
        if k < 12:
            out.append(
                f'<text x="{width - right + 6}" y="{top + 10 + 12 * k}" font-size="10" '
                f'fill="{color}">{escape(name)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def before_after(
    title: str,
    pairs: dict[str, tuple[float, float]],
    unit: str = "",
    labels: tuple[str, str] = ("before", "after"),
    width: int = 420,
    height: int = 260,
    *,
    x_title: str = "timepoint",
    y_title: str = "",
) -> str:
    """A slope chart: one line per participant from its before value to its after value."""
    series = {name: [a, b] for name, (a, b) in pairs.items()}
    return lines(
        title,
        list(labels),
        series,  # type: ignore[arg-type]
        unit,
        width,
        height,
        x_title=x_title,
        y_title=y_title or (f"{title} ({unit})" if unit else title),
    )
